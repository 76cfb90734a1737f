"""`textlstm pretrain`: word2vec vectors from the user's own unlabelled text."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .config import Config
from .corpus import load_corpus
from .embeddings import pretrain_word2vec
from .tokenize import Tokenizer


def pretrain_file(data: str | os.PathLike, out_path: str | os.PathLike, cfg: Config, *,
                  vector_size: int = 100, window: int = 5, min_count: int = 5, epochs: int = 5,
                  workers: int = 2, progress: Callable[[int, int], None] | None = None) -> Path:
    """Tokenize `data` exactly as training will (cached), then train and save word2vec."""
    corpus = load_corpus(data, cfg.data, Tokenizer(cfg.tokenizer), labelled=False)
    return pretrain_word2vec(corpus.tokens, out_path, vector_size=vector_size, window=window,
                             min_count=min_count, epochs=epochs, workers=workers,
                             seed=cfg.train.seed, progress=progress)
