"""Prediction rows as text: CSV, JSON lines, or plain tab-separated lines.

Every row says where its record came from (`line`: the source line, or the file of a folder
record), what it was (the text, or the `--id-field` value), the gold label when the input has
labels, the predicted label with one probability per class, and an `error` for a record that
could not be predicted. So error analysis needs no join with the input. A multi-label model's
rows hold its predicted labels instead (`labels` in JSON lines; comma-joined in CSV and lines,
`(none)` when no label reaches its threshold), most probable first.

`lines` is for people and shell pipes: `label<TAB>text`, or `label<TAB>c=p …<TAB>text` with
probabilities; an unpredictable record reads `error: <why><TAB>text`.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass
from typing import IO, Any, Callable

import numpy as np

from ..classifier import TextClassifier
from ..data.records import Example
from ..errors import DataError
from ..thresholds import decide

OUTPUT_FORMATS = ("csv", "jsonl", "lines")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "lines", ".tsv": "lines"}


@dataclass(frozen=True)
class Columns:
    """What each row holds besides the prediction."""

    classes: tuple[str, ...]
    ident: str = "text"  # "text", or "id" for the --id-field value
    gold: bool = False  # the input has labels: each row carries its gold label
    proba: bool = True  # `lines` only: CSV and JSON rows always hold every probability
    thresholds: tuple[float, ...] = ()  # a multi-label model's: each row's labels are those at or above
    at_least_one: bool = False  # multi-label: a text with no label above its threshold gets its top one
    top_k: int = 0  # jsonl and lines: also the k most probable labels

    @property
    def multilabel(self) -> bool:
        return bool(self.thresholds)

    def record(self) -> dict[str, Any]:
        """As JSON gives it back (lists, not tuples): what a job's sidecar compares."""
        return {**asdict(self), "classes": list(self.classes), "thresholds": list(self.thresholds)}

    def labels(self, proba) -> list[str]:
        """A multi-label row's labels, most probable first."""
        chosen = decide(proba[None, :], np.asarray(self.thresholds, dtype=proba.dtype), self.at_least_one)[0]
        return [self.classes[i] for i in sorted(np.flatnonzero(chosen), key=lambda i: -proba[i])]

    def top(self, proba) -> list[tuple[str, float]]:
        best = np.argsort(-proba, kind="stable")[:self.top_k]
        return [(self.classes[i], float(proba[i])) for i in best]


def columns_for(clf: TextClassifier, *, threshold: float | None = None, at_least_one: bool = False,
                top_k: int = 0, **fields: Any) -> Columns:
    """The columns of `clf`'s rows: its classes and, for a multi-label model, its thresholds
    (or `threshold` for every label)."""
    thresholds: tuple[float, ...] = ()
    if clf.multilabel:
        thresholds = tuple(round(float(t), 4) for t in clf.cutoffs(threshold))
    return Columns(tuple(clf.classes_), thresholds=thresholds, at_least_one=at_least_one, top_k=top_k, **fields)


def _gold_list(label: Any) -> list[str] | None:
    """A multi-label row's gold labels as a list (one label read as a string is a list of one)."""
    if label is None:
        return None
    return list(label) if isinstance(label, tuple) else [label]


def _gold_text(label: Any) -> str:
    return ",".join(label) if isinstance(label, tuple) else (label or "")


def output_format(path: str | os.PathLike, given: str | None = None) -> str:
    """`given` if set (one of OUTPUT_FORMATS), else from the name: .csv, .jsonl/.ndjson, or
    .txt/.tsv for lines."""
    if given is not None:
        if given not in OUTPUT_FORMATS:
            raise DataError(f"Unknown output format {given!r}. Formats: {', '.join(OUTPUT_FORMATS)}.")
        return given
    suffix = os.path.splitext(str(path).lower())[1]
    if suffix not in _SUFFIXES:
        raise DataError(f"Cannot tell the output format of {path}: name it .csv, .jsonl or .txt, "
                        "or pass --output-format.")
    return _SUFFIXES[suffix]


def header(fmt: str, cols: Columns) -> str:
    if fmt != "csv":
        return ""
    buf = io.StringIO()
    csv.writer(buf).writerow(["line", cols.ident, *(["gold"] if cols.gold else []), "label",
                              *(f"p_{c}" for c in cols.classes), "error"])
    return buf.getvalue()


def render(clf: TextClassifier, chunk: list[Example], fmt: str, cols: Columns,
           batch_size: int) -> tuple[str, int, int]:
    """The output rows of one chunk as text, how many rows and how many of them are errors."""
    good = [ex.text for ex in chunk if ex.error is None]
    proba = iter(clf.predict_proba(good, batch_size) if good else ())
    buf = io.StringIO()
    write = _WRITERS[fmt](buf, cols)
    for ex in chunk:
        write(ex, None if ex.error is not None else next(proba))
    return buf.getvalue(), len(chunk), len(chunk) - len(good)


def _where(ex: Example) -> int | str:
    return ex.line if ex.line is not None else ex.source


def _ident(ex: Example, cols: Columns) -> str | None:
    return ex.id if cols.ident == "id" else ex.text


def _csv_writer(out: IO[str], cols: Columns) -> Callable[[Example, Any], None]:
    writer = csv.writer(out)
    gold = (lambda ex: [_gold_text(ex.label)]) if cols.gold else (lambda ex: [])

    def write(ex: Example, proba) -> None:
        ident = _ident(ex, cols) or ""
        if proba is None:
            writer.writerow([_where(ex), ident, *gold(ex), "", *([""] * len(cols.classes)), ex.error])
        else:
            label = ",".join(cols.labels(proba)) if cols.multilabel else cols.classes[int(proba.argmax())]
            writer.writerow([_where(ex), ident, *gold(ex), label, *(f"{x:.6f}" for x in proba), ""])
    return write


def _jsonl_writer(out: IO[str], cols: Columns) -> Callable[[Example, Any], None]:
    def write(ex: Example, proba) -> None:
        row = {"line": _where(ex), cols.ident: _ident(ex, cols)}
        if cols.gold:
            row["gold"] = _gold_list(ex.label) if cols.multilabel else ex.label
        key = "labels" if cols.multilabel else "label"
        row.update({key: None, "proba": None, "error": ex.error})
        if proba is not None:
            row[key] = cols.labels(proba) if cols.multilabel else cols.classes[int(proba.argmax())]
            row["proba"] = {c: round(float(x), 6) for c, x in zip(cols.classes, proba)}
            if cols.top_k:
                row["top"] = [{"label": c, "probability": round(p, 6)} for c, p in cols.top(proba)]
        out.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    return write


def _lines_writer(out: IO[str], cols: Columns) -> Callable[[Example, Any], None]:
    def write(ex: Example, proba) -> None:
        ident = " ".join((_ident(ex, cols) or "").split())  # one line, tabs and newlines folded
        if proba is None:
            out.write(f"error: {ex.error}\t{ident}\n")
            return
        label = (",".join(cols.labels(proba)) or "(none)") if cols.multilabel else cols.classes[int(proba.argmax())]
        probs = "\t" + " ".join(f"{c}={x:.4f}" for c, x in zip(cols.classes, proba)) if cols.proba else ""
        if cols.top_k:
            probs = "\t" + " ".join(f"{c}={p:.4f}" for c, p in cols.top(proba))
        out.write(f"{label}{probs}\t{ident}\n")
    return write


_WRITERS = {"csv": _csv_writer, "jsonl": _jsonl_writer, "lines": _lines_writer}
