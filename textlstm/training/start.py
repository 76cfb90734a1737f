"""What a training run starts from: the vocabulary and vectors of the training tokens, the
encoded data, a freshly seeded model (or one from a pretrained encoder), the class weights,
and the settings the run resolves (`prepare_training`); and the checkpoint fingerprint's
record of the vector sources."""
from __future__ import annotations

import hashlib
import importlib.metadata
import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..callbacks import Callback, say
from ..config import Config
from ..data.batching import EncodedDataset
from ..data import multilabel
from ..data.multilabel import positive_weights
from ..data.vocab import Vocab
from ..embeddings.builtin import builtin
from ..embeddings.matrix import Embedded, vocab_and_vectors, with_sources
from ..errors import ConfigError, DataError
from ..model.network import TextLSTM
from .freezing import run_freeze
from .lm import check_compatible, load_encoder, start_from_encoder
from .objectives import class_weights_for


MAX_LABELS = 1000  # labels allowed without data.max_labels


def check_label_count(classes: Sequence[str], n_examples: int, max_labels: int = 0) -> None:
    """Refuse, before any training, a label set that cannot be meant: fewer than two labels,
    more than `MAX_LABELS` (or `max_labels` when set), or, unless `max_labels` is set, more
    than 20 labels with fewer than two examples each on average — the sign of a label column
    that holds ids or texts."""
    n_labels = len(classes)
    if n_labels < 2:
        found = f"only the label {classes[0]!r}" if classes else "no examples"
        raise DataError(f"Training needs at least two classes; the training data has {found} "
                        f"({n_examples:,} examples).")
    limit = max_labels or MAX_LABELS
    sparse = not max_labels and n_labels > 20 and 2 * n_labels > n_examples
    if n_labels > limit or sparse:
        why = (f"more than {limit:,}" if n_labels > limit else
               f"{n_examples / n_labels:.2f} examples per label on average")
        raise DataError(f"The training data has {n_labels:,} distinct labels for {n_examples:,} "
                        f"examples ({why}): is the label column right (--label-field)? If these "
                        f"labels are meant, allow them with --set data.max_labels={max(n_labels, 2)}.")


def stratified_split(tokens, labels, share: float, seed: int):
    """A validation share stratified by label (multi-label: by each text's rarest label, see
    `data.multilabel.strata`), unless some stratum is too small to split."""
    from sklearn.model_selection import train_test_split  # slow to import: only when training

    groups = multilabel.strata(labels) if labels and isinstance(labels[0], tuple) else labels
    counts = Counter(groups)
    n_val = math.ceil(share * len(labels))  # as scikit-learn rounds a share
    # Stratifying needs two examples of every class and a validation part of one per class.
    stratify = groups if min(counts.values()) >= 2 and n_val >= len(counts) else None
    idx_train, idx_val = train_test_split(np.arange(len(labels)), test_size=share,
                                          random_state=seed, stratify=stratify)
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    return (pick(idx_train, tokens), pick(idx_train, labels),
            (pick(idx_val, tokens), pick(idx_val, labels)))


def file_id(path: str | None) -> str | None:
    """A file as a resumed run must find it again: path, size and modification time; a
    built-in vector source: its name and its package's version."""
    if path is None:
        return None
    src = builtin(path)
    if src is not None:
        return f"{src.name} ({src.package} {importlib.metadata.version(src.package)})"
    st = Path(path).stat()
    return f"{path} ({st.st_size} bytes, modified {st.st_mtime_ns})"


def resume_fingerprint(cfg: Config, classes: Sequence[str], vocab: Vocab) -> dict:
    """What a checkpoint must match to be resumed: labels, vocabulary, vectors, the model's
    settings (thresholds left out: they do not change the weights)."""
    model_settings = cfg.to_dict()["model"]
    for key in ("thresholds", "threshold", *(() if cfg.model.task == "multilabel" else ("task",))):
        model_settings.pop(key)
    fingerprint = {"labels": list(classes), "vocab_size": len(vocab), "vocab_head": vocab.itos[:50],
                   "vectors": sources_id(cfg.embeddings.vectors), "model": model_settings}
    if cfg.embeddings.encoder:  # only then, so that earlier checkpoints stay resumable
        fingerprint["encoder"] = file_id(str(Path(cfg.embeddings.encoder) / "model.safetensors"))
    if cfg.vocab.unseen_vector_words or cfg.vocab.case_fallback:  # words past vocab_head matter
        fingerprint["vocab_sha256"] = hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest()
        fingerprint["case_fallback"] = cfg.vocab.case_fallback
    return fingerprint


def sources_id(sources: Sequence[str]) -> str | list[str] | None:
    """The vector sources as a checkpoint's fingerprint records them (one source: as 0.1 did)."""
    ids = [file_id(s) for s in sources]
    return None if not ids else ids[0] if len(ids) == 1 else ids


@dataclass
class TrainingStart:
    """What a training run with some settings starts from (`prepare_training`)."""

    config: Config  # the settings it trains with: the vectors recorded, the freeze mode resolved
    vocab: Vocab
    train_data: EncodedDataset
    model: TextLSTM  # freshly seeded, embeddings from the vectors or the encoder
    class_weights: torch.Tensor | None  # None unless train.class_weights = "balanced" (multi-label: pos_weight)
    embedded: Embedded | None  # the vocabulary and vector sources (None: from an encoder)

    @property
    def sources(self):  # -> list[Source]: each source's columns and coverage
        return self.embedded.sources if self.embedded else []


def prepare_training(cfg: Config, tokens: Sequence[Sequence[str]], labels: Sequence[str], classes: list[str],
                     vectors=None, callbacks: list[Callback] | None = None) -> TrainingStart:
    """The vocabulary (and vectors) of the training tokens, the encoded training data, a freshly
    seeded model and the class weights, and the settings the run uses; `cfg` is not changed."""
    counts = Counter(t for toks in tokens for t in toks)
    cfg = with_sources(cfg, vectors)
    embedded = None
    if cfg.embeddings.encoder:
        cfg, vocab, model = _from_encoder(cfg, counts, len(classes), callbacks)
        pretrained = True
    else:
        embedded = vocab_and_vectors(cfg, counts, callbacks)
        cfg = embedded.settings(cfg)  # the sources decide the embedding dimension
        vocab, matrix = embedded.vocab, embedded.matrix
        pretrained = matrix is not None
        torch.manual_seed(cfg.train.seed)
        model = TextLSTM(cfg.model, len(vocab), len(classes),
                         torch.from_numpy(matrix) if matrix is not None else None)
    train = run_freeze(cfg.train, pretrained=pretrained)
    if train is not cfg.train:
        say(callbacks, f"no pretrained vectors: embeddings train from the start (train.freeze = {train.freeze})")
        cfg = replace(cfg, train=train)
    train_data = EncodedDataset.encode(tokens, vocab, labels, {c: i for i, c in enumerate(classes)})
    weights = None
    if cfg.train.class_weights == "balanced":  # multi-label: BCE's pos_weight per label
        weights = (torch.from_numpy(positive_weights(train_data.labels)) if train_data.labels.ndim == 2
                   else class_weights_for(train_data.labels, len(classes)))
    return TrainingStart(cfg, vocab, train_data, model, weights, embedded)


def _from_encoder(cfg: Config, counts: Counter, n_labels: int, callbacks):
    """The settings (with the encoder's embedding size), vocabulary and model from the
    pretrained encoder in `embeddings.encoder`."""
    path = cfg.embeddings.encoder
    if cfg.embeddings.vectors:
        raise ConfigError("Give the vectors to `textlstm pretrain-lm`, not to training with "
                          f"--encoder: the encoder in {path} brings its own embeddings.")
    encoder = load_encoder(path)
    # the encoder decides the embedding dimension, as vector sources do without one
    dim = int(encoder.tensors["embedding.weight"].shape[1])
    cfg = replace(cfg, model=replace(cfg.model, embedding_dim=dim))
    check_compatible(encoder, cfg, f"{path}/config.json")
    torch.manual_seed(cfg.train.seed)
    vocab, model = start_from_encoder(encoder, counts, cfg, n_labels)
    covered = sum(c for w, c in counts.items() if w in encoder.vocab.stoi) / max(1, sum(counts.values()))
    say(callbacks, f"encoder {path}: {len(encoder.vocab):,} words cover {covered:.1%} of the "
                   f"training tokens; vocabulary {len(vocab):,}")
    return cfg, vocab, model


def unlabelled_tokens(path, encoding: str, tokenizer, callbacks=None) -> tuple[list[list[str]], str]:
    """The tokens of an unlabelled file (any reader format, labels ignored; plain text: one
    document per line), read with the tokenization cache, and its name."""
    from ..config import DataConfig
    from ..data.tokencache import load_corpus

    corpus = load_corpus(path, DataConfig(encoding=encoding), tokenizer, labelled=False)
    if not corpus.tokens:
        raise DataError(f"No unlabelled texts: {corpus.report.summary()}.")
    say(callbacks, "unlabelled: " + corpus.report.summary() + (" (tokens from cache)" if corpus.from_cache else ""))
    return corpus.tokens, str(path)
