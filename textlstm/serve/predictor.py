"""What the server predicts with: a model directory (PyTorch, through `TextClassifier`) or an
exported `.onnx` file with its sidecar (onnxruntime; no PyTorch call per request).

Both give `predict_proba(texts)` in `classes` order, exactly what `TextClassifier.predict_proba`
(or `OnnxClassifier.predict_proba`) gives for the same texts, and describe themselves for
`GET /model`. Their methods are called from one thread at a time (the batcher's)."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.vocab import PAD_ID
from ..errors import ModelFileError
from ..model.artifact import library_versions

WARM_UP_TEXT = "warm up"


@dataclass
class Prediction:
    """One text's probabilities (in `classes` order) and, when asked, its attention weights."""

    probabilities: np.ndarray  # float32 (labels,)
    tokens: list[tuple[str, float]] | None = None


class Predictor:
    """The interface the server needs; `TorchPredictor` and `OnnxPredictor` implement it."""

    format: str = ""
    source: Path
    classes: list[str]
    can_explain: bool = False
    explain_unavailable: str = ""  # why not, when `can_explain` is false
    multilabel: bool = False  # probabilities are a sigmoid per label; `thresholds` pick the labels
    thresholds: np.ndarray | None = None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def explain_tokens(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {}

    def metrics(self) -> dict[str, Any]:
        return {}

    def versions(self) -> dict[str, Any]:
        return {"textlstm": textlstm_version(), **library_versions()}

    def describe(self) -> dict[str, Any]:
        """Labels, a settings summary, the metrics saved with the model and library versions."""
        doc = {"path": str(self.source), "format": self.format, "labels": list(self.classes),
               "task": "multilabel" if self.multilabel else "multiclass", "explain": self.can_explain,
               "settings": self.settings(), "metrics": self.metrics(), "versions": self.versions()}
        if self.multilabel:
            doc["thresholds"] = {c: float(t) for c, t in zip(self.classes, self.thresholds)}
        return finite(doc)

    def warm_up(self) -> None:
        """One prediction, so that threads and lazy state exist before the first request."""
        self.predict_proba([WARM_UP_TEXT])


class TorchPredictor(Predictor):
    """A model directory, served through `TextClassifier` (so `textlstm predict` agrees)."""

    format = "directory"

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        from ..classifier import TextClassifier

        self.source = Path(path)
        clf = TextClassifier.load(self.source)
        if threads:  # our own copy of the settings: `_ready` applies them with setup_threads
            clf.config = dataclasses.replace(clf.config, train=dataclasses.replace(clf.config.train, threads=threads))
        self.clf = clf
        self.classes = list(clf.classes_)
        self.multilabel = clf.multilabel
        self.thresholds = clf.thresholds_ if clf.multilabel else None
        from ..ensemble import networks
        poolings = sorted({n.config.model.pooling for n in networks(clf)})  # an ensemble: its members'
        self.can_explain = all("attention" in p.split("+") for p in poolings)
        if not self.can_explain:
            self.explain_unavailable = (f"this model pools with {', '.join(map(repr, poolings))}; explanations "
                                        "need attention pooling (model.pooling) in every member")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        # one forward pass per gathered batch: predict_proba sorts it by length inside
        return self.clf.predict_proba(list(texts), batch_size=max(1, len(texts)))

    def explain_tokens(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        return [doc["tokens"] for doc in self.clf.explain(list(texts))]

    def settings(self) -> dict[str, Any]:
        cfg = self.clf.config.to_dict()
        members = (self.clf.meta_ or {}).get("ensemble", {}).get("members")
        return {"model": cfg["model"], "tokenizer": cfg["tokenizer"], "vocab_size": len(self.clf.vocab_),
                **({"ensemble_members": members} if members else {}),
                "threads": self.clf.config.train.threads, "device": self.clf.config.train.device}

    def metrics(self) -> dict[str, Any]:
        meta = self.clf.meta_ or {}
        keep = ("best_val_macro_f1", "best_epoch", "evaluations", "n_train", "n_val", "stopped_early")
        return {key: meta[key] for key in keep if key in meta}


class OnnxPredictor(Predictor):
    """An exported graph and its sidecar: textlstm's tokenizer and vocabulary, numpy padding
    and onnxruntime. Explanations are unavailable: the graph has no attention output."""

    format = "onnx"
    explain_unavailable = ("an exported ONNX graph has no attention output; serve the model directory "
                           "to explain predictions")

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelFileError(f"Serving an .onnx file needs onnxruntime ({exc}); pip install "
                                 "'textlstm[onnx]', or serve the model directory.") from None
        from ..data.tokenize import Tokenizer
        from ..data.vocab import Vocab
        from ..jobs.export import read_sidecar

        self.source = Path(path)
        if not self.source.is_file():
            raise ModelFileError(f"{self.source} is not a file: give an exported .onnx file or a model directory.")
        self.meta = read_sidecar(self.source)
        self.classes = list(self.meta["labels"])
        self.multilabel = self.meta.get("task") == "multilabel"
        if self.multilabel:
            self.thresholds = np.asarray(self.meta.get("thresholds") or [0.5] * len(self.classes), dtype=np.float32)
        self.tokenizer = Tokenizer.from_dict(self.meta["tokenizer"])
        self.vocab = Vocab(self.meta["vocab"], case_fallback=bool(self.meta.get("vocab_case_fallback", False)))
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(self.source), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors on a bad file
            raise ModelFileError(f"onnxruntime cannot load {self.source}: {exc}") from None
        self.threads = threads or 0
        self._ort_version = onnxruntime.__version__

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        from ..data.batching import EncodedDataset, sorted_batches  # numpy only, as used here

        data = EncodedDataset.encode(list(self.tokenizer.pipe(texts, n_process=1)), self.vocab)
        out = np.empty((len(data), len(self.classes)), dtype=np.float32)
        for index in sorted_batches(data.lengths, max(1, len(data))):
            ids, lengths = pad([data.ids[i] for i in index])
            out[index] = self.session.run(["probabilities"], {"ids": ids, "lengths": lengths})[0]
        return out

    def settings(self) -> dict[str, Any]:
        return {"opset": self.meta.get("opset"), "quantization": self.meta.get("quantization"),
                "tokenizer": self.meta["tokenizer"], "vocab_size": len(self.vocab), "threads": self.threads,
                "exported_with": self.meta.get("library_versions")}

    def versions(self) -> dict[str, Any]:
        return {**super().versions(), "onnxruntime": self._ort_version}


def pad(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id arrays with `<pad>`: `(ids (batch, seq) int64, lengths (batch,) int64)`."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    ids = np.full((len(seqs), int(lengths.max())), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = seq
    return ids, lengths


def load_predictor(path: str | os.PathLike, threads: int | None = None) -> Predictor:
    """A model directory or an `.onnx` file, ready to predict (`ModelFileError` otherwise)."""
    source = Path(path)
    if source.is_dir():
        return TorchPredictor(source, threads)
    if source.suffix.lower() == ".onnx":
        return OnnxPredictor(source, threads)
    if not source.exists():
        raise ModelFileError(f"{source} does not exist: give a model directory or an exported .onnx file.")
    raise ModelFileError(f"{source} is neither a model directory nor an .onnx file (textlstm export --format onnx).")


def model_threads(path: str | os.PathLike) -> int:
    """`train.threads` saved with a model directory (0 for an .onnx file or when unset)."""
    import json

    config = Path(path) / "config.json"
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
        return int(doc["config"]["train"]["threads"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def infer(predictor: Predictor, texts: Sequence[str], explain: Sequence[bool]) -> list[Prediction]:
    """Probabilities for every text in one forward pass, and attention weights for those whose
    request asked to explain (a second pass over those only, with attention kept)."""
    proba = predictor.predict_proba(texts)
    rows = [Prediction(p) for p in proba]
    wanted = [i for i, flag in enumerate(explain) if flag]
    if wanted:
        for i, tokens in zip(wanted, predictor.explain_tokens([texts[i] for i in wanted])):
            rows[i].tokens = tokens
    return rows


def textlstm_version() -> str:
    try:
        return metadata.version("textlstm")
    except metadata.PackageNotFoundError:  # a source checkout that is not installed
        return "0+unknown"


def finite(doc: Any) -> Any:
    """`doc` with NaN and infinities as None: JSON responses refuse them."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [finite(v) for v in doc]
    return doc
