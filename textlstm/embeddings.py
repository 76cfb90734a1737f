"""Pretrained word vectors for a `Vocab`: GloVe, word2vec (text and binary) and fastText.

Text formats take a fast path: the file is streamed once and numbers are parsed only on the
lines whose word the vocabulary needs, so a 400k x 300 GloVe file costs a scan, not a full
parse. Binary formats go through gensim (fastText `.bin` also gives subword vectors).

>>> vectors = load_vectors("glove.6B.100d.txt", vocab, expected_dim=100)  # doctest: +SKIP
>>> vectors.matrix.shape, vectors.coverage.summary()                      # doctest: +SKIP
((20002, 100), 'vectors cover 96.1% of 20,000 word types and 99.2% of 1.2M tokens; ...')
"""
from __future__ import annotations

import gzip
import io
import itertools
import logging
import os
import zlib
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping

import numpy as np

from .atomic import atomic_path
from .errors import VectorsError, where
from .vocab import PAD_ID, UNK_ID, Vocab

logger = logging.getLogger(__name__)

VECTOR_FORMATS = ("glove", "word2vec", "word2vec-bin", "fasttext-vec", "fasttext-bin")
TEXT_FORMATS = ("glove", "word2vec", "fasttext-vec")
_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError
_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # matrix, exact, lowercase, subword


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
    with _reading(path) as fh:
        if name.endswith(".bin"):
            return "fasttext-bin" if fh.read(4) == _FASTTEXT_MAGIC else "word2vec-bin"
        return "word2vec" if _header(fh.readline()) else "glove"


def load_vectors(path: str | os.PathLike, vocab: Vocab, *, format: str = "auto",
                 expected_dim: int | None = None, oov_init: str = "random",
                 counts: Mapping[str, int] | None = None, seed: int = 0,
                 encoding: str = "utf-8") -> Vectors:
    """Build the embedding matrix of `vocab` from a vectors file.

    A word takes the vector of the same word, else of its lowercase form ("Paris" takes "paris"
    when "Paris" is absent); an exact match wins wherever it is in the file, and the first of
    duplicate words wins. Values equal gensim's float32 values exactly."""
    path = Path(path)
    fmt = _resolve_format(path, format)
    if oov_init not in ("random", "zeros"):
        raise VectorsError(f"oov_init={oov_init!r} is not allowed. Allowed: random, zeros.")
    load = _from_text if fmt in TEXT_FORMATS else _from_gensim
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
    path = Path(path)
    fmt = _resolve_format(path, format)
    if fmt not in TEXT_FORMATS:
        return list(dict.fromkeys(_gensim_load(path, fmt, encoding).index_to_key))
    words: dict[str, None] = {}
    with _reading(path) as fh:
        _, dim, lines = _text_layout(path, fh, fmt)
        for lineno, word, _, _ in _scan(path, lines, dim):
            try:
                words.setdefault(word.decode(encoding))
            except UnicodeDecodeError as exc:
                raise VectorsError(f"{where(path, lineno)}: the word is not {encoding} ({exc}). "
                                   "Pass the file's encoding.") from None
    return list(words)


# ---------------------------------------------------------------- text formats: the fast path

def _from_text(path: Path, fmt: str, vocab: Vocab, expected_dim: int | None,
               encoding: str) -> _Rows:
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
    with _reading(path) as fh:
        header_count, dim, lines = _text_layout(path, fh, fmt)
        _check_dim(path, dim, expected_dim)
        matrix = np.zeros((n, dim), np.float32)
        for lineno, word, body, pos in _scan(path, lines, dim, hashes):
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


def _text_layout(path: Path, fh: IO[bytes],
                 fmt: str) -> tuple[int | None, int, Iterator[tuple[int, bytes]]]:
    """Read the header, if any, and the first vector: (header count, dim, numbered lines)."""
    line = fh.readline()
    header = _header(line)
    if header is None and fmt != "glove":
        raise VectorsError(f"{where(path, 1)}: a {fmt} file starts with a '<count> <dim>' "
                           f"line, found {line[:50]!r}. Use format glove if it has no header.")
    start = 1 if header is None else 2
    if header is not None:
        line = fh.readline()
    dim = _infer_dim(line.split())
    if dim == 0:
        raise VectorsError(f"{where(path, start)}: expected a word and numbers, "
                           f"found {line[:50]!r}.")
    if header is not None and dim != header[1]:
        raise VectorsError(f"{where(path, 1)}: the header announces {header[1]} dimensions "
                           f"but line 2 has {dim} numbers.")
    return header and header[0], dim, enumerate(itertools.chain([line], fh), start)


def _scan(path: Path, lines: Iterator[tuple[int, bytes]], dim: int,
          hashes: array | None = None) -> Iterator[tuple[int, bytes, bytes, int]]:
    """Yield (line number, word, stripped line, index of the space before the numbers) for each
    non-blank line, checking that each has at least `dim` + 1 fields. Fields are separated by
    single spaces (as gensim requires); the numbers are the last `dim` fields, so words may
    contain spaces. Only C-level byte methods run on every line."""
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
        for _ in range(spaces - dim):  # a word with spaces
            pos = body.find(b" ", pos + 1)
        word = body[:pos]
        if hashes is not None:
            hashes.append(hash(word))
        yield lineno, word, body, pos


def _parse_numbers(text: bytes, dim: int, path: Path, lineno: int) -> np.ndarray:
    """Parse as gensim does: decimal -> float64 (correctly rounded) -> float32; finite only."""
    try:
        vec = np.array(text.split(), dtype=np.float64)
    except ValueError as exc:
        raise VectorsError(f"{where(path, lineno)}: {exc}.") from None
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


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


def _infer_dim(fields: list[bytes]) -> int:
    """The number of trailing fields that are numbers, leaving at least one for the word."""
    dim = 0
    for f in reversed(fields[1:]):
        try:
            float(f)
        except ValueError:
            break
        dim += 1
    return dim


# ---------------------------------------------------------------- binary formats, via gensim

def _from_gensim(path: Path, fmt: str, vocab: Vocab, expected_dim: int | None,
                 encoding: str) -> _Rows:
    kv = _gensim_load(path, fmt, encoding)
    _check_dim(path, kv.vector_size, expected_dim)
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
    try:
        if fmt == "fasttext-bin":
            return load_facebook_vectors(str(path), encoding=encoding)
        return KeyedVectors.load_word2vec_format(str(path), binary=True, encoding=encoding)
    except (*_READ_ERRORS, ValueError, AssertionError, UnicodeDecodeError) as exc:
        raise VectorsError(f"Cannot read {path} as {fmt} vectors: {exc}") from exc


# ---------------------------------------------------------------- shared helpers

def _resolve_format(path: Path, format: str) -> str:
    if format == "auto":
        return detect_vectors_format(path)
    if format not in VECTOR_FORMATS:
        raise VectorsError(f"Unknown vectors format {format!r}. "
                           f"Formats: auto, {', '.join(VECTOR_FORMATS)}.")
    return format


@contextmanager
def _reading(path: Path) -> Iterator[IO[bytes]]:
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
    except _READ_ERRORS as exc:
        raise VectorsError(f"Cannot read {path} (truncated or corrupt file?): {exc}") from exc


def _check_dim(path: Path, dim: int, expected_dim: int | None) -> None:
    if expected_dim is not None and dim != expected_dim:
        raise VectorsError(f"Vectors in {path.name} have {dim} dimensions but the model expects "
                           f"{expected_dim} (model.embedding_dim).")


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


# ---------------------------------------------------------------- training our own vectors

def pretrain_word2vec(token_lists: Iterable[list[str]], out_path: str | os.PathLike, *,
                      vector_size: int = 100, window: int = 5, min_count: int = 5,
                      epochs: int = 5, workers: int = 2, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Train gensim word2vec on a re-iterable corpus of token lists; save it atomically in
    word2vec text format (gzipped when `out_path` ends with .gz). `progress(epoch, epochs)` is
    called after each epoch. Runs repeat exactly only with `workers=1`."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    if iter(token_lists) is token_lists:
        raise VectorsError("pretrain_word2vec needs a re-iterable corpus (a list, or an object "
                           "whose __iter__ starts over), not a one-shot iterator.")

    class _Progress(CallbackAny2Vec):
        epoch = 0

        def on_epoch_end(self, model) -> None:
            self.epoch += 1
            if progress is not None:
                progress(self.epoch, epochs)

    try:
        model = Word2Vec(token_lists, vector_size=vector_size, window=window, min_count=min_count,
                         epochs=epochs, workers=workers, seed=seed, callbacks=[_Progress()])
    except RuntimeError as exc:  # gensim: "you must first build vocabulary before training"
        raise VectorsError(f"Cannot train word2vec: no word occurs {min_count} times "
                           f"(min_count). Lower min_count or give more text. ({exc})") from None
    out, wv = Path(out_path), model.wv
    # Written here rather than by gensim's save_word2vec_format, which picks gzip from the file
    # name (the temporary's name does not end in .gz). Same format: `str` of each float32.
    opener = gzip.open if out.name.endswith(".gz") else open
    with atomic_path(out) as tmp, opener(tmp, "wb") as fh:
        fh.write(f"{len(wv)} {wv.vector_size}\n".encode())
        for word, vec in zip(wv.index_to_key, wv.vectors):
            fh.write(f"{word} {' '.join(map(str, vec))}\n".encode("utf-8"))
    return out
