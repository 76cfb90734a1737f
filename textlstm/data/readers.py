"""Readers for CSV, TSV, JSON lines, fastText, folder-per-class and plain-text data (`.gz` too).

Files stream line by line and are never loaded whole; lines may end in `\\n`, `\\r\\n` or (old Mac
files) a lone `\\r`. Fields stay the strings written in the file; a bad line fails with
`file:line` and what was expected, is skipped and counted, or (`on_bad_lines="report"`, for
prediction jobs that owe one row per record) comes through as an `Example` whose `error` says
what is wrong. A header that repeats the name of the text or label column is an error, a JSON
line that repeats the text or label key is a bad line, and a read that meets no record at all
says why in `ReadReport.empty_reason()`.

>>> examples, report = read_dataset("data/train.tsv")  # doctest: +SKIP
>>> report.summary()  # doctest: +SKIP
"read 6920 examples from data/train.tsv (text='sentence', label='label')"
"""
from __future__ import annotations

import codecs
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Union

from ..config import DataConfig
from ..errors import ConfigError, DataError, where
from .formats import PARSERS, Bad, Options
from .lines import first_bytes
from .records import Example, ReadReport

log = logging.getLogger(__name__)

BAD_LINE_MODES = ("error", "skip", "report")
FORMATS = ("csv", "tsv", "jsonl", "fasttext", "folder", "text")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
             ".ft": "fasttext", ".fasttext": "fasttext", ".txt": "text"}
_EXPECTED = {
    "csv": "expected a header row, then one record per row with the header's fields",
    "tsv": "expected a header row, then one record per line with the header's tab-separated "
           "fields (TSV is read without quoting)",
    "jsonl": "expected one JSON object per line",
    "fasttext": "expected '__label__<label> <text>' on each line",
    "folder": "expected one document per .txt file",
}
PathLike = Union[str, "os.PathLike[str]"]


def detect_format(path: PathLike) -> str:
    """The format of `path` from its name (`.gz` ignored); a directory is `folder`, and a
    `.txt` file is fastText if its first line starts with `__label__`, else plain text.

    >>> detect_format("train.tsv.gz")
    'tsv'
    """
    p = Path(path)
    if p.is_dir():
        return "folder"
    fmt = _SUFFIXES.get(Path(p.name.lower().removesuffix(".gz")).suffix)
    if fmt is None:
        raise DataError(f"Cannot tell the format of {path} from its name. Formats: "
                        f"{', '.join(FORMATS)} (.csv, .tsv, .jsonl/.json/.ndjson, .ft/.fasttext, "
                        ".txt, a folder; optionally .gz). Pass --format.")
    if fmt == "text" and p.is_file() and first_bytes(p).startswith(b"__label__"):
        return "fasttext"
    return fmt


def read_data(path: PathLike, data: DataConfig, *, labelled: bool = True, on_bad_lines: str | None = None,
              report: ReadReport | None = None, id_field: str | None = None, task: str = "auto"
              ) -> Iterator[Example]:
    """Stream the examples of a data file (or folder) read as `data` says (format, fields,
    encoding, bad lines), filling `report` as it goes: every reader call goes through here.

    Options and the path are checked on the call; the file is read as the iterator is. Empty
    texts are skipped and counted. Other bad lines raise `DataError` or, with
    `on_bad_lines="skip"`, are skipped and counted by reason. With `on_bad_lines="report"`
    (which overrides `data.on_bad_lines`; prediction jobs owe a row per record) every bad
    record, an empty text too, is yielded in its place as `Example("", None, line, source,
    error=reason)` and counted in `report.reported`. With `labelled=False` labels are kept
    where present and never required. `id_field` (csv, tsv, jsonl) passes a column through as
    `Example.id`.

    Several labels per record (fastText `__label__a __label__b`, a JSON list, a CSV/TSV label
    column split on `data.label_sep`, which other formats do not use) give a tuple label (`()`: none), counted in the report;
    one label is always a string. With `task="multiclass"` (`model.task`) those records are bad
    records instead."""
    bad_lines = on_bad_lines or data.on_bad_lines
    fmt = _check(Path(path), data.format, data.encoding, bad_lines, labelled)
    rep = report if report is not None else ReadReport()
    rep.path, rep.format = str(path), fmt
    if id_field is not None and fmt not in ("csv", "tsv", "jsonl"):
        raise DataError(f"--id-field needs a file with named fields (csv, tsv, jsonl); {path} is read as {fmt}.")
    _check_task(task, fmt, path)
    opts = Options(data.text_field, data.label_field, data.encoding, bad_lines, labelled, id_field,
                   data.label_sep, task)
    return _read(Path(path), fmt, opts, rep)


def _check_task(task: str, fmt: str, path: PathLike) -> None:
    if task == "multilabel" and fmt == "folder":
        raise DataError(f"{path} is a folder per class, which gives each document one label; multi-label "
                        "data is fastText (several __label__ prefixes), JSON lines (a list of labels) "
                        "or CSV/TSV with --label-sep.")


def read_examples(path: PathLike, *, format: str = "auto", text_field: str | None = None,
                  label_field: str | None = None, encoding: str = "utf-8",
                  on_bad_lines: str = "error", labelled: bool = True,
                  report: ReadReport | None = None) -> Iterator[Example]:
    """`read_data` with the reader settings as keywords.

    >>> [ex.label for ex in read_examples("train.jsonl")]  # doctest: +SKIP
    ['DESC', 'ENTY', ...]
    """
    data = DataConfig(format=format, text_field=text_field, label_field=label_field, encoding=encoding)
    return read_data(path, data, labelled=labelled, on_bad_lines=on_bad_lines, report=report)


def read_dataset(path: PathLike, data: DataConfig | None = None, *, labelled: bool = True,
                 **settings: str | None) -> tuple[list[Example], ReadReport]:
    """All examples of `path` in a list, and the report of the read: `data`, or `DataConfig`
    fields given as keywords (`format=`, `text_field=`, ...), as `read_data` takes them."""
    report = ReadReport()
    data = data or DataConfig(**settings)
    return list(read_data(path, data, labelled=labelled, report=report)), report


def read_texts(path: PathLike, *, format: str = "auto", text_field: str | None = None,
               encoding: str = "utf-8", on_bad_lines: str = "error",
               report: ReadReport | None = None) -> Iterator[Example]:
    """Stream documents for prediction or pretraining: `read_examples` without needing labels."""
    return read_examples(path, format=format, text_field=text_field, encoding=encoding,
                         on_bad_lines=on_bad_lines, labelled=False, report=report)


def label_order(labels: Iterable[str]) -> list[str]:
    """The label set in a stable order: numeric if every label is an integer, else lexicographic.

    >>> label_order(["10", "2", "-1", "2"])
    ['-1', '2', '10']
    """
    unique = set(labels)
    if unique and all(re.fullmatch(r"[+-]?[0-9]+", s) for s in unique):
        return sorted(unique, key=lambda s: (int(s), s))
    return sorted(unique)


def _check(path: Path, format: str, encoding: str, on_bad_lines: str, labelled: bool) -> str:
    """Validate the options against the path; return the format to read."""
    if on_bad_lines not in BAD_LINE_MODES:
        raise ConfigError(f"on_bad_lines={on_bad_lines!r} is not allowed. "
                          f"Allowed: {', '.join(BAD_LINE_MODES)}.")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"Unknown encoding {encoding!r}. Use a Python codec name such as "
                          "utf-8, latin-1, cp1252 or utf-16.") from None
    if format != "auto" and format not in FORMATS:
        raise ConfigError(f"Unknown format {format!r}. Formats: auto, {', '.join(FORMATS)}.")
    if not path.exists():
        raise DataError(f"Data file {path} does not exist.")
    fmt = detect_format(path) if format == "auto" else format
    if path.is_dir() != (fmt == "folder"):
        raise DataError(f"{path} is {'a directory' if path.is_dir() else 'a file'} but is read as "
                        f"{fmt}; only a folder per class (DIR/<class>/*.txt) is a directory.")
    if labelled and fmt == "text":
        raise DataError(f"{path} is read as plain text (one document per line), which has no "
                        "labels. Labelled data is csv, tsv, jsonl, fasttext or a folder per "
                        "class; pass --format if the file name misleads.")
    return fmt


def _read(path: Path, fmt: str, opts: Options, rep: ReadReport) -> Iterator[Example]:
    """Turn one parser's records into examples; bad ones are skipped, raised or reported."""
    report = opts.on_bad_lines == "report"
    for source, line, item in PARSERS[fmt](path, opts, rep):
        rep.n_records += 1
        if not isinstance(item, Bad):
            text, label, *ident = item
            if isinstance(label, tuple):
                label, item = _several(label, opts, rep, source, line)
            if isinstance(item, Bad):
                pass
            elif not text.strip():
                item = Bad("empty text")
            elif label is not None or not opts.labelled:
                rep.n_kept += 1
                yield Example(text, label, line, source, id=ident[0] if ident else None)
                continue
            else:
                item = Bad("missing label", f"{rep.label_field!r} is empty" if rep.label_field else "")
        detail = f" ({item.detail})" if item.detail else ""
        if report:
            _skip(rep, source, line, item.reason, rep.reported)
            yield Example("", None, line, source, error=item.reason + detail)
        elif opts.on_bad_lines == "skip" or item.reason == "empty text":  # never an error
            _skip(rep, source, line, item.reason, rep.skipped)
        else:
            raise DataError(f"{where(source, line)}: {item.reason}{detail}; {_EXPECTED[fmt]}. "
                            "Fix the line or pass --on-bad-lines skip.")
    if rep.skipped or rep.reported or not rep.n_records:  # bad lines, or an empty file
        log.warning("%s", rep.summary())


def _several(labels: tuple[str, ...], opts: Options, rep: ReadReport, source: str, line: int | None):
    """`(label, item)` for a record written with multi-label syntax: one label is a plain
    string (the same in either task); none or several are a tuple, counted in the report,
    unless the task is multi-class, where they are a bad record."""
    if len(labels) == 1:
        return labels[0], None
    if opts.task == "multiclass" and opts.labelled:
        if not labels:
            return None, Bad("missing label")
        return None, Bad("several labels", f"{' '.join(labels)[:60]}; set model.task = \"multilabel\" "
                                           "(or auto) for multi-label data")
    if not labels:
        rep.n_no_label += 1
        if rep.first_no_label is None:
            rep.first_no_label = (source, line)
    else:
        rep.n_multi += 1
    return labels, None


def _skip(rep: ReadReport, source: str, line: int | None, reason: str, counts: Counter) -> None:
    counts[reason] += 1
    if len(rep.examples_of_skips) < 5:
        rep.examples_of_skips.append((source, line, reason))


def check_known_labels(labels: Iterable[str], index: dict[str, int] | Iterable[str], what: str) -> None:
    """`DataError` listing the labels (with counts) that are not in `index`, the known labels
    (each label of a multi-label tuple counts)."""
    unknown = Counter(lab for lab in each_label(labels) if lab not in index)
    if unknown:
        listed = ", ".join(f"{lab!r} ({n})" for lab, n in unknown.most_common())
        raise DataError(f"The {what} has labels the model does not know: {listed}. "
                        f"Known labels: {', '.join(index)}.")


def parse_label_names(pairs: Iterable[str]) -> dict[str, str]:
    """`["0=negative", "1=positive"]` as `{"0": "negative", "1": "positive"}`: each raw label
    once, each name once, neither empty (`data.label_names`, `--label-names`)."""
    names: dict[str, str] = {}
    for pair in pairs:
        raw, sep, name = pair.partition("=")
        raw, name = raw.strip(), name.strip()
        if not sep or not raw or not name:
            raise ConfigError(f"data.label_names: {pair!r} is not 'label=name' (e.g. 0=negative).")
        if raw in names:
            raise ConfigError(f"data.label_names names the label {raw!r} twice.")
        names[raw] = name
    twice = [n for n, k in Counter(names.values()).items() if k > 1]
    if twice:
        raise ConfigError(f"data.label_names gives the name {twice[0]!r} to several labels.")
    return names


def rename_labels(labels: Iterable[str | None], names: dict[str, str], *, what: str = "",
                  strict: bool = False) -> list[str | None]:
    """Labels as named by `names` (raw -> name). With `strict`, a label `names` lacks is a
    `DataError` naming the `what`; otherwise it stays as it is (already a name, or unknown:
    the caller's check of known labels reports it). None stays None."""
    if not names:
        return list(labels)
    labels = list(labels)
    if strict:
        missing = Counter(lab for lab in each_label(labels) if lab not in names)
        if missing:
            listed = ", ".join(repr(lab) for lab, _ in missing.most_common(10))
            raise DataError(f"data.label_names has no name for the labels {listed} of the {what}; "
                            f"it names {', '.join(map(repr, names))}.")
    return [tuple(names.get(x, x) for x in lab) if isinstance(lab, tuple) else
            names.get(lab, lab) if lab is not None else None for lab in labels]


def each_label(labels: Iterable[str | tuple[str, ...] | None]) -> Iterator[str]:
    """Every label of every text: a string once, a tuple's labels each; None none.

    >>> list(each_label(["a", ("b", "c"), None, ()]))
    ['a', 'b', 'c']
    """
    for lab in labels:
        if isinstance(lab, tuple):
            yield from lab
        elif lab is not None:
            yield lab

