"""Pretrained word vectors for a `Vocab`: GloVe, word2vec (text and binary) and fastText.

Text formats take a fast path (`textformat.py`): the file is streamed once and numbers are
parsed only on the lines whose word the vocabulary needs. Training our own vectors is in
`word2vec.py`. Binary formats go through gensim (fastText `.bin` also gives subword vectors)
once `binformat.py` has checked their counts against the file's size.

>>> vectors = load_vectors("glove.6B.100d.txt", vocab, expected_dim=100)  # doctest: +SKIP
>>> vectors.matrix.shape, vectors.coverage.summary()                      # doctest: +SKIP
((20002, 100), 'vectors cover 96.1% of 20,000 word types and 99.2% of 1.2M tokens; ...')
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..data.vocab import PAD_ID, UNK_ID, Vocab
from ..errors import VectorsError, where
from .binformat import FASTTEXT_MAGIC, check_fasttext_bin, check_word2vec_bin
from .builtin import builtin, builtin_matrix, builtin_words
from .textformat import READ_ERRORS, Rows, check_dim, from_text, header_line, reading, scan, text_layout

logger = logging.getLogger(__name__)

VECTOR_FORMATS = ("glove", "word2vec", "word2vec-bin", "fasttext-vec", "fasttext-bin")
TEXT_FORMATS = ("glove", "word2vec", "fasttext-vec")
_FASTTEXT_MAGIC = FASTTEXT_MAGIC.to_bytes(4, "little")


@dataclass
class Coverage:
    """How much of a vocabulary (specials excluded) and of its corpus tokens have vectors.

    Tokens are those of vocabulary words (`counts` from the corpus; without counts every type
    counts once). fastText `.bin` words built from subwords only are not covered but counted
    in `subword_composed`."""

    types_covered: int
    types_total: int
    tokens_covered: int
    tokens_total: int
    lowercase_matches: int  # vocabulary words found only through their lowercase form
    top_missing: list[tuple[str, int]]  # the 20 most frequent uncovered words, with counts
    subword_composed: int = 0

    @property
    def type_share(self) -> float:
        return self.types_covered / self.types_total if self.types_total else 0.0

    @property
    def token_share(self) -> float:
        return self.tokens_covered / self.tokens_total if self.tokens_total else 0.0

    def summary(self) -> str:
        n = self.tokens_total
        tokens = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"
        text = (f"vectors cover {self.type_share:.1%} of {self.types_total:,} word types and "
                f"{self.token_share:.1%} of {tokens} tokens")
        if self.subword_composed:
            text += f"; {self.subword_composed:,} more built from subwords"
        if self.top_missing:
            text += "; most frequent missing: " + ", ".join(
                f"{w} ({c:,})" for w, c in self.top_missing[:5])
        return text


@dataclass
class Vectors:
    """An embedding matrix for a vocabulary: row i belongs to `vocab.itos[i]`.

    `found` marks rows that came from the file (fastText `.bin`: subword-built rows too). Other
    rows are N(0, per-dimension std of the found vectors), seeded, or zeros with
    oov_init="zeros"; `<unk>` takes the mean of the found vectors instead (zeros with "zeros")
    unless the file has `<unk>`. `<pad>` is always zeros."""

    matrix: np.ndarray  # float32 (len(vocab), dim)
    dim: int
    coverage: Coverage
    found: np.ndarray = field(repr=False)  # bool (len(vocab),)


def detect_vectors_format(path: str | os.PathLike) -> str:
    """One of `VECTOR_FORMATS`, from the name (.bin, .vec, .gz) and the first bytes."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".vec"):
        return "fasttext-vec"
    with reading(path) as fh:
        if name.endswith(".bin"):
            return "fasttext-bin" if fh.read(4) == _FASTTEXT_MAGIC else "word2vec-bin"
        return "word2vec" if header_line(fh.readline()) else "glove"


def load_vectors(path: str | os.PathLike, vocab: Vocab, *, format: str = "auto",
                 expected_dim: int | None = None, oov_init: str = "random",
                 counts: Mapping[str, int] | None = None, seed: int = 0,
                 encoding: str = "utf-8") -> Vectors:
    """Build the embedding matrix of `vocab` from a vectors file.

    A word takes the vector of the same word, else of its lowercase form ("Paris" takes "paris"
    when "Paris" is absent); an exact match wins wherever it is in the file, and the first of
    duplicate words wins. Values equal gensim's float32 values exactly. `path` may also name a
    built-in source (`builtin.BUILTINS`, e.g. "glove-6b-50d"); `format` does not apply to it."""
    if oov_init not in ("random", "zeros"):
        raise VectorsError(f"oov_init={oov_init!r} is not allowed. Allowed: random, zeros.")
    src = builtin(path)
    if src is not None:
        check_dim(Path(src.name), src.dim, expected_dim)
        matrix, exact, lower, subword = builtin_matrix(src, vocab)
    else:
        path = Path(path)
        fmt = _resolve_format(path, format)
        load = from_text if fmt in TEXT_FORMATS else _from_gensim
        matrix, exact, lower, subword = load(path, fmt, vocab, expected_dim, encoding)
    found = exact | lower | subword
    found[PAD_ID] = False
    matrix[PAD_ID] = 0.0
    _init_missing(matrix, found, oov_init, seed)
    coverage = _coverage(vocab, exact | lower, lower, subword, counts)
    return Vectors(matrix=matrix, dim=matrix.shape[1], coverage=coverage, found=found)


def read_vector_words(path: str | os.PathLike, *, format: str = "auto",
                      encoding: str = "utf-8") -> list[str]:
    """The words of a vectors file in the file's order (each once), cheaply: text formats are
    scanned without parsing numbers. Used to keep rare corpus words that have a vector
    (`Vocab.build(extra_words=...)`) and to add words the training data lacks."""
    src = builtin(path)
    if src is not None:
        return builtin_words(src)
    path = Path(path)
    fmt = _resolve_format(path, format)
    if fmt not in TEXT_FORMATS:
        return list(dict.fromkeys(_gensim_load(path, fmt, encoding).index_to_key))
    words: dict[str, None] = {}
    with reading(path) as fh:
        _, dim, lines = text_layout(path, fh, fmt)
        for lineno, word, _, _ in scan(path, lines, dim):
            try:
                words.setdefault(word.decode(encoding))
            except UnicodeDecodeError as exc:
                raise VectorsError(f"{where(path, lineno)}: the word is not {encoding} ({exc}). "
                                   "Pass the file's encoding.") from None
    return list(words)


# ---------------------------------------------------------------- binary formats, via gensim

def _from_gensim(path: Path, fmt: str, vocab: Vocab, expected_dim: int | None,
                 encoding: str) -> Rows:
    kv = _gensim_load(path, fmt, encoding)
    check_dim(path, kv.vector_size, expected_dim)
    n, index = len(vocab), kv.key_to_index
    matrix = np.zeros((n, kv.vector_size), np.float32)
    exact, lower, subword = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for i, word in enumerate(vocab.itos[UNK_ID:], UNK_ID):
        key = word if word in index or i == UNK_ID else word.lower()
        if key in index:
            matrix[i] = kv.get_vector(key)
            exact[i], lower[i] = key == word, key != word
        elif fmt == "fasttext-bin" and i != UNK_ID:
            try:
                matrix[i], subword[i] = kv.get_vector(word), True
            except KeyError:  # no subwords either
                pass
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        word = vocab.itos[int(bad.argmax())]
        raise VectorsError(f"{path}: the vector of {word!r} is not finite.")
    return matrix, exact, lower, subword


def _gensim_load(path: Path, fmt: str, encoding: str):  # -> gensim KeyedVectors
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    if not path.is_file():
        raise VectorsError(f"Vectors file {path} does not exist.")
    # gensim trusts the file's counts (huge allocations, endless loops): check them first.
    (check_fasttext_bin if fmt == "fasttext-bin" else check_word2vec_bin)(path)
    try:
        if fmt == "fasttext-bin":
            return load_facebook_vectors(str(path), encoding=encoding)
        return KeyedVectors.load_word2vec_format(str(path), binary=True, encoding=encoding)
    except (*READ_ERRORS, ValueError, AssertionError, UnicodeDecodeError, struct.error) as exc:
        raise VectorsError(f"Cannot read {path} as {fmt} vectors: {exc}") from exc


# ---------------------------------------------------------------- shared helpers

def _resolve_format(path: Path, format: str) -> str:
    if format == "auto":
        return detect_vectors_format(path)
    if format not in VECTOR_FORMATS:
        raise VectorsError(f"Unknown vectors format {format!r}. "
                           f"Formats: auto, {', '.join(VECTOR_FORMATS)}.")
    return format


def _init_missing(matrix: np.ndarray, found: np.ndarray, oov_init: str, seed: int) -> None:
    """Fill rows without a vector in place (see `Vectors`)."""
    missing = ~found
    missing[PAD_ID] = False
    if oov_init == "zeros" or not missing.any():
        matrix[missing] = 0.0
        return
    if found.any():
        rows = matrix[found]
        mean, std = rows.mean(axis=0, dtype=np.float64), rows.std(axis=0, dtype=np.float64)
    else:
        logger.warning("No vocabulary word has a vector; random vectors use std 1/sqrt(dim).")
        mean, std = 0.0, np.full(matrix.shape[1], matrix.shape[1] ** -0.5)
    noise = np.random.default_rng(seed).standard_normal(
        (int(missing.sum()), matrix.shape[1]), dtype=np.float32)
    noise *= std
    matrix[missing] = noise
    if missing[UNK_ID]:
        matrix[UNK_ID] = mean


def _coverage(vocab: Vocab, covered: np.ndarray, lower_only: np.ndarray, subword: np.ndarray,
              counts: Mapping[str, int] | None) -> Coverage:
    words = vocab.itos[2:]
    freq = np.array([1 if counts is None else counts.get(w, 0) for w in words], dtype=np.int64)
    cov = covered[2:]
    missing = np.flatnonzero(~cov)
    top = missing[np.argsort(-freq[missing], kind="stable")[:20]]
    return Coverage(types_covered=int(cov.sum()), types_total=len(words),
                    tokens_covered=int(freq[cov].sum()), tokens_total=int(freq.sum()),
                    lowercase_matches=int(lower_only[2:].sum()),
                    top_missing=[(words[i], int(freq[i])) for i in top],
                    subword_composed=int(subword[2:].sum()))
