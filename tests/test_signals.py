"""Real signals sent to `textlstm train` in a subprocess: SIGTERM and SIGINT stop it with a
resumable checkpoint and one line on stderr; SIGKILL leaves the last complete checkpoint; and
`--resume` ends with the same weights as a run that was never stopped (trained in-process with
the same settings, through the same `run_train_job`).

Each subprocess spends a few seconds importing torch and scikit-learn, then trains a tiny model
on 1,500 generated sentences, under a second per epoch; six of them run here.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_corpus
from safetensors.torch import load_file

from textlstm.config import ModelConfig, TrainConfig, make_config
from textlstm.data.batching import EncodedDataset
from textlstm.jobs.train import TrainJob, run_train_job
from textlstm.model import TextLSTM
from textlstm.training.trainer import Callback, Trainer, TrainingInterrupted

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

SETTINGS = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8",
            "train.epochs=2", "train.batch_size=8", "train.threads=1", "tokenizer.kind=regex"]
STALE = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]+$")


class Runs:
    """The corpus, the environment of the subprocesses, and the weights of an uninterrupted
    run, trained once when first asked for."""

    def __init__(self, root: Path):
        self.root = root
        self.data = write_corpus(root / "train.tsv")
        self.env = {**os.environ, "TEXTLSTM_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1",
                    "COLUMNS": "500"}  # rich wraps at 80 columns without a terminal
        self._reference: dict[str, torch.Tensor] | None = None

    def start(self, out: Path, *extra: str) -> subprocess.Popen:
        sets = [arg for s in SETTINGS for arg in ("--set", s)]
        cmd = [sys.executable, "-m", "textlstm.cli", "train", str(self.data), "--out", str(out),
               "--quiet", *sets, *extra]
        return subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def reference_weights(self) -> dict[str, torch.Tensor]:
        if self._reference is None:
            out = self.root / "reference"
            cfg = make_config(overrides=SETTINGS).validate()
            run_train_job(cfg, TrainJob.with_defaults(self.data, None, None, None, out))
            self._reference = load_file(out / "model.safetensors")
        return self._reference


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("signals"))


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc {proc.returncode}) before {path} appeared: "
                        f"{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def stale_temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if STALE.match(p.name)]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has it (until the system reuses it)


def resume_and_compare(runs: Runs, out: Path, checkpoint: dict) -> str:
    """Resume the run of `out`; check it picks up `checkpoint` and ends with the reference
    weights; return its stderr."""
    proc = runs.start(out, "--resume")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    history = json.loads((out / "config.json").read_text())["meta"]["history"]
    done = checkpoint["state"]["history"]
    assert history[:len(done)] == done  # epochs finished before the stop were not run again
    mine, reference = load_file(out / "model.safetensors"), runs.reference_weights()
    assert mine.keys() == reference.keys()
    for name in mine:
        assert torch.equal(mine[name], reference[name]), name
    assert not out.with_name(out.name + ".checkpoints").exists()
    return err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_with_a_checkpoint_and_resume_matches_an_uninterrupted_run(runs, tmp_path, sig):
    out = tmp_path / "M"
    checkpoint = tmp_path / "M.checkpoints" / "checkpoint.pt"
    proc = runs.start(out)
    wait_for(checkpoint, proc)  # epoch 1 is done
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 30
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if "resume" in line.lower()]
    assert len(lines) == 1 and sig.name in lines[0] and "Traceback" not in err, err
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["state"]["epoch"] >= 1 and saved["state"]["step_in_epoch"] >= 1  # mid-epoch
    assert not out.exists()
    assert not stale_temps(tmp_path)
    resume_and_compare(runs, out, saved)


class SignalsSelf(Callback):
    """Sends this process `signals` at the given step, as a user pressing Ctrl-C would."""

    def __init__(self, at_step: int, signals: list[signal.Signals]):
        self.at_step, self.signals = at_step, signals

    def on_step(self, epoch, step, loss, tokens, lr):
        if step == self.at_step:
            for sig in self.signals:
                os.kill(os.getpid(), sig)


def tiny_trainer(tmp_path, callback):
    data = EncodedDataset([np.array([2, 3, 4])] * 16, np.array([0, 1] * 8))
    model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=8, attention_dim=8), 5, 2)
    cfg = TrainConfig(epochs=2, batch_size=2, threads=1)
    return Trainer(model, cfg, data, n_labels=2, checkpoint_dir=tmp_path / "ck", callbacks=[callback])


def test_first_signal_finishes_the_step_and_second_aborts_in_process(tmp_path):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted, match="SIGINT at epoch 1, step 3.*--resume"):
        tiny_trainer(tmp_path, SignalsSelf(3, [signal.SIGINT])).fit()
    assert torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=True)["state"]["step_in_epoch"] == 3
    with pytest.raises(KeyboardInterrupt):
        tiny_trainer(tmp_path, SignalsSelf(2, [signal.SIGTERM, signal.SIGTERM])).fit()
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # put back after training
    assert not stale_temps(tmp_path)


def test_sigkill_then_resume_removes_stale_temps_and_continues(runs, tmp_path):
    out = tmp_path / "M"
    folder = tmp_path / "M.checkpoints"
    proc = runs.start(out)
    wait_for(folder / "checkpoint.pt", proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # a save killed half way leaves its temporary; make one whose writer is surely dead
    stale = folder / f".checkpoint.pt.tmp-{dead_pid()}-abcd"
    stale.write_bytes(b"half a checkpoint")
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert not out.exists()
    err = resume_and_compare(runs, out, saved)
    assert f"removed {stale} left by an interrupted save" in err
    assert not stale_temps(tmp_path)
