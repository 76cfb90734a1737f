"""Batch prediction over files: streamed in chunks with constant memory, written atomically."""
from __future__ import annotations

import csv
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

from .atomic import atomic_path
from .classifier import TextClassifier
from .config import DataConfig
from .data import Example, ReadReport, read_texts
from .errors import DataError

OUTPUT_FORMATS = ("csv", "jsonl")


@dataclass
class JobSummary:
    rows: int
    output: Path
    report: ReadReport


def output_format(path: str | os.PathLike) -> str:
    name = str(path).lower()
    for fmt in OUTPUT_FORMATS:
        if name.endswith("." + fmt):
            return fmt
    raise DataError(f"Cannot tell the output format of {path}: name it .csv or .jsonl.")


def _chunks(items: Iterable[Example], size: int) -> Iterator[list[Example]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def predict_file(clf: TextClassifier, input_path: str | os.PathLike, output_path: str | os.PathLike,
                 *, data: DataConfig | None = None, chunk_size: int = 4096,
                 batch_size: int = 256) -> JobSummary:
    """Predict every text of `input_path` (CSV, TSV, JSONL, fastText or plain text) into
    `output_path` (.csv or .jsonl): one row per input record, in order, with the source line,
    the predicted label and one probability per class. The output appears complete or not at
    all (temporary file, then rename)."""
    data = data or DataConfig()
    fmt = output_format(output_path)
    report = ReadReport()
    examples = read_texts(input_path, format=data.format, text_field=data.text_field,
                          encoding=data.encoding, on_bad_lines=data.on_bad_lines, report=report)
    rows = 0
    with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        write = _csv_writer(out, clf.classes_) if fmt == "csv" else _jsonl_writer(out, clf.classes_)
        for chunk in _chunks(examples, chunk_size):
            proba = clf.predict_proba([ex.text for ex in chunk], batch_size)
            for ex, p in zip(chunk, proba):
                write(ex, clf.classes_[int(p.argmax())], p)
            rows += len(chunk)
    return JobSummary(rows, Path(output_path), report)


def _csv_writer(out: IO[str], classes: list[str]):
    writer = csv.writer(out)
    writer.writerow(["line", "label", *(f"p_{c}" for c in classes)])

    def write(ex: Example, label: str, proba) -> None:
        writer.writerow([ex.line if ex.line is not None else ex.source, label,
                         *(f"{x:.6f}" for x in proba)])
    return write


def _jsonl_writer(out: IO[str], classes: list[str]):
    def write(ex: Example, label: str, proba) -> None:
        row = {"line": ex.line if ex.line is not None else ex.source, "label": label,
               "proba": {c: round(float(x), 6) for c, x in zip(classes, proba)}}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return write
