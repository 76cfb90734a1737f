"""The vocabulary of a training run and the embedding matrix from its vector sources: one set of
rules for classifiers (`classifier.py`) and language-model pretraining (`training/lm.py`).

Several sources stack, as Flair's `StackedEmbeddings` do: each word's row is the concatenation
of its vector from each source, in the order given (say general GloVe, then word2vec trained on
your own domain with `textlstm pretrain`). Each source fills its own columns, with its own
out-of-vocabulary rows and its own coverage; the embedding dimension is the sum of theirs.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from typing import Sequence, Union

import numpy as np

from ..callbacks import Callback, say
from ..config import Config
from ..data.vocab import Vocab
from .vectors import Coverage, load_vectors, read_vector_words


# What the library takes as `vectors=`: a source (built-in name or path), several, or None to
# keep the settings' `embeddings.vectors`.
VectorsArg = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]


def with_sources(cfg: Config, vectors: VectorsArg) -> Config:
    """`cfg` with `vectors` as its vector sources (None: `cfg` as it is); `cfg` is not changed."""
    if vectors is None:
        return cfg
    names = [os.fspath(vectors)] if isinstance(vectors, (str, os.PathLike)) else [os.fspath(v) for v in vectors]
    return replace(cfg, embeddings=replace(cfg.embeddings, vectors=names))


@dataclass
class Source:
    """One source's share of the matrix: columns [start, stop)."""

    name: str
    start: int
    stop: int
    coverage: Coverage

    def record(self) -> dict:
        """What config.json keeps of it (`meta.vector_sources`)."""
        return {"source": self.name, "columns": [self.start, self.stop], "coverage": self.coverage.summary()}


@dataclass
class Embedded:
    vocab: Vocab
    matrix: np.ndarray | None  # float32 (len(vocab), sum of the sources' dimensions); None: no sources
    sources: list[Source]

    @property
    def dim(self) -> int | None:
        return None if self.matrix is None else int(self.matrix.shape[1])

    def settings(self, cfg: Config) -> Config:
        """`cfg` with `model.embedding_dim` as the sources make it (unchanged without sources)."""
        if self.dim is None or self.dim == cfg.model.embedding_dim:
            return cfg
        return replace(cfg, model=replace(cfg.model, embedding_dim=self.dim))

    def coverage_summary(self) -> str | None:
        """One coverage line per source (named, with its columns, when there are several)."""
        if len(self.sources) == 1:
            return self.sources[0].coverage.summary()
        return "; ".join(f"{s.name} (columns {s.start}-{s.stop - 1}): {s.coverage.summary()}"
                         for s in self.sources) or None


def vocab_and_vectors(cfg: Config, counts: Counter, callbacks: list[Callback] | None = None) -> Embedded:
    """The vocabulary of token `counts` under `cfg.vocab`, and the stacked embedding matrix of
    the sources in `cfg.embeddings.vectors` (none: no matrix). `cfg` is only read."""
    names = list(cfg.embeddings.vectors)
    extra: set[str] = set()
    in_files: list[str] = []
    if names and (cfg.vocab.add_vector_words or cfg.vocab.unseen_vector_words):
        for name in names:
            in_files += read_vector_words(name, format=cfg.embeddings.format)
        in_files = list(dict.fromkeys(in_files))
        if cfg.vocab.add_vector_words:
            known = set(in_files)
            extra = {w for w in counts if w in known or w.lower() in known}
    vocab = Vocab.build([], cfg.vocab.min_freq, cfg.vocab.max_size, extra, counter=counts)
    if cfg.vocab.unseen_vector_words and in_files:
        # Words the training data lacks keep their pretrained vectors, so a text at prediction
        # time that uses them is not reduced to <unk> (after the training words, in the files'
        # order: vector files list the frequent words first, so `max_size` keeps those).
        vocab = vocab.extended(in_files, cfg.vocab.max_size)
    vocab.case_fallback = cfg.vocab.case_fallback
    say(callbacks, f"vocabulary: {len(vocab):,} tokens ({len(counts):,} distinct in the training data)")
    blocks, sources, start = [], [], 0
    for k, name in enumerate(names):
        loaded = load_vectors(name, vocab, format=cfg.embeddings.format, oov_init=cfg.embeddings.oov_init,
                              counts=counts, seed=cfg.train.seed + k)
        blocks.append(loaded.matrix)
        sources.append(Source(name, start, start + loaded.dim, loaded.coverage))
        start += loaded.dim
        say(callbacks, (f"{name}: " if len(names) > 1 else "") + loaded.coverage.summary())
    matrix = blocks[0] if len(blocks) == 1 else np.hstack(blocks) if blocks else None
    return Embedded(vocab, matrix, sources)
