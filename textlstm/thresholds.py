"""Decision thresholds of a multi-label model: which labels a text gets from its probabilities,
and the thresholds that maximise micro- or macro-F1 on labelled data.

`tune` searches the grid 0.01-0.99 (step 0.01): one threshold for every label (global), or one
per label (per-label: each label's own F1 for macro-F1, coordinate ascent from the best global
threshold for micro-F1). A label with fewer than `MIN_POSITIVES` positive texts in the tuning
data keeps the global threshold: a threshold fitted to two examples is noise. Ties go to the
threshold nearest 0.5.

>>> import numpy as np
>>> y = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
>>> p = np.array([[0.8, 0.3], [0.2, 0.4], [0.7, 0.35]], dtype=np.float32)
>>> round(float(tune(y, p, "global", "micro_f1")[0]), 2)
0.35
>>> decide(p, np.array([0.5, 0.5]), at_least_one=True).astype(int).tolist()
[[1, 0], [0, 1], [1, 0]]
"""
from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(0.01, 0.995, 0.01), 2)
MIN_POSITIVES = 5
MODES = ("global", "per-label", "fixed")
SCORES = ("micro_f1", "macro_f1")


def decide(proba: np.ndarray, thresholds: np.ndarray, at_least_one: bool = False) -> np.ndarray:
    """`(n, labels)` booleans: probability at or above the label's threshold; with
    `at_least_one`, a text with none gets its most probable label."""
    chosen = proba >= np.asarray(thresholds, dtype=proba.dtype)[None, :]
    if at_least_one and len(proba):
        empty = ~chosen.any(axis=1)
        chosen[empty, proba[empty].argmax(axis=1)] = True
    return chosen


def f1_score(y: np.ndarray, chosen: np.ndarray, score: str) -> float:
    """Micro- or macro-F1 of boolean decisions against 0/1 labels (a label with no positive
    and no predicted positive scores 0 in the macro average, as scikit-learn's zero_division=0)."""
    tp, fp, fn = _counts(y.astype(bool), chosen)
    if score == "micro_f1":
        return _f1(tp.sum(), fp.sum(), fn.sum())
    return float(np.mean(_f1(tp, fp, fn))) if len(tp) else 0.0


def tune(y: np.ndarray, proba: np.ndarray, mode: str = "global", score: str = "micro_f1",
         start: float = 0.5) -> np.ndarray:
    """Thresholds `(labels,)` that maximise `score` of `decide(proba, t)` against `y`."""
    if mode not in MODES or score not in SCORES:
        raise ValueError(f"mode must be one of {MODES} and score one of {SCORES}")
    n_labels = y.shape[1]
    if mode == "fixed" or not len(y):
        return np.full(n_labels, start, dtype=np.float32)
    truth = y.astype(bool)
    grid = GRID.astype(proba.dtype)  # compared as `decide` compares: in the probabilities' type
    best = _best(GRID, [f1_score(y, proba >= t, score) for t in grid], start)
    out = np.full(n_labels, best, dtype=np.float32)
    if mode == "global":
        return out
    tunable = truth.sum(axis=0) >= MIN_POSITIVES
    tp_t, fp_t, fn_t = _label_curves(truth, proba, grid)  # (grid, labels) each
    if score == "macro_f1":
        for label in np.flatnonzero(tunable):
            out[label] = _best(GRID, _f1(tp_t[:, label], fp_t[:, label], fn_t[:, label]), best)
        return out
    index = {float(t): i for i, t in enumerate(GRID)}
    for _ in range(2):  # coordinate ascent on micro-F1; two passes settle it
        at = np.array([index[round(float(t), 2)] if round(float(t), 2) in index else 0 for t in out])
        cols = np.arange(n_labels)
        tp, fp, fn = tp_t[at, cols], fp_t[at, cols], fn_t[at, cols]
        for label in np.flatnonzero(tunable):
            rest = tp.sum() - tp[label], fp.sum() - fp[label], fn.sum() - fn[label]
            curve = _f1(rest[0] + tp_t[:, label], rest[1] + fp_t[:, label], rest[2] + fn_t[:, label])
            i = index[_best(GRID, curve, float(out[label]))]
            out[label] = GRID[i]
            tp[label], fp[label], fn[label] = tp_t[i, label], fp_t[i, label], fn_t[i, label]
    return out


def _counts(truth: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = (truth & chosen).sum(axis=0).astype(np.float64)
    fp = (~truth & chosen).sum(axis=0).astype(np.float64)
    fn = (truth & ~chosen).sum(axis=0).astype(np.float64)
    return tp, fp, fn


def _label_curves(truth: np.ndarray, proba: np.ndarray, grid: np.ndarray):
    """True positives, false positives and false negatives per (grid threshold, label)."""
    pos = truth.sum(axis=0).astype(np.float64)
    tp = np.empty((len(grid), truth.shape[1]))
    fp = np.empty_like(tp)
    for i, t in enumerate(grid):
        chosen = proba >= t
        tp[i] = (truth & chosen).sum(axis=0)
        fp[i] = (~truth & chosen).sum(axis=0)
    return tp, fp, pos[None, :] - tp


def _f1(tp, fp, fn):
    tp, fp, fn = np.asarray(tp, float), np.asarray(fp, float), np.asarray(fn, float)
    denom = 2 * tp + fp + fn
    out = np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(out) if out.ndim == 0 else out


def _best(grid: np.ndarray, values, prefer: float) -> float:
    """The grid value with the highest score; ties: the one nearest `prefer`."""
    values = np.asarray(values, dtype=float)
    top = np.flatnonzero(values >= values.max() - 1e-12)
    return float(grid[top[np.argmin(np.abs(grid[top] - prefer))]])
