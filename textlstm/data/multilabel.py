"""Several labels per text: which task a training set is, its labels as tuples or strings, the
multi-hot matrix, a stratified split and the one-line description of the label set.

A multi-label training set is one where some text carries two or more labels (with
`model.task = "auto"`), or any set read with `model.task = "multilabel"`. Its labels are tuples
(`()`: none of them, all negative); in a multi-class set each label is a string and a text
without one is an error naming where it is.

>>> resolve_task(["a", ("b", "c")], "auto")
'multilabel'
>>> as_tuples(["a", ("b", "c"), ()])
[('a',), ('b', 'c'), ()]
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, where
from .records import ReadReport

Label = Any  # str | tuple[str, ...] | None


def given_labels(labels: Sequence[Any]) -> list:
    """Labels as given to `fit` / `evaluate`: a list or tuple is a text's several labels (a
    tuple of strings), anything else one label (a string)."""
    return [tuple(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v) for v in labels]


def resolve_task(labels: Sequence[Label], task: str) -> str:
    """"multilabel" when `task` says so, or (auto) when a text has two or more labels."""
    if task in ("multiclass", "multilabel"):
        return task
    return "multilabel" if any(isinstance(lab, tuple) and len(lab) > 1 for lab in labels) else "multiclass"


def as_tuples(labels: Sequence[Label]) -> list[tuple[str, ...]]:
    """Every label as a tuple of labels: a string is one, a list or tuple its own."""
    out = []
    for lab in labels:
        if isinstance(lab, (tuple, list)):
            out.append(tuple(dict.fromkeys(str(x) for x in lab)))
        elif lab is None:
            out.append(())
        else:
            out.append((str(lab),))
    return out


def as_strings(labels: Sequence[Label], what: str, report: ReadReport | None = None) -> list[str]:
    """Multi-class labels: one string per text. A text with no label (an empty multi-label
    list) or several is a `DataError` saying where and what to set."""
    out = []
    for i, lab in enumerate(labels):
        if isinstance(lab, (tuple, list)):
            if len(lab) == 1:
                lab = lab[0]
            elif not lab:
                at = (f" (first at {where(*report.first_no_label)})"
                      if report is not None and report.first_no_label else f" (text {i + 1})")
                n = sum(1 for x in labels if isinstance(x, (tuple, list)) and not x)
                raise DataError(f"{n:,} texts of the {what} have no label{at}, and no text has several: "
                                "multi-class data needs one label per text. For multi-label data, where "
                                "a text may have none, set model.task = \"multilabel\".")
            else:
                raise DataError(f"Text {i + 1} of the {what} has {len(lab)} labels ({', '.join(map(str, lab[:5]))}) "
                                "but model.task is \"multiclass\": set it to multilabel (or auto).")
        out.append(str(lab))
    return out


def multi_hot(labels: Sequence[tuple[str, ...]], index: dict[str, int]) -> np.ndarray:
    """`(n, len(index))` float32 with 1 where a text has the label."""
    y = np.zeros((len(labels), len(index)), dtype=np.float32)
    for row, labs in enumerate(labels):
        for lab in labs:
            y[row, index[lab]] = 1.0
    return y


def describe(labels: Sequence[tuple[str, ...]], classes: Sequence[str]) -> str:
    """'multi-label: 28 labels, 1.18 labels per text; 12 texts with no label'."""
    n = max(1, len(labels))
    per_text = sum(len(lab) for lab in labels) / n
    none = sum(1 for lab in labels if not lab)
    out = f"multi-label: {len(classes)} labels, {per_text:.2f} labels per text"
    return out + (f"; {none:,} texts with no label" if none else "")


def strata(labels: Sequence[tuple[str, ...]], min_count: int = 2) -> list[str]:
    """A stratum per text for a stratified split of multi-label data: the text's rarest label
    (ties: the first in label order), `""` for a text with no label; strata with fewer than
    `min_count` texts are pooled into one (`"\\0rare"`). Every label's texts then fall on both
    sides in about the split's proportion where the label is common enough, and a rare label's
    texts are not all on one side by accident of another label."""
    counts = Counter(lab for labs in labels for lab in labs)
    picked = [min(labs, key=lambda lab: (counts[lab], lab)) if labs else "" for labs in labels]
    sizes = Counter(picked)
    return [p if sizes[p] >= min_count else "\0rare" for p in picked]


def positive_weights(y: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """BCE `pos_weight` per label from the training labels: negatives / positives (capped; a
    label never seen positive gets 1)."""
    pos = y.sum(axis=0)
    neg = len(y) - pos
    return np.where(pos > 0, np.minimum(neg / np.maximum(pos, 1), cap), 1.0).astype(np.float32)
