"""`textlstm train` as a library function: read, train with checkpoints, evaluate the best
model on validation and test, save the model directory — never over a result by accident."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import check_output_dir, remove_path
from ..callbacks import Callback
from ..classifier import TextClassifier
from ..config import Config
from ..data.corpora import DEFAULT_CORPUS
from ..data.readers import read_dataset
from ..embeddings.matrix import VectorsArg
from ..errors import TrainingError
from ..hashing import file_sha256
from ..locks import exclusive
from ..training import distributed
from ..training.checkpoint import CHECKPOINT


BUNDLED_PRESET = "small-sentiment"  # the settings of a run on the bundled corpus (no data, no settings)


@dataclass
class TrainJob:
    data: Path
    val: Path | None
    test: Path | None
    vectors: VectorsArg  # a source or several; None: the settings' embeddings.vectors
    out: Path
    resume: bool = False
    overwrite: bool = False
    unlabelled: Path | None = None  # texts for train.vat / train.entropy_min

    @classmethod
    def with_defaults(cls, data, val, test, vectors, out, **kw) -> "TrainJob":
        """No data argument: the bundled sentiment corpus with its dev and test splits."""
        if data is None:
            data = DEFAULT_CORPUS / "train.tsv"
            val = val or DEFAULT_CORPUS / "dev.tsv"
            test = test or DEFAULT_CORPUS / "test.tsv"
        return cls(Path(data), val and Path(val), test and Path(test), vectors or None, Path(out), **kw)

    @property
    def checkpoint_dir(self) -> Path:
        return self.out.with_name(self.out.name + ".checkpoints")


@dataclass
class TrainJobResult:
    classifier: TextClassifier
    model_dir: Path | None  # None on the ranks other than 0 of a torchrun job: they save nothing
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


def evaluate_file(clf: TextClassifier, path: Path) -> dict[str, Any]:
    examples, _ = read_dataset(path, clf.config.data)
    return clf.evaluate([e.text for e in examples], [e.label for e in examples])


def run_train_job(cfg: Config, job: TrainJob, callbacks: list[Callback] | None = None) -> TrainJobResult:
    """Train, evaluate and save as `job` says, holding the lock of `job.out` (and so of its
    checkpoints) throughout: a second job on the same output fails at once. Under torchrun
    rank 0 holds it for all ranks."""
    if not distributed.is_main_process():
        return _train_job(cfg, job, callbacks)
    with exclusive(job.out, "--out"):
        return _train_job(cfg, job, callbacks)


def _check_unfinished(job: TrainJob) -> None:
    """An interrupted run's checkpoint is continued (--resume) or deliberately dropped
    (--overwrite), never silently replaced by a new run."""
    if job.resume or not (job.checkpoint_dir / CHECKPOINT).exists():
        return
    if not job.overwrite:
        raise TrainingError(f"An interrupted run left {job.checkpoint_dir / CHECKPOINT}; pass --resume "
                            "to continue it, or --overwrite to start again (its checkpoint is discarded).")
    remove_path(job.checkpoint_dir)


def _train_job(cfg: Config, job: TrainJob, callbacks: list[Callback] | None) -> TrainJobResult:
    check_output_dir(job.out, job.overwrite)
    if distributed.is_main_process():
        _check_unfinished(job)
    clf = TextClassifier(cfg)
    clf.train(job.data, val=job.val, vectors=job.vectors, checkpoint_dir=job.checkpoint_dir,
              resume=job.resume, callbacks=callbacks, unlabelled=job.unlabelled)
    if not distributed.is_main_process():  # under torchrun rank 0 evaluates and saves
        return TrainJobResult(clf, None)
    result = TrainJobResult(clf, job.out)
    if job.val is not None:
        result.evaluations["validation"] = evaluate_file(clf, job.val)
    if job.test is not None:
        result.evaluations["test"] = evaluate_file(clf, job.test)
    clf.meta_["evaluations"] = result.evaluations
    clf.meta_["data"] = {"train": str(job.data), "val": job.val and str(job.val),
                         "test": job.test and str(job.test),
                         **({"unlabelled": str(job.unlabelled)} if job.unlabelled else {})}
    clf.meta_["data_files"] = _data_files(clf, job, result.evaluations)
    clf.save(job.out)
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    return result


def _data_files(clf: TextClassifier, job: TrainJob, evaluations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the model was trained and measured on, for its card: each file's name, SHA-256,
    size, examples read and examples per label."""
    counts = clf.meta_.get("label_counts") or {}
    read = {Path(r.path): r.n_kept for r in clf.reports_}
    files: dict[str, Any] = {}
    for role, path in (("train", job.data), ("val", job.val), ("test", job.test)):
        if path is None:
            files[role] = None
            continue
        record: dict[str, Any] = {"path": str(path), "sha256": file_sha256(path) if path.is_file() else None,
                                  "bytes": path.stat().st_size if path.is_file() else None,
                                  "examples": read.get(Path(path))}
        if role == "test" and "test" in evaluations:
            record["examples"] = evaluations["test"]["n"]
            record["label_counts"] = {k: v["support"] for k, v in evaluations["test"]["per_class"].items()}
        elif role == "val" or job.val is not None:
            record["label_counts"] = counts.get(role)
        else:  # the validation split came out of the training file
            merged = dict(counts.get("train") or {})
            for label, n in (counts.get("val") or {}).items():
                merged[label] = merged.get(label, 0) + n
            record["label_counts"] = merged
        files[role] = record
    return files

