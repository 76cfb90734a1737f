"""Evaluation report numbers, table, JSON and plots."""
import json
import subprocess
import sys
import warnings

import pytest
from rich.console import Console

from textlstm.display import evaluation_table
from textlstm.errors import DataError
from textlstm.metrics import evaluate, plot_confusion, plot_history, write_json

LABELS = ["a", "b", "c"]
# a: TP 2, FN 1 (->b), FP 0  -> P 1,   R 2/3, F1 0.8
# b: TP 1, FN 1 (->c), FP 1  -> P 1/2, R 1/2, F1 0.5
# c: TP 1, FN 0,       FP 1  -> P 1/2, R 1,   F1 2/3
Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]
KEYS = {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "macro_precision", "macro_recall",
        "per_class", "confusion_matrix", "labels", "n"}


def test_hand_computed_case():
    r = evaluate(Y_TRUE, Y_PRED, LABELS)
    approx = pytest.approx
    assert r["accuracy"] == approx(4 / 6) and r["micro_f1"] == approx(4 / 6)
    assert r["macro_f1"] == approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["weighted_f1"] == approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert r["macro_precision"] == approx((1 + 0.5 + 0.5) / 3)
    assert r["macro_recall"] == approx((2 / 3 + 0.5 + 1) / 3)
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": approx(2 / 3), "f1": approx(0.8), "support": 3}
    assert r["per_class"]["c"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["labels"] == LABELS and r["n"] == 6


def test_confusion_matrix_follows_label_order():
    r = evaluate(Y_TRUE, Y_PRED, ["c", "b", "a"])
    assert r["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 1, 2]]
    assert list(r["per_class"]) == ["c", "b", "a"]


def test_absent_labels_score_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = evaluate(["a", "b", "c"], ["a", "b", "b"], ["a", "b", "c", "d"])
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["confusion_matrix"][3] == [0, 0, 0, 0]


def test_keys_and_plain_json_types():
    r = evaluate(Y_TRUE, Y_PRED, LABELS)
    assert set(r) == KEYS
    assert set(r["per_class"]["b"]) == {"precision", "recall", "f1", "support"}

    def plain(x):
        if isinstance(x, dict):
            return all(type(k) is str and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return type(x) in (float, int, str)

    assert plain(r)
    assert json.loads(json.dumps(r)) == r


def test_bad_inputs():
    with pytest.raises(DataError, match="does not know: z"):
        evaluate(["a", "z"], ["a", "a"], LABELS)
    with pytest.raises(DataError, match="no examples"):
        evaluate([], [], LABELS)
    with pytest.raises(ValueError, match="2 items"):
        evaluate(["a", "b"], ["a"], LABELS)


def test_report_table_renders_every_row():
    console = Console(record=True, width=120)
    console.print(evaluation_table(evaluate(Y_TRUE, Y_PRED, LABELS), title="dev"))
    text = console.export_text()
    for row in ("dev", "a", "b", "c", "accuracy", "macro avg", "micro avg", "weighted avg", "0.6667", "0.6556"):
        assert row in text


def test_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / "out" / "report.json"
    r = evaluate(Y_TRUE, Y_PRED, LABELS)
    write_json({"old": True, "padding": "x" * 10_000}, path)
    write_json(r, path)
    assert json.loads(path.read_text()) == r
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


HISTORY = [
    {"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.5, "val_macro_f1": 0.4, "lr": 1e-3, "unfrozen": False},
    {"epoch": 2, "train_loss": 0.7, "val_loss": 0.8, "val_accuracy": 0.6, "val_macro_f1": 0.55, "lr": 1e-3, "unfrozen": True},
    {"epoch": 3, "train_loss": 0.5, "val_accuracy": 0.7, "val_macro_f1": 0.6, "lr": 5e-4, "unfrozen": True},
]


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_plots_write_png(tmp_path):
    r = evaluate(Y_TRUE, Y_PRED, LABELS)
    assert_png(plot_confusion(r, tmp_path / "cm.png"))
    assert_png(plot_history(HISTORY, tmp_path / "plots" / "history.png"))
    assert_png(plot_history([{"epoch": 1, "train_loss": 1.0}], tmp_path / "one.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "one.png", "plots"]
    with pytest.raises(ValueError, match="at least one epoch"):
        plot_history([], tmp_path / "empty.png")


def test_unfreeze_epoch():
    from textlstm.metrics import _unfreeze_epoch

    assert _unfreeze_epoch(HISTORY) == 2
    assert _unfreeze_epoch([{**h, "unfrozen": True} for h in HISTORY]) is None  # never frozen
    assert _unfreeze_epoch([{**h, "unfrozen": False} for h in HISTORY]) is None


def test_plotting_leaves_pyplot_alone(tmp_path):
    code = (
        "import sys; from textlstm.metrics import evaluate, plot_confusion, plot_history\n"
        f"plot_confusion(evaluate(['a', 'b'], ['a', 'a'], ['a', 'b']), {str(tmp_path / 'cm.png')!r})\n"
        f"plot_history([{{'epoch': 1, 'train_loss': 1.0}}], {str(tmp_path / 'h.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
