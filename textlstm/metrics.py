"""Evaluation reports (scikit-learn's metrics as plain JSON-able dicts, shown as tables in a
notebook), and plots of the confusion matrix and of training history.

>>> r = evaluate(["a", "b", "b"], ["a", "b", "a"], labels=["a", "b"])
>>> r["accuracy"], r["confusion_matrix"]
(0.6666666666666666, [[1, 0], [1, 1]])
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from .atomic import atomic_path, atomic_write_text
from .errors import DataError

log = logging.getLogger(__name__)


def _check_inputs(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}.")
    if not y_true:
        raise DataError("Nothing to evaluate: there are no examples.")
    known = set(labels)
    for what, values in (("gold data", y_true), ("predictions", y_pred)):
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"Labels in the {what} that the model does not know: {', '.join(map(str, unknown))}. "
                            f"Known labels: {', '.join(labels)}.")


MAX_CONFUSION_LABELS = 200


class Report(dict):
    """The dict `evaluate` returns, unchanged as a dict (JSON, pickling, equality with plain
    dicts), which a notebook shows as tables (`textlstm.notebook.report_html`)."""

    def _repr_html_(self) -> str:
        from .notebook import report_html

        return report_html(self)


def evaluate(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> Report:
    """Accuracy, macro/micro/weighted F1, macro precision and recall, per-class scores and the
    confusion matrix (rows true, columns predicted, both in `labels` order; None for more than
    `MAX_CONFUSION_LABELS` labels).

    A class never predicted (or never seen) scores 0 rather than warning; it still counts in
    the macro averages, as in scikit-learn. The result is a `Report`: a plain dict that a
    notebook displays as tables."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support  # slow to import

    y_true, y_pred, labels = list(y_true), list(y_pred), list(labels)
    _check_inputs(y_true, y_pred, labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)

    def avg(kind: str) -> tuple[float, float, float]:
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                        average=kind, zero_division=0)
        return float(ap), float(ar), float(af)

    (mp, mr, mf), (_, _, uf), (_, _, wf) = avg("macro"), avg("micro"), avg("weighted")
    per_class = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                         "support": int(s[i])} for i, label in enumerate(labels)}
    return Report({
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": mf, "micro_f1": uf, "weighted_f1": wf,
        "macro_precision": mp, "macro_recall": mr,
        "per_class": per_class,
        # labels x labels: left out beyond MAX_CONFUSION_LABELS, where it would dwarf the rest
        "confusion_matrix": (confusion_matrix(y_true, y_pred, labels=labels).tolist()
                             if len(labels) <= MAX_CONFUSION_LABELS else None),
        "labels": labels,
        "n": len(y_true),
    })


def evaluate_multilabel(y_true: Any, y_pred: Any, labels: Sequence[str], proba: Any = None,
                        thresholds: Any = None) -> Report:
    """Multi-label scores from `(n, labels)` 0/1 arrays (and the probabilities, for ROC-AUC):
    subset accuracy (`accuracy`: every label of a text right), Hamming loss, micro / macro /
    weighted / samples precision, recall and F1, and per label P/R/F1, support and ROC-AUC
    (None where a label has only positives or only negatives in `y_true`)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support, roc_auc_score

    y_true, y_pred, labels = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int), list(labels)
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[1] != len(labels):
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must both be (n, {len(labels)}).")
    if not len(y_true):
        raise DataError("Nothing to evaluate: there are no examples.")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    subset = float(accuracy_score(y_true, y_pred))
    doc: dict[str, Any] = {"task": "multilabel", "accuracy": subset, "subset_accuracy": subset,
                           "hamming_loss": float(hamming_loss(y_true, y_pred))}
    for kind in ("micro", "macro", "weighted", "samples"):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, average=kind, zero_division=0)
        doc.update({f"{kind}_precision": float(ap), f"{kind}_recall": float(ar), f"{kind}_f1": float(af)})
    auc = [None] * len(labels)
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        for i in range(len(labels)):
            if 0 < y_true[:, i].sum() < len(y_true):
                auc[i] = float(roc_auc_score(y_true[:, i], proba[:, i]))
    known = [a for a in auc if a is not None]
    doc["macro_roc_auc"] = float(np.mean(known)) if known else None
    doc["per_class"] = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                "support": int(s[i]), "roc_auc": auc[i],
                                **({"threshold": float(thresholds[i])} if thresholds is not None else {})}
                        for i, label in enumerate(labels)}
    doc.update({"labels_per_text": float(y_true.sum(axis=1).mean()),
                "predicted_per_text": float(y_pred.sum(axis=1).mean()),
                "confusion_matrix": None, "labels": labels, "n": int(len(y_true))})
    return Report(doc)


def plot_label_f1(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """A horizontal bar per label: its F1, with its support in the label's name."""
    rows = sorted(report["per_class"].items(), key=lambda kv: kv[1]["f1"])
    fig = new_figure(7, 1.2 + 0.28 * len(rows))
    ax = fig.add_subplot()
    ax.barh([f"{label} ({row['support']})" for label, row in rows], [row["f1"] for _, row in rows],
            color="#2257d0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(f"Per-label F1 (n={report['n']}, micro-F1={report['micro_f1']:.3f}, "
                 f"macro-F1={report['macro_f1']:.3f})")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def weighted_average(report: dict[str, Any], key: str) -> float:
    rows = report["per_class"].values()
    total = sum(row["support"] for row in rows)
    return sum(row[key] * row["support"] for row in rows) / total if total else 0.0


def write_json(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `report` as indented JSON, atomically (an existing file is replaced whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def new_figure(width: float, height: float) -> Any:
    # The object API keeps pyplot's global state (and any GUI backend) out of library code.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=120)
    return path


def plot_confusion(report: dict[str, Any], path: str | os.PathLike) -> Path | None:
    """Confusion matrix coloured by the share of each true class, annotated with counts; None
    (nothing written) when the report has no matrix (too many labels)."""
    import numpy as np

    if report.get("confusion_matrix") is None:
        return None

    labels, counts = report["labels"], np.asarray(report["confusion_matrix"], dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 2.5 + 0.45 * len(labels)
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels=labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (n={report['n']}, accuracy={report['accuracy']:.3f})")
    if len(labels) <= 30:  # beyond that the numbers no longer fit in the cells
        for i in ticks:
            for j in ticks:
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=9,
                        color="white" if shares[i, j] > 0.5 else "black")
    return save_figure(fig, path)


def _series(history: list[dict], key: str) -> tuple[list, list]:
    points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
    return [x for x, _ in points], [y for _, y in points]


def _unfreeze_epoch(history: list[dict]) -> Any:
    """The first epoch trained with unfrozen embeddings after frozen ones; None when the
    embeddings were never frozen or never unfrozen."""
    for before, record in zip(history, history[1:]):
        if record.get("unfrozen") and not before.get("unfrozen"):
            return record["epoch"]
    return None


def plot_history(history: list[dict], path: str | os.PathLike) -> Path:
    """Two panels over epochs: train/validation loss, and validation accuracy and macro-F1.
    A dashed line marks the epoch where the embeddings were unfrozen, if they were."""
    if not history:
        raise ValueError("plot_history needs at least one epoch of history.")
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(10, 4)
    losses, scores = fig.subplots(1, 2)
    for ax, keys, title in ((losses, ("train_loss", "val_loss"), "loss"),
                            (scores, ("val_accuracy", "val_macro_f1"), "validation")):
        for key in keys:
            xs, ys = _series(history, key)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    unfrozen = _unfreeze_epoch(history)
    for ax in (losses, scores):
        if unfrozen is not None:
            ax.axvline(unfrozen, color="grey", linestyle="--", label="embeddings unfrozen")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return save_figure(fig, path)
