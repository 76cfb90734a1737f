"""`textlstm pretrain`: word2vec vectors from the user's own unlabelled text."""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Callable, Iterable

from ..atomic import atomic_path
from ..config import Config
from ..data.tokencache import load_corpus
from ..data.tokenize import Tokenizer
from ..errors import VectorsError


def pretrain_file(data: str | os.PathLike, out_path: str | os.PathLike, cfg: Config, *,
                  vector_size: int = 100, window: int = 5, min_count: int = 5, epochs: int = 5,
                  workers: int = 2, progress: Callable[[int, int], None] | None = None) -> Path:
    """Tokenize `data` exactly as training will (cached), then train and save word2vec."""
    corpus = load_corpus(data, cfg.data, Tokenizer(cfg.tokenizer), labelled=False)
    return pretrain_word2vec(corpus.tokens, out_path, vector_size=vector_size, window=window,
                             min_count=min_count, epochs=epochs, workers=workers,
                             seed=cfg.train.seed, progress=progress)


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
