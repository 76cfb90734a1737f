"""`textlstm train` under torchrun with 2 CPU processes (gloo): the same result as one process
trained on the same global batches, only rank 0 writes, and an interrupted distributed run
resumes to exactly the weights of an uninterrupted one.

Each torchrun launch spends ~10 s starting three Python processes that import torch."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import write_corpus
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(os.name != "posix" or not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(), reason="needs gloo on POSIX")

TINY = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.threads=1",
        "tokenizer.kind=regex", "data.val_split=0.2", "train.patience=0"]


def command(data: Path, out: Path, settings: list[str], *extra: str, procs: int = 2) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={procs}"] if procs > 1 else [sys.executable]
    sets = [arg for s in TINY + settings for arg in ("--set", s)]
    return [*launcher, "-m", "textlstm.cli", "train", str(data), "--out", str(out), "--quiet",
            *sets, *extra]


def env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TEXTLSTM_CACHE": str(tmp / "cache"), "OMP_NUM_THREADS": "1",
            "COLUMNS": "500"}


def run(cmd: list[str], tmp: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env(tmp), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def write_vectors(path: Path) -> Path:
    words = "the a film movie story plot acting was is and it this good great bad awful".split()
    rng = random.Random(1)
    path.write_text("".join(f"{w} {' '.join(f'{rng.gauss(0, 1):.4f}' for _ in range(8))}\n"
                            for w in words), encoding="utf-8")
    return path


def test_two_processes_match_one_process_on_the_same_global_batches(tmp_path):
    """With vectors the embeddings are frozen for epoch 1 and then trained: DDP is rebuilt."""
    data = write_corpus(tmp_path / "train.tsv", 203, max_words=12)  # odd: the last global batch is uneven
    vectors = write_vectors(tmp_path / "vectors.txt")
    settings = ["train.epochs=3", "model.dropout=0", "model.embedding_dropout=0"]
    two = run(command(data, tmp_path / "two", settings, "--batch-size", "8", "--vectors", str(vectors)), tmp_path)
    run(command(data, tmp_path / "one", settings, "--batch-size", "16", "--vectors", str(vectors), procs=1), tmp_path)
    assert two.stdout.count("model saved to") == 1  # rank 0 reports and saves, rank 1 does not
    assert max_diff(tmp_path / "one", tmp_path / "two") < 1e-4
    history = json.loads((tmp_path / "two" / "config.json").read_text())["meta"]["history"]
    assert [h["unfrozen"] for h in history] == [False, True, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "one", "train.tsv", "two", "vectors.txt"]


def test_interrupted_distributed_run_resumes_to_the_same_weights(tmp_path):
    data = write_corpus(tmp_path / "train.tsv", 1501, max_words=12)
    settings = ["train.epochs=6", "model.dropout=0.2"]  # per-rank dropout masks must resume too
    out, checkpoint = tmp_path / "R", tmp_path / "R.checkpoints" / "checkpoint.pt"
    proc = subprocess.Popen(command(data, out, settings, "--batch-size", "8"), env=env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Continue with --resume" in err, err[-3000:]
    state = torch.load(checkpoint, weights_only=True)
    assert state["fingerprint"]["world_size"] == 2 and len(state["torch_rng_ranks"]) == 2
    assert not out.exists()
    run(command(data, out, settings, "--batch-size", "8", "--resume"), tmp_path)
    run(command(data, tmp_path / "U", settings, "--batch-size", "8"), tmp_path)
    assert max_diff(out, tmp_path / "U") == 0.0


def test_multilabel_training_under_torchrun_matches_one_process(tmp_path):
    """A sigmoid per label: the loss, validation (probabilities gathered from both ranks) and
    the tuned threshold agree with one process on the same global batches."""
    rng = random.Random(3)
    cues = {"joy": "happy glad", "anger": "angry mad", "fear": "scared afraid"}
    lines = []
    for _ in range(160):
        labs = [lab for lab in cues if rng.random() < 0.4]
        words = [rng.choice(cues[lab].split()) for lab in labs] + rng.choices("the a day it was".split(), k=4)
        rng.shuffle(words)
        lines.append(json.dumps({"text": " ".join(words), "labels": labs}))
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n")
    settings = ["train.epochs=2", "model.dropout=0", "model.embedding_dropout=0", "train.lr=0.01"]
    two = run(command(data, tmp_path / "two", settings, "--batch-size", "8"), tmp_path)
    run(command(data, tmp_path / "one", settings, "--batch-size", "16", procs=1), tmp_path)
    assert two.stdout.count("model saved to") == 1
    assert max_diff(tmp_path / "one", tmp_path / "two") < 1e-4
    metas = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("one", "two")]
    assert all(m["config"]["model"]["task"] == "multilabel" for m in metas)
    assert metas[0]["meta"]["thresholds"] == metas[1]["meta"]["thresholds"]
    assert [h["val_micro_f1"] for h in metas[0]["meta"]["history"]] == \
        pytest.approx([h["val_micro_f1"] for h in metas[1]["meta"]["history"]], abs=1e-6)
