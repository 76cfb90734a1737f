"""What the one training loop (`training.trainer.Trainer`) minimises and how it scores validation.

An objective turns a batch into the loss to back-propagate and a validation set into a record
and a score to maximise (early stopping, best weights, the plateau schedule). `Classification`
is the classifier's: cross-entropy, optionally class-weighted, scored by macro-F1. The
bidirectional language model of `textlstm pretrain-lm` brings its own (`lm.LanguageModelling`).
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..data.batching import EncodedDataset
from ..model.infer import logit_batches
from . import distributed


class Objective(Protocol):
    def to(self, device: torch.device) -> "Objective": ...

    def loss(self, net: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor | None,
             batch: np.ndarray, weight: float) -> torch.Tensor:
        """This rank's share of the global batch `batch` (indices into the training data) as a
        loss whose sum over ranks is the global batch's mean loss, times `weight`."""

    def validate(self, model: nn.Module, data: EncodedDataset, device: torch.device,
                 dist: distributed.Dist) -> tuple[dict[str, Any], float]:
        """`(record, score)`: the record goes into the history, the score (higher is better)
        decides early stopping. Every rank gets the same result."""


def class_weights_for(labels: np.ndarray, n_labels: int) -> torch.Tensor:
    """scikit-learn's 'balanced' weights: n / (n_labels * count), counts of 0 get weight 0."""
    counts = np.bincount(labels, minlength=n_labels).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (n_labels * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


class Classification:
    """Cross-entropy with label smoothing and optional class weights, normalised by the global
    batch's size (or its summed class weights, as a weighted mean divides by); validation
    reports loss, accuracy and macro-F1, the score."""

    def __init__(self, n_labels: int, train_labels: np.ndarray, class_weights: torch.Tensor | None = None,
                 label_smoothing: float = 0.0):
        self.n_labels, self.train_labels = n_labels, train_labels
        self.class_weights = None if class_weights is None else class_weights.numpy()
        self.loss_fn = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing,
                                           reduction="sum")

    def to(self, device: torch.device) -> "Classification":
        self.loss_fn.to(device)
        return self

    def _normalizer(self, batch: np.ndarray) -> float:
        if self.class_weights is None:
            return float(len(batch))
        return float(self.class_weights[self.train_labels[batch]].sum()) or 1.0

    multilabel = False

    def loss(self, net, ids, lengths, labels, batch, weight):
        return self.loss_from_logits(net(ids, lengths)[0], labels, batch, weight)

    def loss_from_logits(self, logits, labels, batch, weight):
        return self.loss_fn(logits.float(), labels) * (weight / self._normalizer(batch))

    def validate(self, model, data, device, dist):
        """Batch by batch (each rank its contiguous share), keeping only each text's top label
        and the summed loss: memory does not grow with texts x labels."""
        part = data.subset(distributed.shard(np.arange(len(data)), dist)) if dist.enabled else data
        pred, loss = np.empty(len(part), dtype=np.int64), 0.0
        for index, logits, _, _ in logit_batches(model, part, 256, device):
            pred[index] = logits.argmax(dim=1).numpy()
            loss += float(nn.functional.cross_entropy(
                logits, torch.from_numpy(part.labels[index]), reduction="sum"))
        pred = np.concatenate(distributed.gather(pred, dist))
        loss = distributed.all_sum([loss], dist)[0] / max(1, len(data))
        y = data.labels
        from sklearn.metrics import accuracy_score, f1_score  # slow to import: only when validating

        record = {"val_loss": loss, "val_accuracy": float(accuracy_score(y, pred)),
                  "val_macro_f1": float(f1_score(y, pred, average="macro", labels=range(self.n_labels),
                                                 zero_division=0))}
        return record, record["val_macro_f1"]


class MultiLabelClassification:
    """Binary cross-entropy per label (a sigmoid each), summed over labels and averaged over the
    global batch; `pos_weight` per label when class weights are balanced; label smoothing pulls
    targets towards 0.5. Validation scores micro- or macro-F1 (`score`) at the best global
    threshold on the validation set, which it reports (`val_threshold`) with the other F1,
    subset accuracy (`val_accuracy`) and the loss."""

    def __init__(self, n_labels: int, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 score: str = "micro_f1"):
        self.n_labels, self.smoothing, self.score = n_labels, label_smoothing, score
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="sum")

    def to(self, device: torch.device) -> "MultiLabelClassification":
        self.loss_fn.to(device)
        return self

    multilabel = True

    def loss(self, net, ids, lengths, labels, batch, weight):
        return self.loss_from_logits(net(ids, lengths)[0], labels, batch, weight)

    def loss_from_logits(self, logits, labels, batch, weight):
        target = labels.to(logits.device, torch.float32)
        if self.smoothing:
            target = target * (1 - self.smoothing) + 0.5 * self.smoothing
        return self.loss_fn(logits.float(), target) * (weight / float(len(batch)))

    def validate(self, model, data, device, dist):
        from ..thresholds import tune, f1_score as thresholded_f1

        part = data.subset(distributed.shard(np.arange(len(data)), dist)) if dist.enabled else data
        proba = np.empty((len(part), self.n_labels), dtype=np.float32)
        loss = 0.0
        for index, logits, _, _ in logit_batches(model, part, 256, device):
            target = torch.from_numpy(part.labels[index])
            loss += float(nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum"))
            proba[index] = torch.sigmoid(logits).numpy()
        proba = np.concatenate(distributed.gather(proba, dist))
        loss = distributed.all_sum([loss], dist)[0] / max(1, len(data))
        y = data.labels
        t = round(float(tune(y, proba, "global", self.score)[0]), 2)
        chosen = proba >= np.float32(t)
        record = {"val_loss": loss, "val_accuracy": float((chosen == y.astype(bool)).all(axis=1).mean()),
                  "val_micro_f1": thresholded_f1(y, chosen, "micro_f1"),
                  "val_macro_f1": thresholded_f1(y, chosen, "macro_f1"), "val_threshold": t}
        return record, record[f"val_{self.score}"]
