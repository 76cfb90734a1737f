"""Export a trained model to ONNX, and serve the exported file with textlstm's tokenizer.

The graph takes `ids (batch, seq) int64` (token ids, right-padded with 0 = `<pad>`) and
`lengths (batch,) int64` (real tokens per text, at least 1) and returns `logits` and
`probabilities (batch, n_labels)`; batch and seq are dynamic. Beside `model.onnx` goes
`model.textlstm.json`: the labels in output order, the tokenizer settings and the vocabulary,
everything a server needs to turn texts into those inputs.

>>> export_onnx(TextClassifier.load("model"), "model.onnx")    # doctest: +SKIP
>>> OnnxClassifier("model.onnx").predict(["a moving film"])      # doctest: +SKIP
['positive']
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path, atomic_write_text
from ..classifier import TextClassifier
from ..data.batching import EncodedDataset, iterate, sorted_batches
from ..data.tokenize import Tokenizer
from ..data.vocab import Vocab
from ..ensemble import networks
from ..errors import ConfigError, ModelFileError
from ..model.artifact import library_versions
from ..model.quantize import is_quantized
from ..thresholds import decide

SIDECAR_FORMAT = "textlstm-onnx"
SIDECAR_VERSION = 2  # 2: vocab_case_fallback
DEFAULT_OPSET = 18
TOLERANCE = 1e-4  # largest allowed |onnxruntime - PyTorch| probability on the check batch
INT8_TOLERANCE = 0.05  # the same for an int8 graph, against the float model: a sanity bound
QUANTIZATIONS = ("none", "dynamic-int8")


class _Probabilities(nn.Module):
    """The network with a plain tensor interface: `(ids, lengths) → (logits, probabilities)`:
    a softmax over the labels, or a multi-label model's sigmoid per label."""

    def __init__(self, model: nn.Module, multilabel: bool = False):
        super().__init__()
        self.model, self.multilabel = model, multilabel

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = self.model(ids, lengths)  # (batch, labels)
        return logits, torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    max_abs_diff: float | None  # onnxruntime vs PyTorch on a padded check batch; None: not checked


def sidecar_path(path: str | os.PathLike) -> Path:
    """`model.onnx` → `model.textlstm.json`."""
    return Path(path).with_suffix(".textlstm.json")


def _example(vocab_size: int, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids right-padded to the longest of `lengths`: `(batch, seq)`, `(batch,)`."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, max(3, vocab_size), (len(lengths), max(lengths)), generator=gen)
    lens = torch.tensor(lengths)
    ids[torch.arange(ids.shape[1])[None, :] >= lens[:, None]] = 0
    return ids, lens


def _export_program(wrapper: nn.Module, vocab_size: int, opset: int):
    try:
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError as exc:
        raise ConfigError(f"ONNX export needs onnx and onnxscript ({exc}); pip install 'textlstm[onnx]'.") from None
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings(), _rnn_decompositions_for_dynamic_shapes():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes
            return torch.onnx.export(
                wrapper, _example(vocab_size, [5, 3], seed=0), None, dynamo=True, verbose=False,
                opset_version=opset, input_names=["ids", "lengths"], output_names=["logits", "probabilities"],
                dynamic_shapes={"ids": {0: batch, 1: seq}, "lengths": {0: batch}})
    finally:
        onnx_log.setLevel(level)


@contextlib.contextmanager
def _rnn_decompositions_for_dynamic_shapes() -> Iterator[None]:
    """Keep the sequence axis dynamic through the whole export.

    torch 2.13's exporter swaps in while_loop LSTM/GRU decompositions only while it captures
    the graph; its later decomposition pass retraces with the default one, which fixes the
    sequence length to the example's. The first export in a process escapes that through a
    cached kernel, later ones do not (pytorch/pytorch#191855, fixed upstream in #193192 by
    this same wrapping)."""
    try:
        from torch.export._patches import register_gru_while_loop_decomposition, register_lstm_while_loop_decomposition
    except ImportError:  # another torch: check_onnx still catches a fixed axis
        yield
        return
    with register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
        yield


def check_onnx(path: str | os.PathLike, wrapper: nn.Module, vocab_size: int) -> float | None:
    """Largest |difference| between onnxruntime's and PyTorch's probabilities on batches whose
    size, length and padding differ from the trace example; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for lengths in ([9, 1, 4], [2], [7, 7, 3, 1, 5, 2, 6]):
        ids, lens = _example(vocab_size, lengths, seed=len(lengths))
        got = session.run(["probabilities"], {"ids": ids.numpy(), "lengths": lens.numpy()})[0]
        with torch.inference_mode():
            want = wrapper(ids, lens)[1].numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def quantize_onnx(source: Path, target: Path) -> None:
    """onnxruntime's dynamic int8 quantisation: its fused `DynamicQuantizeLSTM` for the LSTMs,
    int8 matrix products for the linear layers. The exporter leaves the LSTM weights behind
    gate-reordering ops; onnxruntime's basic (portable) graph optimisation folds them into
    constants first, as the quantiser only quantises weights stored as constants."""
    try:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(f"int8 ONNX export needs onnxruntime ({exc}); pip install 'textlstm[onnx]'.") from None
    folded = target.with_name(target.name + ".folded.onnx")
    try:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        ort_log = logging.getLogger()  # the quantiser warns on the root logger ("pre-processing")
        level = ort_log.level
        ort_log.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(folded), str(target), weight_type=QuantType.QInt8)
        finally:
            ort_log.setLevel(level)
    finally:
        folded.unlink(missing_ok=True)


def export_onnx(clf: TextClassifier, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                overwrite: bool = False, quantize: str = "none") -> ExportResult:
    """Write `path` (ONNX) and its sidecar JSON atomically; with onnxruntime installed, check
    the file against the model first (a difference above `TOLERANCE` is an error).

    `quantize="dynamic-int8"` writes onnxruntime's int8 version of the graph instead (it runs
    only in onnxruntime; the check then allows `INT8_TOLERANCE`)."""
    clf.check_fitted()
    path = Path(path)
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"ONNX quantisation {quantize!r} is not supported. Allowed: {', '.join(QUANTIZATIONS)}.")
    nets = networks(clf)  # an ensemble's members, or the model itself
    if any(is_quantized(n.model_) for n in nets):
        raise ModelFileError(
            f"This model is quantised (model.quantization = {clf.config.model.quantization!r}); PyTorch's "
            "dynamic int8 layers cannot be exported to ONNX. Export the float model (compress without "
            "--quantize) with `textlstm export … --quantize dynamic-int8` for onnxruntime's int8 graph.")
    if bad := sorted({n.config.model.cell for n in nets} - {"lstm", "gru"}):
        raise ConfigError(f"ONNX export supports model.cell lstm and gru; this model's cell is "
                          f"{', '.join(map(repr, bad))}, whose own time loop has no ONNX operator.")
    for target in (path, sidecar_path(path)):
        if target.exists() and not overwrite:
            raise ModelFileError(f"{target} already exists; pass --overwrite to replace it or choose another --out.")
    wrapper = _Probabilities(clf.model_.cpu(), clf.multilabel).eval()
    program = _export_program(wrapper, len(clf.vocab_), opset)
    diff = None
    limit = TOLERANCE if quantize == "none" else INT8_TOLERANCE
    with atomic_path(path) as tmp:
        if quantize == "none":
            program.save(str(tmp), external_data=False)  # one self-contained file
        else:
            float_file = tmp.with_name(tmp.name + ".float.onnx")
            try:
                program.save(str(float_file), external_data=False)
                quantize_onnx(float_file, tmp)
            finally:
                float_file.unlink(missing_ok=True)
        diff = check_onnx(tmp, wrapper, len(clf.vocab_))
        if diff is not None and diff > limit:
            raise ModelFileError(f"The exported graph's probabilities differ from the model's by {diff:.2e} "
                                 f"(limit {limit:g}); nothing was written. Try another --opset.")
    sidecar = sidecar_path(path)
    atomic_write_text(sidecar, json.dumps(_sidecar(clf, path, opset, quantize), ensure_ascii=False) + "\n")
    return ExportResult(path, sidecar, diff)


def _sidecar(clf: TextClassifier, path: Path, opset: int, quantize: str) -> dict[str, Any]:
    return {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "onnx_file": path.name,
            "opset": opset, "quantization": quantize, "library_versions": library_versions(), "labels": list(clf.classes_),
            "inputs": {"ids": "int64 (batch, seq): token ids from 'vocab', right-padded with 0",
                       "lengths": "int64 (batch,): real tokens per text, at least 1 (an empty text is one <unk>)"},
            "outputs": {"logits": "float32 (batch, labels)",
                        "probabilities": "float32 (batch, labels), " + ("sigmoid per label" if clf.multilabel else "softmax")},
            "tokenizer": clf.tokenizer.to_dict(), "vocab": clf.vocab_.itos,
            "vocab_case_fallback": clf.vocab_.case_fallback, "task": clf.config.model.task,
            **({"thresholds": [float(t) for t in clf.thresholds_]} if clf.multilabel else {})}


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The labels, tokenizer settings and vocabulary written next to an exported model."""
    side = sidecar_path(path)
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{side} is missing: export writes it next to {Path(path).name}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{side} is not valid JSON ({exc}).") from exc
    if not isinstance(doc, dict) or doc.get("format") != SIDECAR_FORMAT:
        raise ModelFileError(f"{side} is not a textlstm ONNX sidecar (no \"format\": \"{SIDECAR_FORMAT}\").")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > SIDECAR_VERSION:
        raise ModelFileError(f"{side} has format_version {version!r}; this textlstm reads versions up to "
                             f"{SIDECAR_VERSION}: upgrade textlstm to serve it.")
    return doc


class OnnxClassifier:
    """An exported model served by onnxruntime, with textlstm's tokenizer and vocabulary:
    `predict_proba(texts)` gives what `TextClassifier.predict_proba` gives (within 1e-4)."""

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None):
        import onnxruntime

        meta = read_sidecar(path)
        self.classes_: list[str] = meta["labels"]
        self.tokenizer = Tokenizer.from_dict(meta["tokenizer"])
        self.vocab = Vocab(meta["vocab"], case_fallback=bool(meta.get("vocab_case_fallback", False)))
        self.session = onnxruntime.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.multilabel = meta.get("task") == "multilabel"
        self.thresholds_ = np.asarray(meta.get("thresholds") or [0.5] * len(self.classes_), dtype=np.float32)

    def predict_proba(self, texts: Iterable[str], batch_size: int = 256) -> np.ndarray:
        data = EncodedDataset.encode(list(self.tokenizer.pipe(texts)), self.vocab)
        out = np.empty((len(data), len(self.classes_)), dtype=np.float32)
        for index, ids, lengths, _ in iterate(data, sorted_batches(data.lengths, batch_size)):
            out[index] = self.session.run(["probabilities"], {"ids": ids.numpy(), "lengths": lengths.numpy()})[0]
        return out

    def predict(self, texts: Iterable[str], batch_size: int = 256) -> list:
        """The top label of each text; a multi-label model's: the labels at or above their thresholds."""
        proba = self.predict_proba(texts, batch_size)
        if self.multilabel:
            return [[self.classes_[j] for j in np.flatnonzero(row)] for row in decide(proba, self.thresholds_)]
        return [self.classes_[i] for i in proba.argmax(axis=1)]
