"""Running a trained network over encoded texts, in length-sorted batches.

Memory is bounded by a batch, not by the data: `logit_batches` yields one batch's logits at a
time (at most `batch_size` texts and `batching.INFER_MAX_TOKENS` padded tokens), and
`predict_top` and validation keep only what they need of each (the top label, a loss sum), so
that a model with many labels never builds a texts x labels matrix."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..data.batching import EncodedDataset, iterate, sorted_batches
from ..errors import ModelFileError
from .network import TextLSTM


@torch.inference_mode()
def logit_batches(model: TextLSTM, data: EncodedDataset, batch_size: int = 256,
                  device: torch.device | str = "cpu", attention: bool = False
                  ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
    """`(indices into data, float32 logits (b, labels), attention (b, seq) or None, lengths)`
    per length-sorted batch. Logits that are not finite (a corrupt or diverged model) are a
    `ModelFileError`: no NaN ever reaches a prediction."""
    was_training = model.training
    model.eval()
    try:
        for index, ids, lengths, _ in iterate(data, sorted_batches(data.lengths, batch_size)):
            out, att = model(ids.to(device), lengths)
            out = out.float().cpu()
            if not bool(torch.isfinite(out).all()):
                raise ModelFileError("The model computed non-finite scores (NaN or infinity); its "
                                     "weights are corrupt or training diverged.")
            yield index, out, None if att is None or not attention else att.float().cpu(), lengths
    finally:
        model.train(was_training)


def predict_logits(model: TextLSTM, data: EncodedDataset, batch_size: int = 256,
                   device: torch.device | str = "cpu", attention: bool = False
                   ) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Logits `(n, labels)` in the data's order and, when asked, each text's attention weights
    over its own tokens. Batches are sorted by length so padding is rare; packing makes the
    result independent of the batch a text lands in."""
    n = len(data)
    logits = None
    weights: list[np.ndarray] | None = [np.empty(0, np.float32)] * n if attention else None
    for index, out, att, lengths in logit_batches(model, data, batch_size, device, attention):
        if logits is None:
            logits = np.empty((n, out.shape[1]), dtype=np.float32)
        logits[index] = out.numpy()
        if weights is not None and att is not None:
            att = att.numpy()
            for row, i in enumerate(index):
                weights[i] = att[row, :int(lengths[row])]
    if logits is None:
        logits = np.empty((0, model.n_labels), dtype=np.float32)
    return logits, weights


def predict_top(model: TextLSTM, data: EncodedDataset, batch_size: int = 256,
                device: torch.device | str = "cpu") -> np.ndarray:
    """The index of each text's highest-scoring label, in the data's order."""
    top = np.empty(len(data), dtype=np.int64)
    for index, out, _, _ in logit_batches(model, data, batch_size, device):
        top[index] = out.argmax(dim=1).numpy()
    return top


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Per-label probabilities of a multi-label model (numerically stable for large |x|)."""
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)
