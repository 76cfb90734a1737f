"""Running a trained network over encoded texts, in length-sorted batches."""
from __future__ import annotations

import numpy as np
import torch

from ..data.batching import EncodedDataset, iterate, sorted_batches
from .network import TextLSTM


@torch.inference_mode()
def predict_logits(model: TextLSTM, data: EncodedDataset, batch_size: int = 256,
                   device: torch.device | str = "cpu", attention: bool = False
                   ) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Logits `(n, labels)` in the data's order and, when asked, each text's attention weights
    over its own tokens. Batches are sorted by length so padding is rare; packing makes the
    result independent of the batch a text lands in."""
    was_training = model.training
    model.eval()
    n = len(data)
    logits = None
    weights: list[np.ndarray] | None = [np.empty(0, np.float32)] * n if attention else None
    try:
        for index, ids, lengths, _ in iterate(data, sorted_batches(data.lengths, batch_size)):
            out, att = model(ids.to(device), lengths)
            out = out.float().cpu().numpy()
            if logits is None:
                logits = np.empty((n, out.shape[1]), dtype=np.float32)
            logits[index] = out
            if weights is not None and att is not None:
                att = att.float().cpu().numpy()
                for row, i in enumerate(index):
                    weights[i] = att[row, :int(lengths[row])]
    finally:
        model.train(was_training)
    if logits is None:
        logits = np.empty((0, model.head[-1].out_features), dtype=np.float32)
    return logits, weights


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
