"""Batch prediction over files: streamed in chunks with constant memory, one output row per input
record, resumable after a kill, and never written over an existing result by accident.

While a job runs it writes `<output>.partial`, flushed to disk after every chunk, and a sidecar
`<output>.partial.json` saying which input, model and reader settings the rows come from and how
many rows (and bytes) of the partial file are complete. `resume=True` checks the sidecar against
the current run, cuts the partial file back to its last complete row and goes on with the next
record. A finished job renames the partial file onto `<output>` and removes the sidecar.

>>> predict_file(clf, "reviews.jsonl", "pred.csv")               # doctest: +SKIP
>>> predict_file(clf, "reviews.jsonl", "pred.csv", resume=True)  # after a kill  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from ..atomic import atomic_write_text, disk_space, fsync_dir
from ..classifier import TextClassifier
from ..config import DataConfig
from ..data.readers import Example, ReadReport, parse_label_names, read_data, rename_labels
from ..data.tokencache import content_hash
from ..errors import ConfigError, DataError
from ..locks import exclusive
from .rows import Columns, columns_for, header, output_format, render

SIDECAR_VERSION = 1
_HEAD_BYTES = 1 << 20  # the input's first MiB is hashed: cheap, and catches rewritten files
_CHUNK_CHARS = 1 << 25  # characters of text per chunk (32 Mi), beyond a single record
_CHUNK_SCORES = 1 << 24  # probabilities per chunk (texts x labels: 64 MiB of float32)


@dataclass
class JobSummary:
    rows: int  # rows in the output: one per input record
    output: Path
    report: ReadReport
    errors: int = 0  # rows carrying an error instead of a prediction
    resumed_from: int = 0  # rows an interrupted run had written before this one went on


@dataclass
class _Progress:
    """What the sidecar says is complete in the partial file."""

    rows: int = 0
    errors: int = 0
    bytes: int = 0


def partial_paths(output_path: str | os.PathLike) -> tuple[Path, Path]:
    """The partial output file and its JSON sidecar, next to `output_path`."""
    out = Path(output_path)
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


def model_fingerprint(clf: TextClassifier) -> str:
    """SHA-256 of a trained classifier's settings, labels, vocabulary and weights: two models
    share it only if they predict alike."""
    clf.check_fitted()
    h = hashlib.sha256()
    meta = {"config": clf.config.to_dict(), "labels": list(clf.classes_), "vocab": clf.vocab_.itos}
    h.update(json.dumps(meta, sort_keys=True).encode("utf-8", "surrogatepass"))
    for name, tensor in sorted(clf.model_.state_dict().items()):
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def input_identity(path: str | os.PathLike) -> dict[str, Any]:
    """What tells whether an input changed: size, mtime and a hash of the first MiB of a file;
    a hash of every file of a folder."""
    p = Path(path)
    if p.is_dir():
        return {"path": str(p.resolve()), "content_blake2b": content_hash(p)}
    st = p.stat()
    with open(p, "rb") as fh:
        head = hashlib.sha256(fh.read(_HEAD_BYTES)).hexdigest()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "head_sha256": head}


def predict_file(clf: TextClassifier, input_path: str | os.PathLike, output_path: str | os.PathLike,
                 *, data: DataConfig | None = None, chunk_size: int = 4096, batch_size: int = 256,
                 model_id: str | None = None, resume: bool = False, overwrite: bool = False,
                 format: str | None = None, id_field: str | None = None, threshold: float | None = None,
                 at_least_one: bool = False, top_k: int = 0) -> JobSummary:
    """Predict every record of `input_path` (CSV, TSV, JSONL, fastText or plain text) into
    `output_path` (`format`, or from the name: .csv, .jsonl, .txt): one row per input record,
    in order, with the source line, the text (or the `id_field` value), the gold label when the
    input has labels, the predicted label, one probability per class and an `error` (see
    `rows.py`). A record that cannot be predicted (malformed, no text field, empty text) gets a
    row with its error and no label. `data.on_bad_lines` is not used: a job accounts for every
    record. A multi-label model's rows hold the labels at or above its thresholds (`threshold`:
    one for all instead; `at_least_one`: the top label when none is); `top_k` adds the k most
    probable labels to JSON lines.

    `model_id` names the model in the sidecar (default: `model_fingerprint(clf)`); `resume`
    continues an interrupted job with the same input, model and settings; an existing
    `output_path` is replaced only with `overwrite=True`.
    """
    data = data or DataConfig()
    output = Path(output_path)
    fmt = output_format(output, format)  # a bad name fails before anything is locked
    if chunk_size < 1 or batch_size < 1:
        raise ConfigError(f"chunk_size and batch_size must be at least 1; got {chunk_size} and "
                          f"{batch_size}.")
    with exclusive(output, "--output"):  # from the first check to the rename
        _check_output(output, resume, overwrite)
        job = {"version": SIDECAR_VERSION, "input": input_identity(input_path),
               "model": model_id or model_fingerprint(clf), "labels": list(clf.classes_),
               "reader": {"format": data.format, "text_field": data.text_field,
                          "label_field": data.label_field, "encoding": data.encoding,
                          "id_field": id_field}, "output_format": fmt}
        partial, sidecar = partial_paths(output)
        if resume:  # the settings first: what differs says more than the read's first error
            _resume_point(output, partial, sidecar, job)
        report = ReadReport()
        examples, cols = read_for_prediction(clf, input_path, data, id_field, report, threshold=threshold,
                                             at_least_one=at_least_one, top_k=top_k)
        job["columns"] = cols.record()
        if resume:
            start = _resume_point(output, partial, sidecar, job)
        else:
            with disk_space(partial):
                start = _start(partial, sidecar, job, header(fmt, cols))
        chunks = _chunks(itertools.islice(examples, start.rows, None), _chunk_rows(clf, chunk_size))
        with disk_space(partial, "the rows written so far are kept: pass --resume to go on"):
            done = _append(partial, sidecar, job, start,
                           (render(clf, chunk, fmt, cols, batch_size) for chunk in chunks))
        _finish(partial, sidecar, output, overwrite)
    return JobSummary(done.rows, output, report, done.errors, start.rows)


def predict_stream(clf: TextClassifier, examples: Iterable[Example], fmt: str, cols: Columns, *,
                   chunk_size: int = 4096, batch_size: int = 256) -> Iterator[str]:
    """The rows of `examples` as text, chunk by chunk (header first), for standard output or a
    small file; no partial file, no resume."""
    yield header(fmt, cols)
    for chunk in _chunks(examples, _chunk_rows(clf, chunk_size)):
        yield render(clf, chunk, fmt, cols, batch_size)[0]


def read_for_prediction(clf: TextClassifier, input_path: str | os.PathLike, data: DataConfig,
                        id_field: str | None, report: ReadReport, **decisions: Any
                        ) -> tuple[Iterator[Example], Columns]:
    """The records of `input_path`, every one (bad ones as error examples), and the columns of
    their rows: whether the input has labels is seen from its first record. `decisions`
    (threshold, at_least_one, top_k) go to `rows.columns_for`."""
    examples = read_data(input_path, data, labelled=False, on_bad_lines="report", report=report,
                         id_field=id_field)
    names = parse_label_names(clf.config.data.label_names)
    if names:  # gold labels as the model names them
        examples = (replace(ex, label=rename_labels([ex.label], names)[0]) for ex in examples)
    first = next(examples, None)
    gold = report.label_field is not None or (first is not None and first.label is not None)
    cols = columns_for(clf, ident="id" if id_field else "text", gold=gold, **decisions)
    return itertools.chain([] if first is None else [first], examples), cols


def _chunk_rows(clf: TextClassifier, chunk_size: int) -> int:
    """A chunk's probabilities stay under _CHUNK_SCORES floats however many labels there are."""
    return max(1, min(chunk_size, _CHUNK_SCORES // len(clf.classes_)))


def _append(partial: Path, sidecar: Path, job: dict[str, Any], done: _Progress,
            chunks: Iterable[tuple[str, int, int]]) -> _Progress:
    """Write the rendered chunks (text, rows, errors) after the last complete row of `partial`,
    each flushed to disk before the sidecar counts it."""
    with open(partial, "r+b") as fh:
        fh.truncate(done.bytes)  # drops a row half written when the last run was killed
        fh.seek(done.bytes)
        for text, n_rows, n_errors in chunks:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
            done = _Progress(done.rows + n_rows, done.errors + n_errors, fh.tell())
            _write_sidecar(sidecar, job, done)
    return done


def _check_output(output: Path, resume: bool, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        finished = " (a finished job: nothing to resume)" if resume else ""
        raise DataError(f"{output} already exists{finished}; pass --overwrite to replace it or "
                        "choose another --output.")


def _start(partial: Path, sidecar: Path, job: dict[str, Any], header: str) -> _Progress:
    """Begin a new partial file (replacing any old one) with the header row."""
    sidecar.unlink(missing_ok=True)  # first, so that it never describes the new file wrongly
    with open(partial, "wb") as fh:
        fh.write(header.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
        done = _Progress(bytes=fh.tell())
    _write_sidecar(sidecar, job, done)
    return done


def _write_sidecar(sidecar: Path, job: dict[str, Any], done: _Progress) -> None:
    atomic_write_text(sidecar, json.dumps({**job, **asdict(done)}, indent=1) + "\n")


def _resume_point(output: Path, partial: Path, sidecar: Path, job: dict[str, Any]) -> _Progress:
    """The progress recorded for `partial`, once the sidecar is shown to match this run."""
    start_over = "Run without --resume to start over."
    if not sidecar.exists() or not partial.exists():
        missing = sidecar if not sidecar.exists() else partial
        raise DataError(f"Nothing to resume for {output}: {missing} is missing. {start_over}")
    try:
        saved = json.loads(sidecar.read_text(encoding="utf-8"))
        done = _Progress(int(saved["rows"]), int(saved["errors"]), int(saved["bytes"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"Cannot resume {output}: {sidecar} is unreadable ({exc}). {start_over}") from None
    diffs = _differences(saved, job)
    if diffs:
        raise DataError(f"Cannot resume {output}: the partial results in {partial} were made "
                        f"with different inputs. {'; '.join(diffs)}. {start_over}")
    size = partial.stat().st_size
    if size < done.bytes:
        raise DataError(f"Cannot resume {output}: {partial} has {size} bytes but {sidecar} "
                        f"records {done.bytes} written; the file was changed. {start_over}")
    return done


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """'input size: partial run had 120, this run has 133' for every setting that differs."""
    diffs = []
    for key, now in current.items():
        then = saved.get(key) if isinstance(saved, dict) else None
        name = f"{prefix}{key}"
        if isinstance(now, dict) and isinstance(then, dict):
            diffs += _differences(then, now, name + " ")
        elif then != now:
            diffs.append(f"{name}: partial run had {then!r}, this run has {now!r}")
    return diffs


def _finish(partial: Path, sidecar: Path, output: Path, overwrite: bool) -> None:
    _check_output(output, False, overwrite)  # another process may have written it meanwhile
    os.replace(partial, output)  # the rows were fsynced chunk by chunk
    fsync_dir(output.parent)
    sidecar.unlink(missing_ok=True)
    fsync_dir(output.parent)


def _chunks(items: Iterable[Example], size: int) -> Iterator[list[Example]]:
    """Lists of at most `size` examples and, past the first, at most `_CHUNK_CHARS` characters
    of text: a few enormous records do not pile up in memory."""
    chunk: list[Example] = []
    chars = 0
    for ex in items:
        if chunk and (len(chunk) >= size or chars + len(ex.text) > _CHUNK_CHARS):
            yield chunk
            chunk, chars = [], 0
        chunk.append(ex)
        chars += len(ex.text)
    if chunk:
        yield chunk
