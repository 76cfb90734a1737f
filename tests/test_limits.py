"""Limits and guards found by the second robustness probe (issue 24): text length and memory at
prediction, implausible label sets, non-finite settings and weights, model files that lie,
disk full, and two jobs on one output."""
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TRAIN, write_tsv

from textlstm import TextClassifier
from textlstm.config import make_config
from textlstm.data.tokenize import MAX_TEXT_TOKENS, Tokenizer
from textlstm.errors import ConfigError, DataError, DiskFullError, ModelFileError, TrainingError
from textlstm.jobs.predict import predict_file
from textlstm.jobs.train import TrainJob, run_train_job
from textlstm.locks import LockedError, exclusive, lock_path
from textlstm.model import artifact as artifact_mod
from textlstm.model.artifact import MANIFEST_FILE, TENSORS_FILE, load_artifact

LABELS = ["pos"] * 3 + ["neg"] * 3
TINY = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.epochs=1",
        "train.batch_size=4", "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"']


def tiny(*extra):
    return make_config(overrides=[*TINY, *extra])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model"
    TextClassifier(tiny()).fit(TRAIN, LABELS).save(path)
    return path


def copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def resign(model: Path) -> None:
    """Rewrite the manifest to match the files, as a forger would."""
    files = {name: artifact_mod.file_record(model / name) for name in artifact_mod.CHECKED_FILES}
    (model / MANIFEST_FILE).write_text(json.dumps({"format_version": 1, "files": files}))


# -- 1, 2: any length at prediction, bounded memory ---------------------------------------------

def test_no_text_gives_more_tokens_than_the_ceiling():
    tok = Tokenizer(make_config(overrides=['tokenizer.kind="regex"']).tokenizer)
    tokens = tok.tokenize("x " * (MAX_TEXT_TOKENS + 5000))
    assert len(tokens) == MAX_TEXT_TOKENS


def test_an_enormous_text_is_split_only_near_its_kept_end(monkeypatch):
    tok = Tokenizer(make_config(overrides=['tokenizer.kind="regex"']).tokenizer)
    seen = []
    real = tok._split
    monkeypatch.setattr(tok, "_split", lambda text: seen.append(len(text)) or real(text))
    text = "good film " * 3_000_000  # 30 M characters, 6 M tokens
    assert len(tok.tokenize(text)) == MAX_TEXT_TOKENS
    assert max(seen) < len(text) // 4  # never the whole text


def test_max_tokens_above_the_ceiling_is_refused():
    with pytest.raises(ConfigError, match="max_tokens"):
        Tokenizer(make_config(overrides=[f"tokenizer.max_tokens={MAX_TEXT_TOKENS + 1}"]).tokenizer)


def test_predicting_a_text_over_the_kernel_limit(saved):
    # 1,064,385 tokens crashed the LSTM kernel ("could not create a primitive", limit 2**20 steps)
    clf = TextClassifier.load(saved)
    proba = clf.predict_proba(["great " * 1_064_385, "awful"])
    assert proba.shape == (2, 2) and np.isfinite(proba).all()


# -- 3: implausible label sets ------------------------------------------------------------------

def test_a_label_per_row_is_refused_before_training():
    texts = [f"text number {i}" for i in range(200)]
    with pytest.raises(DataError, match="200 distinct labels for 200 examples.*data.max_labels"):
        TextClassifier(tiny()).fit(texts, [str(i) for i in range(200)])


def test_over_the_label_ceiling_is_refused_and_the_setting_allows_it(monkeypatch):
    import textlstm.training.start as start_mod
    monkeypatch.setattr(start_mod, "MAX_LABELS", 30)
    texts = [f"text {i} word{i % 40}" for i in range(160)]
    labels = [f"L{i % 40}" for i in range(160)]
    with pytest.raises(DataError, match="more than 30"):
        TextClassifier(tiny()).fit(texts, labels)
    clf = TextClassifier(tiny("data.max_labels=40", "data.val_split=0.25")).fit(texts, labels)
    assert len(clf.classes_) == 40


def test_prediction_and_validation_never_hold_a_texts_by_labels_matrix(monkeypatch):
    import textlstm.model.infer as infer
    texts = [f"text {i} word{i % 25}" for i in range(100)]
    labels = [f"L{i % 25}" for i in range(100)]
    calls = []
    real = infer.predict_logits
    monkeypatch.setattr(infer, "predict_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    clf = TextClassifier(tiny("data.val_split=0.3")).fit(texts, labels)
    assert clf.predict(texts[:3]) and calls == []


# -- 7, 10: settings and weights that are not finite ------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", '"nan"'])
def test_non_finite_float_settings_are_refused(value):
    with pytest.raises(ConfigError, match="train.lr = .* must be a finite number"):
        make_config(overrides=[f"train.lr={value}"])


@pytest.mark.parametrize("setting, message", [
    ("train.weight_decay=-0.1", "0 or more"), ("train.momentum=1.0", r"\[0, 1\)"),
    ("train.clip_norm=-1", "0 or more"), ("model.attention_dim=0", "positive")])
def test_float_and_int_settings_are_range_checked(setting, message):
    with pytest.raises(ConfigError, match=message):
        make_config(overrides=[setting])


def test_a_misspelt_setting_suggests_the_key():
    with pytest.raises(ConfigError, match="Did you mean model.hidden_size"):
        make_config(overrides=["model.hiden_size=64"])


def test_weights_that_turn_non_finite_stop_training_and_nothing_is_saved(tmp_path, monkeypatch):
    from textlstm.training import trainer as trainer_mod
    real_make = trainer_mod.make_optimizer

    def make(model, cfg, lr):  # an update that leaves NaN, as an infinite learning rate does
        opt = real_make(model, cfg, lr)

        def poison(*_):
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).view(-1)[0] = float("nan")
        opt.register_step_post_hook(poison)
        return opt

    monkeypatch.setattr(trainer_mod, "make_optimizer", make)
    data = write_tsv(tmp_path / "train.tsv", zip(TRAIN * 4, LABELS * 4))
    job = TrainJob(data, None, None, None, tmp_path / "out")
    with pytest.raises(TrainingError, match=r"Non-finite weights \(.*\) after the update at epoch 1, step 1"):
        run_train_job(tiny("train.epochs=2"), job)
    assert not (tmp_path / "out").exists()


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path):
    clf = TextClassifier(tiny()).fit(TRAIN, LABELS)
    with torch.no_grad():
        next(clf.model_.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(ModelFileError, match="not finite"):
        clf.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


# -- 9, 11, 12: model files that lie ------------------------------------------------------------

def test_loading_refuses_nan_weights_even_when_re_signed(saved, tmp_path):
    import safetensors.torch
    model = copy_model(saved, tmp_path / "m")
    tensors = safetensors.torch.load_file(str(model / TENSORS_FILE))
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    safetensors.torch.save_file(tensors, str(model / TENSORS_FILE), metadata={"format": "pt"})
    resign(model)
    with pytest.raises(ModelFileError, match="NaN or infinity"):
        TextClassifier.load(model)


def test_loading_refuses_duplicate_labels_even_when_re_signed(saved, tmp_path):
    model = copy_model(saved, tmp_path / "m")
    doc = json.loads((model / "config.json").read_text())
    doc["labels"] = [doc["labels"][0]] * len(doc["labels"])
    (model / "config.json").write_text(json.dumps(doc))
    resign(model)
    with pytest.raises(ModelFileError, match="unique"):
        TextClassifier.load(model)


def test_a_forged_size_fails_before_any_hashing(saved, tmp_path, monkeypatch):
    model = copy_model(saved, tmp_path / "m")
    with open(model / TENSORS_FILE, "r+b") as fh:  # a sparse 20 GB file
        fh.truncate(20 * 2**30)
    manifest = json.loads((model / MANIFEST_FILE).read_text())
    manifest["files"][TENSORS_FILE]["size"] = 20 * 2**30
    (model / MANIFEST_FILE).write_text(json.dumps(manifest))

    def no_hashing(path):
        raise AssertionError(f"hashed {path} before the cheap checks")
    monkeypatch.setattr(artifact_mod, "file_sha256", no_hashing)
    with pytest.raises(ModelFileError, match="tensors cover"):
        load_artifact(model)


# -- 6: disk full -------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system (tmpfs; needs root) where a model cannot fit."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                        capture_output=True).returncode
    if rc != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def fill(disk: Path, leave: int) -> None:
    st = os.statvfs(disk)
    (disk / "ballast").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def test_saving_a_model_on_a_full_disk_is_one_clear_error(small_disk):
    clf = TextClassifier(tiny("model.embedding_dim=64", "model.hidden_size=64")).fit(TRAIN, LABELS)
    fill(small_disk, 4096)
    with pytest.raises(DiskFullError, match=f"No space left on the device while writing {small_disk}/m"):
        clf.save(small_disk / "m")
    assert not (small_disk / "m").exists() and [p.name for p in small_disk.iterdir()] == ["ballast"]


def test_checkpoint_on_a_full_disk_is_one_clear_error(small_disk):
    from textlstm.training.checkpoint import save_checkpoint
    save_checkpoint(small_disk / "ck", {"w": torch.zeros(10)})
    before = (small_disk / "ck" / "checkpoint.pt").read_bytes()
    fill(small_disk, 0)
    with pytest.raises(DiskFullError, match="checkpoint.pt is as it was"):
        save_checkpoint(small_disk / "ck", {"w": torch.zeros(1_000_000)})
    assert (small_disk / "ck" / "checkpoint.pt").read_bytes() == before


def test_predictions_on_a_full_disk_keep_the_rows_written(saved, small_disk, tmp_path):
    clf = TextClassifier.load(saved)
    data = tmp_path / "in.txt"
    data.write_text("".join(f"text {i} great film\n" for i in range(20000)))
    fill(small_disk, 64 * 1024)
    with pytest.raises(DiskFullError, match="rows written so far are kept: pass --resume"):
        predict_file(clf, data, small_disk / "out.jsonl", chunk_size=500)
    assert not (small_disk / "out.jsonl").exists()


def test_disk_full_in_the_cli_is_one_line_and_exit_1(saved, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from textlstm.cli import app
    real = Path.write_bytes

    def full(self, data):
        if self.name == TENSORS_FILE:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", full)
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN, LABELS))
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "o"),
                                      *sum((["--set", s] for s in TINY), [])])
    assert result.exit_code == 1, result.output
    assert "No space left on the device while writing" in result.output
    assert "Traceback" not in result.output


# -- 13, 14, 15: lost work ----------------------------------------------------------------------

def test_rerun_over_an_unfinished_run_is_refused(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN, LABELS))
    job = TrainJob(data, None, None, None, tmp_path / "out")
    job.checkpoint_dir.mkdir()
    (job.checkpoint_dir / "checkpoint.pt").write_bytes(b"an interrupted run's state")
    with pytest.raises(TrainingError, match="--resume to continue it, or --overwrite"):
        run_train_job(tiny(), job)
    assert (job.checkpoint_dir / "checkpoint.pt").read_bytes() == b"an interrupted run's state"
    job.overwrite = True
    run_train_job(tiny(), job)
    assert (tmp_path / "out" / TENSORS_FILE).exists() and not job.checkpoint_dir.exists()


HOLD = textwrap.dedent("""
    import sys, time
    from textlstm.locks import exclusive
    with exclusive(sys.argv[1], "--out"):
        print("held", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def held(tmp_path):
    """Another process holding the lock of tmp_path/'out' until the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out.jsonl")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield tmp_path / "out.jsonl"
    proc.kill()
    proc.wait()


def test_a_second_train_on_the_same_out_fails_at_once(tmp_path, held):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN, LABELS))
    with pytest.raises(LockedError, match=r"Another textlstm job \(pid \d+\) is writing"):
        run_train_job(tiny(), TrainJob(data, None, None, None, held))
    assert not held.exists()


def test_a_second_predict_on_the_same_output_fails_at_once(saved, tmp_path, held):
    data = tmp_path / "in.txt"
    data.write_text("good\nbad\n")
    with pytest.raises(LockedError, match="choose another --output"):
        predict_file(TextClassifier.load(saved), data, held)
    assert not held.exists() and not held.with_name(held.name + ".partial").exists()


def test_a_killed_holder_releases_the_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "m")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait()
    assert lock_path(tmp_path / "m").exists()  # left behind by the kill, but no longer held
    with exclusive(tmp_path / "m", "--out"):
        pass
    assert not lock_path(tmp_path / "m").exists()
