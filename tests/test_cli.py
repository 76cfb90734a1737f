import json

import pytest
from helpers import ROWS, write_tsv
from typer.testing import CliRunner

from textlstm.cli import app

runner = CliRunner()
FAST = ["--set", "model.hidden_size=8", "--set", "model.embedding_dim=8", "--set", "train.epochs=2",
        "--set", "train.threads=1", "--set", "tokenizer.kind=regex"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = write_tsv(d / "train.tsv", ROWS * 3)
    dev = write_tsv(d / "dev.tsv", ROWS)
    res = runner.invoke(app, ["train", str(data), "--val", str(dev), "--test", str(dev),
                              "--out", str(d / "model"), "--quiet", "--plots", str(d / "plots"), *FAST])
    assert res.exit_code == 0, res.output
    return d, res


def test_train_writes_a_model_and_reports(trained):
    d, res = trained
    assert (d / "model" / "config.json").exists() and (d / "model" / "model.safetensors").exists()
    assert "test" in res.output and "model saved" in res.output
    assert (d / "plots" / "training_curves.png").stat().st_size > 0
    assert not (d / "model.checkpoints").exists()


def test_eval_json_and_plots(trained, tmp_path):
    d, _ = trained
    res = runner.invoke(app, ["eval", str(d / "model"), str(d / "dev.tsv"), "--json", str(tmp_path / "m.json"),
                              "--plots", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "per_class", "confusion_matrix", "labels"} <= set(report)
    assert set(report["per_class"]["positive"]) >= {"precision", "recall", "f1", "support"}
    assert (tmp_path / "p" / "confusion_matrix.png").exists()


def test_predict_arguments_stdin_and_files(trained, tmp_path):
    d, _ = trained
    res = runner.invoke(app, ["predict", str(d / "model"), "what a great film", "--proba",
                              "--explain", str(tmp_path / "e.html")])
    assert res.exit_code == 0, res.output
    assert "p_" not in res.output and "positive=" in res.output
    assert "<span" in (tmp_path / "e.html").read_text()
    res = runner.invoke(app, ["predict", str(d / "model")], input="great\nawful\n")
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 2
    for suffix in ("csv", "jsonl"):
        out = tmp_path / f"pred.{suffix}"
        res = runner.invoke(app, ["predict", str(d / "model"), "--input", str(d / "dev.tsv"), "--output", str(out)])
        assert res.exit_code == 0, res.output
        lines = out.read_text().strip().splitlines()
        assert len(lines) == len(ROWS) + (1 if suffix == "csv" else 0)


def test_info_shows_labels_and_metrics(trained):
    d, _ = trained
    res = runner.invoke(app, ["info", str(d / "model")])
    assert res.exit_code == 0, res.output
    assert "positive" in res.output and "validation: accuracy" in res.output


def test_bad_input_is_one_clear_line_and_exit_1(trained, tmp_path):
    d, _ = trained
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tsentiment\nfine\tpositive\n")
    res = runner.invoke(app, ["eval", str(d / "model"), str(bad), "--label-field", "label"])
    assert res.exit_code == 1
    assert "error:" in res.output and "Traceback" not in res.output and "label" in res.output


def test_refuses_to_overwrite_a_model(trained):
    d, _ = trained
    res = runner.invoke(app, ["train", str(d / "train.tsv"), "--out", str(d / "model"), "--quiet", *FAST])
    assert res.exit_code == 1 and "--overwrite" in res.output


def test_unknown_setting_lists_allowed_keys(tmp_path):
    res = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--set", "train.lrr=1"])
    assert res.exit_code == 1 and "Keys of [train]" in res.output


def test_python_cli_py_behaves_like_textlstm(trained):
    import subprocess
    import sys
    from pathlib import Path
    d, _ = trained
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "cli.py"), "predict", str(d / "model"), "great"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\t")[0] in {"positive", "negative"}
    res = subprocess.run([sys.executable, str(root / "cli.py"), "info", str(d / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.startswith("error:") and "Traceback" not in res.stderr


def test_pretrain_writes_vectors_that_train_can_use(tmp_path):
    text = tmp_path / "unsup.txt"
    text.write_text("".join(f"{t} and more words here\n" for t, _ in ROWS * 10))
    res = runner.invoke(app, ["pretrain", str(text), "--out", str(tmp_path / "v.txt"), "--vector-size", "8",
                              "--min-count", "1", "--epochs", "2", "--tokenizer", "regex"])
    assert res.exit_code == 0, res.output
    data = write_tsv(tmp_path / "train.tsv", ROWS * 3)
    res = runner.invoke(app, ["train", str(data), "--vectors", str(tmp_path / "v.txt"), "--out",
                              str(tmp_path / "m"), *FAST])
    assert res.exit_code == 0, res.output
    assert "vectors cover" in res.output


def test_corpora_list_names_the_recipes():
    res = runner.invoke(app, ["corpora", "list"])
    assert res.exit_code == 0
    for name in ("imdb", "sst2", "trec"):
        assert name in res.output


def test_a_bad_flag_value_is_reported_under_the_flag_typed(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", ROWS)
    # a usage error (exit 2) naming the flag, found before any data is read
    for flag, value, says in [("--format", "xml", "'xml' is not allowed"), ("--on-bad-lines", "ignore", "not allowed"),
                              ("--scale-lr", "cubic", "not allowed"), ("--batch-size", "0", "must be positive"),
                              ("--lr", "nan", "finite"), ("--val-split", "1.5", "[0, 1)")]:
        res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), flag, value])
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.replace("│", " ").split())
        assert f"Invalid value for {flag}: " in text and says in text and "--set" not in text, text
        assert "train." not in text and "data." not in text, text


def test_flags_not_given_leave_the_config_files_settings_alone(tmp_path):
    # a TOML [data] table is not overwritten by the defaults of --format / --encoding
    data = tmp_path / "t.txt"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in ROWS * 2))
    conf = tmp_path / "c.toml"
    conf.write_text('[data]\nformat = "tsv"\ntext_field = "sentence"\n')
    res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), "--config", str(conf),
                              "--quiet", *FAST])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["config"]["data"]
    assert saved["format"] == "tsv" and saved["text_field"] == "sentence"


def test_paths_given_to_options_must_exist_before_anything_runs(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", ROWS)
    for flag in ("--val", "--test", "--vectors", "--config"):
        res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), flag, str(tmp_path / "nope")])
        flat = " ".join(res.output.replace("│", " ").split())  # typer's usage error, in a box
        assert res.exit_code == 2 and f"Invalid value for '{flag}'" in flat and "does not exist" in flat, flat
    assert not (tmp_path / "m").exists()


def test_typed_paths_reach_the_settings_unchanged(tmp_path):
    # a path the old JSON-then-TOML round trip would have had to escape: quotes and a backslash
    odd = tmp_path / 'enc "x" \\ y'
    odd.mkdir()
    res = runner.invoke(app, ["train", write_tsv(tmp_path / "t.tsv", ROWS * 3).as_posix(), "--out",
                              str(tmp_path / "m"), "--encoder", str(odd)])
    assert res.exit_code == 1 and str(odd) in res.output  # not an encoder: named exactly as given


def test_a_validation_share_too_small_to_stratify_still_trains(tmp_path):
    # 8 texts, 2 classes, val_split 0.1: one validation text cannot hold every class
    res = runner.invoke(app, ["train", str(write_tsv(tmp_path / "t.tsv", ROWS)), "--out", str(tmp_path / "m"),
                              "--quiet", *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["meta"]["n_val"] == 1
