"""The vocabulary of a training run and the embedding matrix from pretrained vectors: one set of
rules for classifiers (`classifier.py`) and language-model pretraining (`training/lm.py`)."""
from __future__ import annotations

from collections import Counter

from ..callbacks import Callback, say
from ..config import Config
from ..data.vocab import Vocab
from .vectors import load_vectors, read_vector_words


def vocab_and_vectors(cfg: Config, counts: Counter, vectors, callbacks: list[Callback] | None = None):
    """The vocabulary of token `counts` under `cfg.vocab`, and the embedding matrix and coverage
    of `vectors` (None, None without them). `cfg` is only read: the caller records `vectors`
    in its own settings."""
    extra: set[str] = set()
    in_file: list[str] = []
    if vectors is not None:
        if cfg.vocab.add_vector_words or cfg.vocab.unseen_vector_words:
            in_file = read_vector_words(vectors, format=cfg.embeddings.format)
        known = set(in_file)
        if cfg.vocab.add_vector_words:
            extra = {w for w in counts if w in known or w.lower() in known}
    vocab = Vocab.build([], cfg.vocab.min_freq, cfg.vocab.max_size, extra, counter=counts)
    if cfg.vocab.unseen_vector_words and in_file:
        # Words the training data lacks keep their pretrained vectors, so a text at prediction
        # time that uses them is not reduced to <unk> (after the training words, in the file's
        # order: vector files list the frequent words first, so `max_size` keeps those).
        vocab = vocab.extended(in_file, cfg.vocab.max_size)
    vocab.case_fallback = cfg.vocab.case_fallback
    say(callbacks, f"vocabulary: {len(vocab):,} tokens ({len(counts):,} distinct in the training data)")
    if vectors is None:
        return vocab, None, None
    loaded = load_vectors(vectors, vocab, format=cfg.embeddings.format,
                          expected_dim=cfg.model.embedding_dim, oov_init=cfg.embeddings.oov_init,
                          counts=counts, seed=cfg.train.seed)
    say(callbacks, loaded.coverage.summary())
    return vocab, loaded.matrix, loaded.coverage

