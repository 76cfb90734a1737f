"""GloVe, word2vec and fastText `.vec` text files: the fast path of `vectors.py`.

The file is streamed once and numbers are parsed only on the lines whose word the vocabulary
needs, so a 400k x 300 GloVe file costs a scan, not a full parse.
"""
from __future__ import annotations

import gzip
import io
import itertools
import logging
import zlib
from array import array
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from ..data.vocab import UNK_ID, Vocab
from ..errors import VectorsError, where

logger = logging.getLogger(__name__)

READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError
Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # matrix, exact, lowercase, subword


def from_text(path: Path, fmt: str, vocab: Vocab, expected_dim: int | None,
              encoding: str) -> Rows:
    """The vocabulary's rows from a text vectors file: (matrix, exact, lowercase-only, subword)."""
    n = len(vocab)
    exact_ids: dict[bytes, int] = {}
    lower_ids: dict[bytes, list[int]] = {}
    for i, word in enumerate(vocab.itos[UNK_ID:], UNK_ID):
        exact_ids[word.encode(encoding)] = i
        if i != UNK_ID and word.lower() != word:
            lower_ids.setdefault(word.lower().encode(encoding), []).append(i)
    needed = exact_ids.keys() | lower_ids.keys()
    exact, lower = np.zeros(n, bool), np.zeros(n, bool)
    hashes = array("q")
    with reading(path) as fh:
        header_count, dim, lines = text_layout(path, fh, fmt)
        check_dim(path, dim, expected_dim)
        matrix = np.zeros((n, dim), np.float32)
        for lineno, word, body, pos in scan(path, lines, dim, hashes):
            if word not in needed:
                continue
            i = exact_ids.get(word)
            takers = [j for j in lower_ids.get(word, ()) if not (exact[j] or lower[j])]
            if (i is None or exact[i]) and not takers:
                continue  # a duplicate
            vec = _parse_numbers(body[pos + 1:], dim, path, lineno)
            if i is not None and not exact[i]:
                matrix[i], exact[i] = vec, True
            matrix[takers], lower[takers] = vec, True
    _check_counts(path, header_count, hashes)
    return matrix, exact, lower & ~exact, np.zeros(n, bool)


def text_layout(path: Path, fh: IO[bytes],
               fmt: str) -> tuple[int | None, int, Iterator[tuple[int, bytes]]]:
    """Read the header, if any, and the first vector: (header count, dim, numbered lines)."""
    line = fh.readline()
    header = header_line(line)
    if header is None and fmt != "glove":
        raise VectorsError(f"{where(path, 1)}: a {fmt} file starts with a '<count> <dim>' "
                           f"line, found {line[:50]!r}. Use format glove if it has no header.")
    start = 1 if header is None else 2
    if header is not None:
        line = fh.readline()
    dim = _infer_dim(line.split(), path, start)
    if dim == 0:
        raise VectorsError(f"{where(path, start)}: expected a word and numbers, "
                           f"found {line[:50]!r}.")
    if header is not None and dim != header[1]:
        raise VectorsError(f"{where(path, 1)}: the header announces {header[1]} dimensions "
                           f"but line 2 has {dim} numbers.")
    return header and header[0], dim, enumerate(itertools.chain([line], fh), start)


def scan(path: Path, lines: Iterator[tuple[int, bytes]], dim: int,
         hashes: array | None = None) -> Iterator[tuple[int, bytes, bytes, int]]:
    """Yield (line number, word, stripped line, index of the space before the numbers) for each
    non-blank line, checking that each has at least `dim` + 1 fields. Fields are separated by
    single spaces (as gensim requires); the numbers are the last `dim` fields, so words may
    contain spaces (glove.840B has ". . ."), but no part of a word after its first may be a
    number: that is a line with too many numbers. Only C-level byte methods run on every line;
    the rare lines with more spaces than `dim` pay for that check."""
    for lineno, line in lines:
        body = line.rstrip()
        spaces = body.count(b" ")
        if spaces < dim:
            if not body:
                continue
            fields = len(body.split())
            hint = " Separate fields by single spaces." if fields > dim else ""
            raise VectorsError(f"{where(path, lineno)}: expected a word and {dim} numbers, "
                               f"found {fields} fields.{hint}")
        pos = body.find(b" ")
        if spaces > dim:  # a word with spaces
            for _ in range(spaces - dim):
                pos = body.find(b" ", pos + 1)
            _check_spaced_word(path, lineno, body, pos, dim)
        word = body[:pos]
        if hashes is not None:
            hashes.append(hash(word))
        yield lineno, word, body, pos


def _check_spaced_word(path: Path, lineno: int, body: bytes, pos: int, dim: int) -> None:
    parts = body[:pos].split(b" ")
    if not any(_is_number(p) for p in parts[1:]):
        return
    n = _infer_dim(body.split(b" "))
    if n > dim:
        word = b" ".join(body.split(b" ")[:-n])
        raise VectorsError(f"{where(path, lineno)}: expected a word and {dim} numbers, found "
                           f"{n} numbers after {_show(word)}.")
    raise VectorsError(f"{where(path, lineno)}: the word {_show(body[:pos])} contains a number "
                       "after its first part; words may contain spaces but not numbers after "
                       "their first part.")


def _parse_numbers(text: bytes, dim: int, path: Path, lineno: int) -> np.ndarray:
    """Parse as gensim does: decimal -> float64 (correctly rounded) -> float32; finite only,
    and plain decimal or exponent notation (numpy, like float(), also takes "1_0" as 10)."""
    try:
        vec = np.array(text.split(), dtype=np.float64)
    except ValueError as exc:
        raise VectorsError(f"{where(path, lineno)}: {exc}.") from None
    if b"_" in text:
        _reject_underscore(path, lineno, text.split())
    if len(vec) != dim or not np.isfinite(vec).all():
        raise VectorsError(f"{where(path, lineno)}: expected {dim} finite numbers after the word, "
                           f"found {text[:50].decode('utf-8', 'replace')!r}...")
    return vec.astype(np.float32)


def _check_counts(path: Path, header_count: int | None, hashes: array) -> None:
    if header_count is not None and header_count != len(hashes):
        raise VectorsError(f"{path}: the header announces {header_count:,} vectors but the file "
                           f"has {len(hashes):,}. Fix the first line or the file.")
    # Hashes, not words, keep memory flat; a 64-bit collision among 1e6 words has p ~ 3e-8.
    ordered = np.sort(np.frombuffer(hashes, dtype=np.int64))
    duplicates = int(np.count_nonzero(ordered[1:] == ordered[:-1]))
    if duplicates:
        logger.warning("%s has %d duplicate words; the first of each is used.", path, duplicates)


def header_line(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


def _infer_dim(fields: list[bytes], path: Path | None = None, lineno: int = 1) -> int:
    """The number of trailing fields that are numbers, leaving at least one for the word.
    With `path`, numbers written with underscores are an error there."""
    dim = 0
    for f in reversed(fields[1:]):
        if not _is_number(f):
            break
        dim += 1
    if path is not None and dim:
        _reject_underscore(path, lineno, fields[-dim:])
    return dim


def _is_number(field: bytes) -> bool:
    """Whether a field reads as a number (nan, inf and 1_0 included: they are numbers in the
    wrong spelling, not parts of words)."""
    try:
        float(field)
    except ValueError:
        return False
    return True


def _reject_underscore(path: Path, lineno: int, fields: list[bytes]) -> None:
    bad = next((f for f in fields if b"_" in f), None)
    if bad is not None:
        raise VectorsError(f"{where(path, lineno)}: {_show(bad)} is not a plain decimal number; "
                           "numbers in vectors files are written like 0.25, -1.5e-03 (no "
                           "underscores).")


def _show(text: bytes) -> str:
    return repr(text[:50].decode("utf-8", "replace"))


@contextmanager
def reading(path: Path) -> Iterator[IO[bytes]]:
    """Open a vectors file (gunzipped if named .gz); any read error becomes a VectorsError."""
    try:
        # 1 MiB buffers: the default 8 KiB ones triple the time of a scan.
        if path.name.endswith(".gz"):
            fh: IO[bytes] = io.BufferedReader(gzip.open(path), 1 << 20)
        else:
            fh = open(path, "rb", 1 << 20)
        with fh:
            yield fh
    except FileNotFoundError:
        raise VectorsError(f"Vectors file {path} does not exist.") from None
    except READ_ERRORS as exc:
        raise VectorsError(f"Cannot read {path} (truncated or corrupt file?): {exc}") from exc


def check_dim(path: Path, dim: int, expected_dim: int | None) -> None:
    if expected_dim is not None and dim != expected_dim:
        raise VectorsError(f"Vectors in {path.name} have {dim} dimensions but the model expects "
                           f"{expected_dim} (model.embedding_dim).")
