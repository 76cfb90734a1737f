"""Readers for CSV, TSV, JSON lines, fastText, folder-per-class and plain-text data (`.gz` too).

Files stream line by line and are never loaded whole. Fields stay the strings written in the
file; a bad line fails with `file:line` and what was expected, is skipped and counted, or
(`on_bad_lines="report"`, for prediction jobs that owe one row per record) comes through as an
`Example` whose `error` says what is wrong.

>>> examples, report = read_dataset("data/train.tsv")  # doctest: +SKIP
>>> report.summary()  # doctest: +SKIP
"read 6920 examples from data/train.tsv (text='sentence', label='label')"
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, NamedTuple, Union

from .errors import ConfigError, DataError, where

log = logging.getLogger(__name__)

BAD_LINE_MODES = ("error", "skip", "report")
FORMATS = ("csv", "tsv", "jsonl", "fasttext", "folder", "text")
TEXT_NAMES = ("text", "sentence", "review", "content", "document", "body", "comment")
LABEL_NAMES = ("label", "sentiment", "class", "category", "labels", "target")
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
_FASTTEXT = re.compile(r"((?:__label__[^ \t]*[ \t]*)+)(.*)", re.S)
_JSON_ARRAY_HINT = "; the file looks like one JSON document, not JSON lines (try jq -c '.[]')"
_CSV_FIELD_LIMIT = 2**31 - 1  # the most a C long holds everywhere; 5M-character reviews fit
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True, slots=True)
class Example:
    """One document: its text, its label (None when unlabelled) and where it came from."""

    text: str
    label: str | None
    line: int | None  # 1-based line where the record starts; None for the folder format
    source: str
    error: str | None = None  # why the record is unusable (on_bad_lines="report"); text is ""


@dataclass
class ReadReport:
    """What a read saw: the fields chosen, and how many records were kept or skipped (and why).

    `read_examples(..., report=r)` fills it as examples stream; once read,
    `n_records == n_kept + sum(skipped.values()) + sum(reported.values())`, where `reported`
    counts the bad records passed on as error examples (`on_bad_lines="report"`).
    """

    path: str = ""
    format: str = ""
    text_field: str | None = None
    label_field: str | None = None
    fields_detected: bool = False  # a field was chosen by its name: callers should say which
    n_records: int = 0
    n_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    reported: Counter = field(default_factory=Counter)
    examples_of_skips: list[tuple[str, int | None, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. "read 6920 examples from x.tsv (text='sentence', label='label')"."""
        fields = (f"text={self.text_field!r}, label={self.label_field!r}"
                  if self.text_field else self.format)
        out = f"read {self.n_kept} examples from {self.path} ({fields})"
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            source, line, _ = self.examples_of_skips[0]
            out += f"; skipped {sum(self.skipped.values())}: {reasons} (first at {where(source, line)})"
        if self.reported:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.reported.most_common())
            source, line, _ = next((s for s in self.examples_of_skips if s[2] in self.reported),
                                   ("?", None, ""))
            out += (f"; {sum(self.reported.values())} bad records kept as errors: {reasons} "
                    f"(first at {where(source, line)})")
        return out


class _Bad(NamedTuple):
    reason: str  # short and stable: the key in `ReadReport.skipped`
    detail: str = ""


@dataclass(frozen=True)
class _Options:
    text_field: str | None
    label_field: str | None
    encoding: str
    on_bad_lines: str
    labelled: bool


# what parsers yield: (source, line, (text, label) or _Bad)
_Record = tuple[str, Union[int, None], Union[_Bad, tuple[str, Union[str, None]]]]


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
    if fmt == "text" and p.is_file() and _first_bytes(p).startswith(b"__label__"):
        return "fasttext"
    return fmt


def read_examples(path: PathLike, *, format: str = "auto", text_field: str | None = None,
                  label_field: str | None = None, encoding: str = "utf-8",
                  on_bad_lines: str = "error", labelled: bool = True,
                  report: ReadReport | None = None) -> Iterator[Example]:
    """Stream the examples of a data file (or folder), filling `report` as it goes.

    Options and the path are checked on the call; the file is read as the iterator is. Empty
    texts are skipped and counted. Other bad lines raise `DataError` or, with
    `on_bad_lines="skip"`, are skipped and counted by reason. With `on_bad_lines="report"`
    every bad record, an empty text too, is yielded in its place as
    `Example("", None, line, source, error=reason)` and counted in `report.reported`. With
    `labelled=False` labels are kept where present and never required.

    >>> [ex.label for ex in read_examples("train.jsonl")]  # doctest: +SKIP
    ['DESC', 'ENTY', ...]
    """
    fmt = _check(Path(path), format, encoding, on_bad_lines, labelled)
    rep = report if report is not None else ReadReport()
    rep.path, rep.format = str(path), fmt
    opts = _Options(text_field, label_field, encoding, on_bad_lines, labelled)
    return _read(Path(path), fmt, opts, rep)


def read_dataset(path: PathLike, *, format: str = "auto", text_field: str | None = None,
                 label_field: str | None = None, encoding: str = "utf-8",
                 on_bad_lines: str = "error", labelled: bool = True,
                 ) -> tuple[list[Example], ReadReport]:
    """All examples of `path` in a list, and the report of the read (see `read_examples`)."""
    report = ReadReport()
    examples = list(read_examples(path, format=format, text_field=text_field,
                                  label_field=label_field, encoding=encoding,
                                  on_bad_lines=on_bad_lines, labelled=labelled, report=report))
    return examples, report


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


def _read(path: Path, fmt: str, opts: _Options, rep: ReadReport) -> Iterator[Example]:
    """Turn one parser's records into examples; bad ones are skipped, raised or reported."""
    report = opts.on_bad_lines == "report"
    for source, line, item in _PARSERS[fmt](path, opts, rep):
        rep.n_records += 1
        if not isinstance(item, _Bad):
            text, label = item
            if not text.strip():
                item = _Bad("empty text")
            elif label is not None or not opts.labelled:
                rep.n_kept += 1
                yield Example(text, label, line, source)
                continue
            else:
                item = _Bad("missing label", f"{rep.label_field!r} is empty" if rep.label_field else "")
        detail = f" ({item.detail})" if item.detail else ""
        if report:
            _skip(rep, source, line, item.reason, rep.reported)
            yield Example("", None, line, source, error=item.reason + detail)
        elif opts.on_bad_lines == "skip" or item.reason == "empty text":  # never an error
            _skip(rep, source, line, item.reason, rep.skipped)
        else:
            raise DataError(f"{where(source, line)}: {item.reason}{detail}; {_EXPECTED[fmt]}. "
                            "Fix the line or pass --on-bad-lines skip.")
    if rep.skipped or rep.reported:
        log.warning("%s", rep.summary())


def _skip(rep: ReadReport, source: str, line: int | None, reason: str, counts: Counter) -> None:
    counts[reason] += 1
    if len(rep.examples_of_skips) < 5:
        rep.examples_of_skips.append((source, line, reason))


# -- bytes to lines ---------------------------------------------------------------------------

def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _first_bytes(path: Path) -> bytes:
    try:
        with _open_binary(path) as fh:
            return fh.readline(64).removeprefix(codecs.BOM_UTF8)
    except (OSError, EOFError, zlib.error):
        return b""  # reading the file will say what is wrong with it


def _guarded(fh: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from fh
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is not a valid gzip file or is truncated ({exc}).") from None


def _decode_error(path: Path, line: int, offset: int, bad: bytes, encoding: str) -> DataError:
    gz = " of the decompressed data" if path.name.lower().endswith(".gz") else ""
    return DataError(f"{where(path, line)}: cannot decode {bad!r} at byte offset {offset}{gz} as "
                     f"{encoding}. Pass --encoding latin-1 (or the file's encoding, e.g. cp1252).")


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, line with its newline), decoded one line at a time; a BOM is dropped."""
    if "\n".encode(encoding) != b"\n":  # UTF-16/32: a 0x0A byte is not a line end
        yield from _wide_lines(path, encoding)
        return
    offset = 0
    with _open_binary(path) as fh:
        for n, raw in enumerate(_guarded(fh, path), 1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(path, n, offset + exc.start, raw[exc.start:exc.end],
                                    encoding) from None
            offset += len(raw)
            yield n, (text.removeprefix("\ufeff") if n == 1 else text)


def _wide_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    n = 0
    with _open_binary(path) as fh, io.TextIOWrapper(fh, encoding=encoding, newline="") as text:
        try:
            for n, line in enumerate(text, 1):
                yield n, line
        except UnicodeDecodeError as exc:
            raise DataError(f"{where(path, n + 1)}: cannot decode as {encoding} ({exc.reason}). "
                            "Pass --encoding with the file's encoding.") from None


def _chomp(line: str) -> str:
    """The line without its `\\n` or `\\r\\n`; nothing else changes."""
    if line.endswith("\n"):
        return line[:-2] if line.endswith("\r\n") else line[:-1]
    return line


# -- fields -----------------------------------------------------------------------------------

def _find(columns: list[str], names: Iterable[str]) -> str | None:
    lowered: dict[str, str] = {}
    for c in columns:
        lowered.setdefault(c.strip().lower(), c)
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def _resolve_fields(columns: list[str], opts: _Options, rep: ReadReport, path: Path,
                    noun: str = "Column") -> tuple[str, str | None]:
    """The text and label field names: given (exactly or up to case) or found by common name."""
    listing = ", ".join(c if len(c) <= 40 else c[:37] + "..." for c in columns) or "(none)"
    hint = " The first row is read as the header." if noun == "Column" else ""

    def pick(given: str | None, names: tuple[str, ...], role: str, required: bool) -> str | None:
        if given is not None:
            found = given if given in columns else _find(columns, [given])
            if found is None:
                raise DataError(f"{noun} {given!r} not found in {path}. {noun}s: {listing}. "
                                f"Use --{role}-field.")
            return found
        found = _find(columns, names)
        if found is None and required:
            raise DataError(f"No {role} {noun.lower()} found in {path}. {noun}s: {listing}. "
                            f"Known {role} names: {', '.join(names)}.{hint} "
                            "Use --text-field/--label-field.")
        return found

    text = pick(opts.text_field, TEXT_NAMES, "text", True)
    label = pick(opts.label_field, LABEL_NAMES, "label", opts.labelled)
    if label == text:
        raise DataError(f"{path}: {noun.lower()} {text!r} is chosen as both text and label. "
                        "Use --text-field/--label-field.")
    rep.text_field, rep.label_field = text, label
    rep.fields_detected = opts.text_field is None or (opts.label_field is None and label is not None)
    return text or "", label


def _label(value: str) -> str | None:
    return value if value.strip() else None


# -- one parser per format --------------------------------------------------------------------

def _parse_csv(path: Path, opts: _Options, rep: ReadReport) -> Iterator[_Record]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(text for _, text in _lines(path, opts.encoding))

    def rows() -> Iterator[tuple[int, int, list[str] | _Bad]]:
        while True:
            start = reader.line_num + 1
            try:
                row: list[str] | _Bad = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row = _Bad("malformed CSV", str(exc))
            yield start, reader.line_num, row

    return _tabular(path, rows(), opts, rep)


def _parse_tsv(path: Path, opts: _Options, rep: ReadReport) -> Iterator[_Record]:
    rows = ((n, n, _chomp(raw).split("\t")) for n, raw in _lines(path, opts.encoding))
    return _tabular(path, rows, opts, rep)


def _tabular(path: Path, rows: Iterator[tuple[int, int, list[str] | _Bad]], opts: _Options,
             rep: ReadReport) -> Iterator[_Record]:
    """Records from rows (start line, end line, fields): the first row is the header."""
    src, header, ti, li = str(path), None, 0, None
    for start, end, row in rows:
        if isinstance(row, _Bad):
            yield src, start, row
        elif row in ([], [""]):
            continue  # blank line
        elif header is None:
            header = row
            text, label = _resolve_fields(row, opts, rep, path)
            ti, li = row.index(text), (None if label is None else row.index(label))
        elif len(row) != len(header):
            spans = f"; the record runs over lines {start}-{end}: is a quote unbalanced?"
            yield src, start, _Bad("wrong number of fields", f"found {len(row)}, the header has "
                                   f"{len(header)}{spans if end > start else ''}")
        else:
            yield src, start, (row[ti], None if li is None else _label(row[li]))


def _parse_jsonl(path: Path, opts: _Options, rep: ReadReport) -> Iterator[_Record]:
    src, fields = str(path), None
    for n, raw in _lines(path, opts.encoding):
        line = _chomp(raw)
        if not line.strip(" \t\r"):
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:  # also huge integers and deep nesting
            where_ = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            hint = _JSON_ARRAY_HINT if n == 1 and line.strip() in ("[", "{") else ""
            yield src, n, _Bad("malformed JSON", f"{getattr(exc, 'msg', exc)}{where_}{hint}")
            continue
        if not isinstance(obj, dict):
            hint = _JSON_ARRAY_HINT if n == 1 and isinstance(obj, list) else ""
            yield src, n, _Bad("not a JSON object", f"got {type(obj).__name__}{hint}")
            continue
        if fields is None:
            fields = _resolve_fields(list(obj), opts, rep, path, noun="Field")
        yield src, n, _json_record(obj, *fields, opts.labelled)


def _json_record(obj: dict, text_key: str, label_key: str | None,
                 labelled: bool) -> _Bad | tuple[str, str | None]:
    if text_key not in obj:
        return _Bad("missing text", f"no {text_key!r} field")
    text = obj[text_key]
    if text is not None and not isinstance(text, str):
        return _Bad("text must be a string", f"got {json.dumps(text)[:40]}")
    label = None if label_key is None else _json_label(obj.get(label_key))
    if isinstance(label, _Bad):
        if labelled:
            return label
        label = None
    return text or "", label  # null text counts as empty text


def _json_label(value: object) -> str | _Bad | None:
    """Strings as written, integers as digits, true/false as JSON spells them."""
    if value is None or isinstance(value, str):
        return None if value is None else _label(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return _Bad("multi-label lines are not supported", f"got {len(value)} labels")
    return _Bad("label must be a string or integer", f"got {json.dumps(value)[:40]}")


def _parse_fasttext(path: Path, opts: _Options, rep: ReadReport) -> Iterator[_Record]:
    src = str(path)
    for n, raw in _lines(path, opts.encoding):
        line = _chomp(raw)
        if not line:
            continue
        m = _FASTTEXT.match(line)
        labels = m.group(1).split() if m else []
        if opts.labelled and len(labels) != 1:
            yield src, n, (_Bad("fastText line without a label", f"it starts {line[:20]!r}")
                           if not labels else _Bad("multi-label lines are not supported",
                                                   " ".join(labels)[:60]))
            continue
        label = (labels[0].removeprefix("__label__") or None) if len(labels) == 1 else None
        yield src, n, (m.group(2) if m else line, label)


def _parse_text(path: Path, opts: _Options, rep: ReadReport) -> Iterator[_Record]:
    src = str(path)
    for n, raw in _lines(path, opts.encoding):
        if line := _chomp(raw):
            yield src, n, (line, None)


def _parse_folder(path: Path, opts: _Options, rep: ReadReport) -> Iterator[_Record]:
    classes = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(d.name, f) for d in classes for f in sorted(d.glob("*.txt")) if f.is_file()]
    if not files:
        found = ", ".join(d.name for d in classes) or "none"
        raise DataError(f"{path} has no class folders with .txt files (subfolders: {found}). "
                        "Expected one folder per class, one document per file: "
                        f"{path / 'pos' / '1.txt'}, {path / 'neg' / '2.txt'}, ...")
    for label, f in files:
        yield str(f), None, (_read_document(f, opts.encoding), label)


def _read_document(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _decode_error(path, line, exc.start, data[exc.start:exc.end], encoding) from None
    return _chomp(text.removeprefix("\ufeff"))


_PARSERS = {"csv": _parse_csv, "tsv": _parse_tsv, "jsonl": _parse_jsonl,
            "fasttext": _parse_fasttext, "text": _parse_text, "folder": _parse_folder}
