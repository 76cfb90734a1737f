"""The TensorBoard callback: what a run writes, read back with TensorBoard's own reader, equals
the run's history; steps continue across epochs and resumes; the writer is closed; a missing
`tensorboard` package is one ConfigError that says how to install it."""
import gc
import importlib.util
import sys

import pytest
from helpers import TRAIN

from textlstm import TextClassifier
from textlstm.config import make_config
from textlstm.errors import ConfigError
from textlstm.tensorboard import TensorBoard

# The optional extra (scripts/setup.sh installs it): pip install 'textlstm[tensorboard]'
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="the tensorboard package is not installed")

LABELS = ["pos"] * 3 + ["neg"] * 3
TINY = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.batch_size=4",
        "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"', "train.seed=1"]
EPOCHS, BATCHES = 3, 2  # six texts in batches of four


def events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def series(acc, tag: str) -> tuple[list[int], list[float]]:
    found = acc.Scalars(tag)
    return [e.step for e in found], [e.value for e in found]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three epochs with a validation after every step (so one mid-epoch per epoch)."""
    log_dir = tmp_path_factory.mktemp("tb")
    cfg = make_config(overrides=[*TINY, f"train.epochs={EPOCHS}", "train.eval_every=1"])
    with TensorBoard(log_dir) as tb:
        clf = TextClassifier(cfg).fit(TRAIN, LABELS, val_texts=TRAIN[::-1], val_labels=LABELS[::-1],
                                      callbacks=[tb])
    return events(log_dir), clf.meta_["history"]


@needs_tensorboard
def test_every_step_has_its_loss_and_learning_rate_at_a_global_step(run):
    acc, _ = run
    for tag in ("step/loss", "step/lr"):
        steps, values = series(acc, tag)
        assert steps == list(range(1, EPOCHS * BATCHES + 1))  # counted across epochs
        assert all(v == v for v in values)  # finite numbers, not NaN
    assert series(acc, "step/loss")[1][0] > 0


@needs_tensorboard
def test_each_epoch_writes_its_history_record(run):
    acc, history = run
    assert len(history) == EPOCHS
    keys = ["train_loss", "val_loss", "val_accuracy", "val_macro_f1", "tokens_per_s", "padding_share",
            "lr", "seconds", "unfrozen"]
    for key in keys:
        steps, values = series(acc, f"epoch/{key}")
        assert steps == [1, 2, 3], key
        assert values == pytest.approx([float(h[key]) for h in history], rel=1e-6), key  # float32
    assert "epoch/epoch" not in acc.Tags()["scalars"]


@needs_tensorboard
def test_every_validation_is_written_mid_epoch_too(run):
    acc, history = run
    steps, values = series(acc, "validation/val_macro_f1")
    assert steps == [1, 2, 3, 4, 5, 6]  # after each step: mid-epoch after 1, 3, 5; epoch end 2, 4, 6
    assert values[1::2] == pytest.approx([h["val_macro_f1"] for h in history], rel=1e-6)
    assert {"validation/val_loss", "validation/val_accuracy"} <= set(acc.Tags()["scalars"])
    assert "validation/mid_epoch" not in acc.Tags()["scalars"]


@needs_tensorboard
def test_information_lines_are_text_at_the_current_step(tmp_path):
    tb = TensorBoard(tmp_path)
    tb.on_info("12 examples read")
    tb.on_epoch_start(1, 4, frozen=False)
    tb.on_step(1, 1, 0.7, 10, 1e-3)
    tb.on_info("embeddings trainable")
    tb.close()
    found = events(tmp_path).Tensors("info/text_summary")
    assert [(e.step, e.tensor_proto.string_val[0].decode()) for e in found] == [
        (0, "12 examples read"), (1, "embeddings trainable")]


@needs_tensorboard
def test_a_resumed_run_continues_the_step_axis(tmp_path):
    tb = TensorBoard(tmp_path)  # what a resume at epoch 2, after 3 of its 5 steps, calls
    tb.on_epoch_start(2, 5, frozen=False)
    tb.on_step(2, 4, 0.5, 10, 1e-3)
    tb.on_step(2, 5, 0.4, 10, 1e-3)
    tb.on_epoch_start(3, 5, frozen=False)
    tb.on_step(3, 1, 0.3, 10, 1e-3)
    tb.close()
    assert series(events(tmp_path), "step/loss")[0] == [9, 10, 11]


@needs_tensorboard
def test_no_file_before_the_first_event_and_the_writer_is_closed_when_collected(tmp_path):
    tb = TensorBoard(tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # a run that fails before training leaves nothing
    tb.on_epoch_start(1, 1, frozen=False)
    tb.on_step(1, 1, 0.5, 10, 1e-3)
    closer = tb._close_at_exit
    assert closer.alive
    del tb
    gc.collect()
    assert not closer.alive  # closed (and flushed) without an end-of-training hook
    assert series(events(tmp_path / "runs"), "step/loss")[0] == [1]


def test_without_the_tensorboard_package_it_says_how_to_install_it(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith(("tensorboard.",
                                                                                "torch.utils.tensorboard"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'textlstm\[tensorboard\]'"):
        TensorBoard(tmp_path)
    assert not any(tmp_path.iterdir())
