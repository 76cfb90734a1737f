"""Prediction rows as text: CSV, JSON lines, or plain tab-separated lines.

Every row says where its record came from (`line`: the source line, or the file of a folder
record), what it was (the text, or the `--id-field` value), the gold label when the input has
labels, the predicted label with one probability per class, and an `error` for a record that
could not be predicted. So error analysis needs no join with the input.

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

from ..classifier import TextClassifier
from ..data.records import Example
from ..errors import DataError

OUTPUT_FORMATS = ("csv", "jsonl", "lines")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "lines", ".tsv": "lines"}


@dataclass(frozen=True)
class Columns:
    """What each row holds besides the prediction."""

    classes: tuple[str, ...]
    ident: str = "text"  # "text", or "id" for the --id-field value
    gold: bool = False  # the input has labels: each row carries its gold label
    proba: bool = True  # `lines` only: CSV and JSON rows always hold every probability

    def record(self) -> dict[str, Any]:
        """As JSON gives it back (lists, not tuples): what a job's sidecar compares."""
        return {**asdict(self), "classes": list(self.classes)}


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
    gold = (lambda ex: [ex.label or ""]) if cols.gold else (lambda ex: [])

    def write(ex: Example, proba) -> None:
        ident = _ident(ex, cols) or ""
        if proba is None:
            writer.writerow([_where(ex), ident, *gold(ex), "", *([""] * len(cols.classes)), ex.error])
        else:
            writer.writerow([_where(ex), ident, *gold(ex), cols.classes[int(proba.argmax())],
                             *(f"{x:.6f}" for x in proba), ""])
    return write


def _jsonl_writer(out: IO[str], cols: Columns) -> Callable[[Example, Any], None]:
    def write(ex: Example, proba) -> None:
        row = {"line": _where(ex), cols.ident: _ident(ex, cols)}
        if cols.gold:
            row["gold"] = ex.label
        row.update({"label": None, "proba": None, "error": ex.error})
        if proba is not None:
            row["label"] = cols.classes[int(proba.argmax())]
            row["proba"] = {c: round(float(x), 6) for c, x in zip(cols.classes, proba)}
        out.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    return write


def _lines_writer(out: IO[str], cols: Columns) -> Callable[[Example, Any], None]:
    def write(ex: Example, proba) -> None:
        ident = " ".join((_ident(ex, cols) or "").split())  # one line, tabs and newlines folded
        if proba is None:
            out.write(f"error: {ex.error}\t{ident}\n")
            return
        label = cols.classes[int(proba.argmax())]
        probs = "\t" + " ".join(f"{c}={x:.4f}" for c, x in zip(cols.classes, proba)) if cols.proba else ""
        out.write(f"{label}{probs}\t{ident}\n")
    return write


_WRITERS = {"csv": _csv_writer, "jsonl": _jsonl_writer, "lines": _lines_writer}
