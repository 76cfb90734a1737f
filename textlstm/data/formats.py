"""One parser per data format: lines (or files) to records `(source, line, (text, label) or Bad)`.

Parsers choose the text and label fields (given, or found by a common name) and note the choice
in the read's `ReadReport`; `readers.py` turns records into examples and applies the bad-line policy.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Union

from ..errors import DataError, where
from .lines import chomp, decode_error, iter_lines
from .records import ReadReport

TEXT_NAMES = ("text", "sentence", "review", "content", "document", "body", "comment")
LABEL_NAMES = ("label", "sentiment", "class", "category", "labels", "target")
_FASTTEXT = re.compile(r"((?:__label__[^ \t]*[ \t]*)+)(.*)", re.S)
_JSON_ARRAY_HINT = "; the file looks like one JSON document, not JSON lines (try jq -c '.[]')"
_CSV_FIELD_LIMIT = 2**31 - 1  # the most a C long holds everywhere; 5M-character reviews fit


class Bad(NamedTuple):
    """Why a record is unusable."""

    reason: str  # short and stable: the key in `ReadReport.skipped`
    detail: str = ""


@dataclass(frozen=True)
class Options:
    text_field: str | None
    label_field: str | None
    encoding: str
    on_bad_lines: str
    labelled: bool
    id_field: str | None = None  # a column/key passed through as `Example.id` (prediction jobs)
    label_sep: str = ""  # CSV/TSV: the label field holds labels separated by this string
    task: str = "auto"  # model.task: "multiclass" refuses several labels per record at once


# what parsers yield: (source, line, (text, label) or Bad); a label is a string, or a tuple
# of strings where the syntax allows several (fastText, a JSON list, a label separator)
Label = Union[str, tuple[str, ...], None]
Record = tuple[str, Union[int, None], Union[Bad, tuple[str, Label]]]


# -- fields -----------------------------------------------------------------------------------

def _find(columns: list[str], names: Iterable[str]) -> str | None:
    lowered: dict[str, str] = {}
    for c in columns:
        lowered.setdefault(c.strip().lower(), c)
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def _resolve_fields(columns: list[str], opts: Options, rep: ReadReport, path: Path, line: int,
                    noun: str = "Column") -> tuple[str, str | None]:
    """The text and label field names: given (exactly or up to case) or found by common name.
    The chosen name must not be ambiguous: no other field may match it the same way."""
    listing = ", ".join(c if len(c) <= 40 else c[:37] + "..." for c in columns) or "(none)"
    hint = " The first row is read as the header." if noun == "Column" else ""

    def pick(given: str | None, names: tuple[str, ...], role: str, required: bool) -> str | None:
        if given is not None:
            exact = given in columns
            found = given if exact else _find(columns, [given])
            if found is None:
                raise DataError(f"{noun} {given!r} not found in {path}. {noun}s: {listing}. "
                                f"Use --{role}-field.")
        else:
            exact, found = False, _find(columns, names)
            if found is None and required:
                raise DataError(f"No {role} {noun.lower()} found in {path}. {noun}s: {listing}. "
                                f"Known {role} names: {', '.join(names)}.{hint} "
                                "Use --text-field/--label-field.")
        if found is not None:
            _check_unique(columns, found, exact, role, noun, where(path, line))
        return found

    text = pick(opts.text_field, TEXT_NAMES, "text", True)
    label = pick(opts.label_field, LABEL_NAMES, "label", opts.labelled)
    if label == text:
        raise DataError(f"{path}: {noun.lower()} {text!r} is chosen as both text and label. "
                        "Use --text-field/--label-field.")
    rep.text_field, rep.label_field = text, label
    rep.fields_detected = opts.text_field is None or (opts.label_field is None and label is not None)
    return text or "", label


def _check_unique(columns: list[str], name: str, exact: bool, role: str, noun: str,
                  at: str) -> None:
    """`DataError` if other fields have the chosen name (exactly, or up to case and spaces
    when it was matched that way): reading the first of them would be a silent guess."""
    key = name if exact else name.strip().lower()
    same = [(i, c) for i, c in enumerate(columns, 1) if (c if exact else c.strip().lower()) == key]
    if len(same) < 2:
        return
    where_ = "the header" if noun == "Column" else "the first JSON object"
    numbers = ", ".join(str(i) for i, _ in same[:-1]) + f" and {same[-1][0]}"
    both, one = ("both", "one") if len(same) == 2 else ("all", "all but one")
    ambiguous = f"so the {role} {noun.lower()} is ambiguous. Rename {one} of them"
    if len({c for _, c in same}) == 1:
        raise DataError(f"{at}: {noun.lower()}s {numbers} of {where_} are {both} named {key!r}, "
                        f"{ambiguous}, or choose another {noun.lower()} with --{role}-field.")
    named = ", ".join(repr(c) for _, c in same)
    raise DataError(f"{at}: {noun.lower()}s {numbers} of {where_} ({named}) {both} match {key!r}, "
                    f"{ambiguous}, or pass --{role}-field with the exact name.")


def _label(value: str) -> str | None:
    return value if value.strip() else None


def _labels(values: Iterable[str]) -> tuple[str, ...]:
    """Several labels as a tuple: stripped, empty ones dropped, each once (first one first)."""
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


def _cell_label(value: str, sep: str) -> Label:
    """A CSV/TSV label cell: one label, or with a separator a tuple (empty: no label)."""
    return _labels(value.split(sep)) if sep else _label(value)


# -- one parser per format --------------------------------------------------------------------

def _parse_csv(path: Path, opts: Options, rep: ReadReport) -> Iterator[Record]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(text for _, text in iter_lines(path, opts.encoding))

    def rows() -> Iterator[tuple[int, int, list[str] | Bad]]:
        while True:
            start = reader.line_num + 1
            try:
                row: list[str] | Bad = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row = Bad("malformed CSV", str(exc))
            yield start, reader.line_num, row

    return _tabular(path, rows(), opts, rep)


def _parse_tsv(path: Path, opts: Options, rep: ReadReport) -> Iterator[Record]:
    rows = ((n, n, chomp(raw).split("\t")) for n, raw in iter_lines(path, opts.encoding))
    return _tabular(path, rows, opts, rep)


def _tabular(path: Path, rows: Iterator[tuple[int, int, list[str] | Bad]], opts: Options,
             rep: ReadReport) -> Iterator[Record]:
    """Records from rows (start line, end line, fields): the first row is the header."""
    src, header, ti, li, ii = str(path), None, 0, None, None
    for start, end, row in rows:
        if isinstance(row, Bad):
            yield src, start, row
        elif row in ([], [""]) or (header is None and not "".join(row).strip()):
            rep.n_blank += 1  # a blank line (or, before the header, one of only spaces)
        elif header is None:
            header = row
            text, label = _resolve_fields(row, opts, rep, path, start)
            ti, li = row.index(text), (None if label is None else row.index(label))
            ii = None if opts.id_field is None else row.index(_id_field(row, opts.id_field, path))
        elif len(row) != len(header):
            spans = f"; the record runs over lines {start}-{end}: is a quote unbalanced?"
            yield src, start, Bad("wrong number of fields", f"found {len(row)}, the header has "
                                   f"{len(header)}{spans if end > start else ''}")
        elif ii is None:
            yield src, start, (row[ti], None if li is None else _cell_label(row[li], opts.label_sep))
        else:
            yield src, start, (row[ti], None if li is None else _cell_label(row[li], opts.label_sep), row[ii])


def _id_field(columns: list[str], given: str, path: Path) -> str:
    found = given if given in columns else _find(columns, [given])
    if found is None:
        raise DataError(f"Field {given!r} (--id-field) not found in {path}. Fields: "
                        f"{', '.join(columns) or '(none)'}.")
    return found


class _Repeated(dict):
    """A JSON object with a repeated key (plain `json.loads` keeps the last value silently);
    `counts` maps each repeated key to how often it appears."""

    counts: dict[str, int]


def _json_object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    repeated = _Repeated(obj)
    repeated.counts = {k: n for k, n in Counter(k for k, _ in pairs).items() if n > 1}
    return repeated


# one decoder for every line: `json.loads(s, object_pairs_hook=...)` would build one per call
_decode_json = json.JSONDecoder(object_pairs_hook=_json_object).decode


def _parse_jsonl(path: Path, opts: Options, rep: ReadReport) -> Iterator[Record]:
    src, fields, id_key = str(path), None, None
    for n, raw in iter_lines(path, opts.encoding):
        line = chomp(raw)
        if not line.strip(" \t\r"):
            rep.n_blank += 1
            continue
        try:
            obj = _decode_json(line)
        except (ValueError, RecursionError) as exc:  # also huge integers and deep nesting
            where_ = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            hint = _JSON_ARRAY_HINT if n == 1 and line.strip() in ("[", "{") else ""
            yield src, n, Bad("malformed JSON", f"{getattr(exc, 'msg', exc)}{where_}{hint}")
            continue
        if not isinstance(obj, dict):
            hint = _JSON_ARRAY_HINT if n == 1 and isinstance(obj, list) else ""
            yield src, n, Bad("not a JSON object", f"got {type(obj).__name__}{hint}")
            continue
        if fields is None:
            fields = _resolve_fields(list(obj), opts, rep, path, n, noun="Field")
            id_key = None if opts.id_field is None else _id_field(list(obj), opts.id_field, path)
        record = _json_record(obj, *fields, opts.labelled)
        if id_key is not None and not isinstance(record, Bad):
            value = obj.get(id_key)
            record = (*record, value if isinstance(value, str) or value is None else json.dumps(value))
        yield src, n, record


def _json_record(obj: dict, text_key: str, label_key: str | None,
                 labelled: bool) -> Bad | tuple[str, str | None]:
    if type(obj) is _Repeated:
        return _json_repeated(obj, text_key, label_key, labelled)
    if text_key not in obj:
        return Bad("missing text", f"no {text_key!r} field")
    text = obj[text_key]
    if text is not None and not isinstance(text, str):
        return Bad("text must be a string", f"got {json.dumps(text)[:40]}")
    label = None if label_key is None else _json_label(obj.get(label_key))
    if isinstance(label, Bad):
        if labelled:
            return label
        label = None
    return text or "", label  # null text counts as empty text


def _json_repeated(obj: _Repeated, text_key: str, label_key: str | None,
                   labelled: bool) -> Bad | tuple[str, str | None]:
    """A repeated text key is a bad line, and so is a repeated label key unless labels are
    optional (then the label is dropped, as a malformed one is); other keys may repeat."""
    for key in (text_key, label_key):
        if key in obj.counts and (key == text_key or labelled):
            return Bad("repeated field", f"{key!r} appears {obj.counts[key]} times; keep one")
    plain = dict(obj)
    if label_key in obj.counts:
        del plain[label_key]
    return _json_record(plain, text_key, label_key, labelled)


def _json_label(value: object, nested: bool = False) -> Label | Bad:
    """Strings as written, integers as digits, true/false as JSON spells them; a list of
    those is several labels (a tuple; `[]`: none)."""
    if value is None or isinstance(value, str):
        return None if value is None else _label(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list) and not nested:
        labels = [_json_label(v, nested=True) for v in value]
        bad = next((lab for lab in labels if isinstance(lab, Bad) or lab is None), False)
        if bad is not False:
            return bad or Bad("label list holds an empty label", f"got {json.dumps(value)[:40]}")
        return _labels(labels)
    what = "string or integer" if nested else "string, integer or a list of them"
    return Bad(f"label must be a {what}", f"got {json.dumps(value)[:40]}")


def _parse_fasttext(path: Path, opts: Options, rep: ReadReport) -> Iterator[Record]:
    src = str(path)
    for n, raw in iter_lines(path, opts.encoding):
        line = chomp(raw)
        if not line:
            rep.n_blank += 1
            continue
        m = _FASTTEXT.match(line)
        labels = _labels(lab.removeprefix("__label__") for lab in m.group(1).split()) if m else ()
        if opts.labelled and not labels and opts.task == "multiclass":
            yield src, n, Bad("fastText line without a label", f"it starts {line[:20]!r}")
            continue
        label: Label = labels[0] if len(labels) == 1 else labels
        if not opts.labelled and not labels:
            label = None
        yield src, n, (m.group(2) if m else line, label)


def _parse_text(path: Path, opts: Options, rep: ReadReport) -> Iterator[Record]:
    src = str(path)
    for n, raw in iter_lines(path, opts.encoding):
        if line := chomp(raw):
            yield src, n, (line, None)
        else:
            rep.n_blank += 1


def _parse_folder(path: Path, opts: Options, rep: ReadReport) -> Iterator[Record]:
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
        raise decode_error(path, line, exc.start, data[exc.start:exc.end], encoding) from None
    return chomp(text.removeprefix("\ufeff"))


PARSERS = {"csv": _parse_csv, "tsv": _parse_tsv, "jsonl": _parse_jsonl,
            "fasttext": _parse_fasttext, "text": _parse_text, "folder": _parse_folder}
