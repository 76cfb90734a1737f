"""Checks on word2vec and fastText binary files before gensim reads them.

gensim trusts the counts in a binary file: it allocates what the header announces (a
MemoryError, or gigabytes, for a damaged 1 KB file) and loops forever when a fastText
vocabulary ends early. These checks read the layout with bounded reads and compare every
count with the size of the file, so a damaged file fails in milliseconds with one line.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import IO

from ..errors import VectorsError
from .textformat import header_line, reading

FASTTEXT_MAGIC = 793712314
MAX_DIM = 100_000  # published vectors have 25..4,096; more is a damaged header
# Deflate cannot expand more than 1032:1 (a 258-byte match costs at least 2 bits), so a .gz
# file of n bytes holds at most 1032 * n bytes. That bounds what a header may announce
# without decompressing the whole file; gzip's own checks catch a truncated stream later.
GZIP_MAX_RATIO = 1032
_CHUNK = 1 << 16
_NEW_ARGS = struct.Struct("=12id")  # dim ws epoch minCount neg wordNgrams loss model bucket
_OLD_ARGS = struct.Struct("=10id")  # minn maxn lrUpdateRate t; the old layout lacks dim, ws
_DICT = struct.Struct("=3iq")  # size nwords nlabels ntokens, then pruneidx_size q (new layout)
_ENTRY_TAIL = struct.Struct("=qb")  # after each NUL-terminated word: count, type (0 = word)
_FLAG = struct.Struct("=?")  # "quantized", before each matrix (new layout)
_SHAPE = struct.Struct("=2q")  # rows, cols of a matrix


def check_word2vec_bin(path: Path) -> None:
    """Check the '<count> <dim>' header of a word2vec binary file against the file's size:
    each vector takes at least a 1-byte word, a space and dim float32 values."""
    with reading(path) as fh:
        line = fh.readline(80)
    header = header_line(line) if line.endswith(b"\n") else None
    if header is None:
        raise VectorsError(f"{path}: a word2vec binary file starts with a '<count> <dim>' "
                           f"line, found {line[:40]!r}; not a word2vec binary file.")
    count, dim = header
    if not (count > 0 and 0 < dim <= MAX_DIM):
        raise VectorsError(f"{path}: the header announces {count:,} vectors of {dim:,} "
                           f"dimensions; both must be positive and dimensions at most "
                           f"{MAX_DIM:,}. Corrupt or not a word2vec binary file.")
    size, limit = _size_limit(path)
    if count * (4 * dim + 2) > limit - len(line):
        held = f"{size:,} bytes" if limit == size else (
            f"{size:,} compressed bytes (at most {_human(limit)} uncompressed)")
        raise VectorsError(f"{path}: the header announces {count:,} vectors of {dim:,} "
                           f"dimensions ({_human(4 * count * dim)}) but the file has {held}; "
                           "truncated or not a word2vec binary file.")


def check_fasttext_bin(path: Path) -> None:
    """Walk a fastText `.bin` as gensim's `_fasttext_bin.load` reads it: magic and version,
    the training arguments, the vocabulary, the pruned index, then the input matrix, whose
    shape must be (nwords + bucket, dim) and fit in the rest of the file; uncompressed files
    also have the shape of their output matrix checked against the file's end."""
    size, limit = _size_limit(path)
    with reading(path) as fh:
        cur = _Cursor(fh, path)
        magic, _ = cur.unpack(struct.Struct("=2i"), "its header")  # magic, version
        new = magic == FASTTEXT_MAGIC  # else the layout before 2017: it starts with dim, ws
        args = cur.unpack(_NEW_ARGS if new else _OLD_ARGS, "its header")
        dim, bucket, minn, maxn = (args[0], *args[8:11]) if new else (magic, *args[6:9])
        if not (0 < dim <= MAX_DIM and bucket >= 0 and minn >= 0 and maxn >= 0):
            raise VectorsError(f"{path}: the header announces {dim:,} dimensions, {bucket:,} "
                               f"buckets and subwords of {minn}..{maxn} characters; corrupt or "
                               "not a fastText .bin file.")
        nwords = _check_vocabulary(cur, new, limit)
        if new and cur.unpack(_FLAG, "its matrix header")[0]:
            raise VectorsError(f"{path}: a quantized fastText model (.ftz), which gensim cannot "
                               "read; use the unquantized .bin or the .vec file.")
        rows, cols = cur.unpack(_SHAPE, "its matrix header")
        if (rows, cols) != (nwords + bucket, dim):
            raise VectorsError(f"{path}: the input matrix is {rows:,} x {cols:,} but the header "
                               f"announces {nwords:,} words + {bucket:,} buckets x {dim} "
                               "dimensions; corrupt file.")
        _check_fits(cur, "input", 4 * rows * cols, limit)
        if limit == size:  # not compressed, so skipping the input matrix is a seek
            cur.jump(cur.offset + 4 * rows * cols)
            _check_output_matrix(cur, new, dim, size)


def _check_output_matrix(cur: _Cursor, new: bool, dim: int, size: int) -> None:
    if new and cur.unpack(_FLAG, "its output matrix header")[0]:
        return  # quantized: another layout, and gensim does not read this matrix
    rows, cols = cur.unpack(_SHAPE, "its output matrix header")
    if rows < 0 or cols != dim:
        raise VectorsError(f"{cur.path}: the output matrix is {rows:,} x {cols:,}, expected "
                           f"{dim} columns; corrupt file.")
    _check_fits(cur, "output", 4 * rows * cols, size)


def _check_fits(cur: _Cursor, which: str, need: int, limit: int) -> None:
    if need > limit - cur.offset:
        raise VectorsError(f"{cur.path}: truncated inside its vectors: the {which} matrix needs "
                           f"{_human(need)} but at most {_human(limit - cur.offset)} remain.")


def _check_vocabulary(cur: _Cursor, new: bool, limit: int) -> int:
    """Skip the vocabulary and the pruned index; the number of words."""
    path = cur.path
    size, nwords, nlabels, _ = cur.unpack(_DICT, "its vocabulary header")
    prune = cur.unpack(struct.Struct("=q"), "its vocabulary header")[0] if new else 0
    if nlabels > 0:
        raise VectorsError(f"{path}: a supervised fastText model ({nlabels:,} labels), which "
                           "gensim cannot read; use a model trained with skipgram or cbow.")
    if not (0 < size == nwords and nlabels == 0) or prune < -1:
        raise VectorsError(f"{path}: the vocabulary announces {size:,} entries, {nwords:,} "
                           f"words and {prune:,} pruned ids; corrupt or not a fastText .bin "
                           "file.")
    rest = limit - cur.offset
    if size * (1 + _ENTRY_TAIL.size) + 8 * max(prune, 0) > rest:  # an entry takes >= 10 bytes
        raise VectorsError(f"{path}: the vocabulary announces {size:,} words (at least "
                           f"{_human(10 * size)}) but at most {_human(rest)} follow; "
                           "truncated or corrupt.")
    for k in range(size):
        if not cur.skip_past(b"\0") or (tail := cur.take(_ENTRY_TAIL.size)) is None:
            raise VectorsError(f"{path}: truncated inside its vocabulary (entry {k + 1:,} of "
                               f"{size:,}); re-download or re-save the file.")
        if _ENTRY_TAIL.unpack(tail)[1] != 0:
            raise VectorsError(f"{path}: corrupt vocabulary (entry {k + 1:,} of {size:,} is not "
                               "a word entry).")
    if not cur.skip(8 * max(prune, 0)):
        raise VectorsError(f"{path}: truncated inside its pruned index ({prune:,} pairs).")
    return nwords


class _Cursor:
    """Bounded reads over a stream: a buffer of at most about one chunk plus the bytes asked
    for, and the absolute offset for size checks."""

    def __init__(self, fh: IO[bytes], path: Path) -> None:
        self.fh, self.path, self.buf, self.pos, self.base = fh, path, b"", 0, 0

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self) -> bool:
        chunk = self.fh.read(_CHUNK)
        self.base += self.pos
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return bool(chunk)

    def take(self, n: int) -> bytes | None:
        """The next `n` bytes, or None at the end of the file."""
        while len(self.buf) - self.pos < n:
            if not self._fill():
                return None
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def jump(self, offset: int) -> None:
        self.fh.seek(offset)
        self.buf, self.pos, self.base = b"", 0, offset

    def skip(self, n: int) -> bool:
        while n > 0:
            step = min(n, _CHUNK)
            if self.take(step) is None:
                return False
            n -= step
        return True

    def skip_past(self, marker: bytes) -> bool:
        """Move past the next `marker` byte; False if the file ends first."""
        while (i := self.buf.find(marker, self.pos)) < 0:
            self.pos = len(self.buf)  # the bytes before the marker are not kept
            if not self._fill():
                return False
        self.pos = i + 1
        return True

    def unpack(self, fmt: struct.Struct, part: str) -> tuple:
        data = self.take(fmt.size)
        if data is None:
            raise VectorsError(f"{self.path}: truncated inside {part} (at byte {self.offset:,}); "
                               "not a fastText .bin file or damaged.")
        return fmt.unpack(data)


def _size_limit(path: Path) -> tuple[int, int]:
    """(bytes on disk, most bytes the file can hold once decompressed)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VectorsError(f"Vectors file {path} does not exist.") from None
    return size, size * GZIP_MAX_RATIO if path.name.endswith(".gz") else size


def _human(n: float) -> str:
    """A byte count for messages: "1,024 bytes", "3.6 GB", "400 TB"."""
    if n < 1000:
        return f"{n:,.0f} bytes"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 1000 or unit == "PB":
            break
    return f"{n:,.0f} {unit}" if n >= 100 else f"{n:.3g} {unit}"
