"""`TextClassifier`: the library API. Texts in, labels and probabilities out.

>>> clf = TextClassifier()                                  # doctest: +SKIP
>>> clf.fit(["great film", "awful film"], ["pos", "neg"])   # doctest: +SKIP
>>> clf.predict(["a great story"])                          # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import importlib.metadata
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .callbacks import Callback, say
from .config import Config, ModelConfig
from .data.batching import EncodedDataset
from .data.readers import check_known_labels, label_order, parse_label_names, rename_labels
from .data.tokencache import load_corpus
from .data.tokenize import Tokenizer
from .data.vocab import Vocab
from .embeddings.builtin import builtin
from .embeddings.matrix import Embedded, VectorsArg, vocab_and_vectors, with_sources
from .errors import ConfigError, DataError, NotFittedError
from .metrics import evaluate as evaluate_predictions
from .model.artifact import METRICS_FILE, MODEL_CARD, Artifact, config_json, load_artifact, save_artifact
from .model.card import model_card
from .notebook import Explanations
from .training.checkpoint import metrics_lines
from .model.infer import predict_logits, predict_top, softmax
from .model.network import TextLSTM, expected_shapes
from .model.quantize import float_state_dict, is_quantized, quantize_model
from .training.device import resolve_device, setup_threads
from .training.freezing import run_freeze
from .training.lm import check_compatible, load_encoder, start_from_encoder
from .training.objectives import class_weights_for


def _shapes(config: dict, vocab_size: int, n_labels: int) -> dict[str, tuple[int, ...]]:
    return expected_shapes(ModelConfig(**config["model"]), vocab_size, n_labels)


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


class TextClassifier:
    """A BiLSTM text classifier with pretrained embeddings.

    Train with `fit(texts, labels)` or `train(path)` (files, with tokenization cached), then
    `predict`, `predict_proba` (columns in `classes_` order), `evaluate`, `explain`; `save` and
    `TextClassifier.load` move it through a model directory.
    """

    def __init__(self, config: Config | None = None):
        self.config = config or Config()

    # -- training ---------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence[Any], *, val_texts: Sequence[str] | None = None,
            val_labels: Sequence[Any] | None = None, vectors: VectorsArg = None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            callbacks: list[Callback] | None = None) -> "TextClassifier":
        """Train on in-memory texts; `val_*` or a stratified `data.val_split` of the training data
        picks the best epoch."""
        tok = Tokenizer(self.config.tokenizer)
        val = None
        if val_texts is not None:
            val = (list(tok.pipe(val_texts)), [str(v) for v in val_labels])
        return self._fit_tokens(list(tok.pipe(texts)), [str(v) for v in labels], val, vectors,
                                checkpoint_dir, resume, callbacks)

    def train(self, data: str | os.PathLike, *, val: str | os.PathLike | None = None,
              vectors: VectorsArg = None, checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = False, callbacks: list[Callback] | None = None) -> "TextClassifier":
        """Train from files in any supported format (see `textlstm.data`)."""
        tok = Tokenizer(self.config.tokenizer)
        self.reports_ = []
        train_corpus = self._read(data, tok, callbacks)
        val_pair = None
        if val is not None:
            val_corpus = self._read(val, tok, callbacks)
            val_pair = (val_corpus.tokens, val_corpus.labels)
        return self._fit_tokens(train_corpus.tokens, train_corpus.labels, val_pair, vectors,
                                checkpoint_dir, resume, callbacks)

    def _read(self, path, tok: Tokenizer, callbacks):
        corpus = load_corpus(path, self.config.data, tok)
        self.reports_.append(corpus.report)
        if not corpus.tokens:  # the report says why: empty, a header only, blank, all skipped
            raise DataError(f"No examples to train or validate on: {corpus.report.summary()}.")
        say(callbacks, corpus.report.summary() + (" (tokens from cache)" if corpus.from_cache else ""))
        return corpus

    def _fit_tokens(self, tokens, labels, val, vectors, checkpoint_dir, resume, callbacks):
        cfg = self.config.validate()
        names = parse_label_names(cfg.data.label_names)  # e.g. 0=negative: classes are the names
        labels = rename_labels(labels, names, what="training data", strict=True)
        if val is not None:
            val = (val[0], rename_labels(val[1], names, what="validation data", strict=True))
        classes = label_order(set(labels))
        check_label_count(classes, len(labels), cfg.data.max_labels)
        if val is None and cfg.data.val_split > 0:
            tokens, labels, val = _stratified_split(tokens, labels, cfg.data.val_split, cfg.train.seed)
        index = {c: i for i, c in enumerate(classes)}
        if val is not None:
            check_known_labels(val[1], index, "validation data")
        run = prepare_training(cfg, tokens, labels, classes, vectors, callbacks)
        self.config = cfg = run.config  # what the model trains with is what config.json records
        vocab, train_data, model, weights = run.vocab, run.train_data, run.model, run.class_weights
        val_data = EncodedDataset.encode(val[0], vocab, val[1], index) if val else None
        fingerprint = {"labels": classes, "vocab_size": len(vocab), "vocab_head": vocab.itos[:50],
                       "vectors": sources_id(cfg.embeddings.vectors), "model": cfg.to_dict()["model"]}
        if cfg.embeddings.encoder:  # only then, so that earlier checkpoints stay resumable
            fingerprint["encoder"] = _file_id(str(Path(cfg.embeddings.encoder) / "model.safetensors"))
        if cfg.vocab.unseen_vector_words or cfg.vocab.case_fallback:  # words past vocab_head matter
            fingerprint["vocab_sha256"] = hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest()
            fingerprint["case_fallback"] = cfg.vocab.case_fallback
        start = time.perf_counter()
        from .training.trainer import Trainer  # here: loading and predicting never import the loop

        trainer = Trainer(model, cfg.train, train_data, val_data, n_labels=len(classes),
                          class_weights=weights, checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                          callbacks=callbacks, freeze_encoder=bool(cfg.embeddings.encoder))
        result = trainer.fit(resume=resume)
        self.classes_, self.vocab_, self.model_ = classes, vocab, model.eval()
        self.class_weights_ = None if weights is None else weights.tolist()
        self.meta_ = {"history": result.history, "best_epoch": result.best_epoch,
                      "label_counts": {"train": dict(Counter(labels)),
                                       "val": dict(Counter(val[1])) if val else None},
                      "best_val_macro_f1": result.best_score, "unfrozen_epoch": result.unfrozen_epoch,
                      "stopped_early": result.stopped_early, "padding_share": result.padding_share,
                      "train_seconds": time.perf_counter() - start, "n_train": len(train_data),
                      "n_val": len(val_data) if val_data else 0, "class_weights": self.class_weights_,
                      "effective_lr": trainer.lr, "world_size": trainer.dist.world_size,
                      "coverage": run.embedded and run.embedded.coverage_summary(),
                      "vector_sources": [src.record() for src in run.sources]}
        self.sources_ = run.sources
        self.coverage_ = run.sources[0].coverage if run.sources else None  # the first source's
        return self

    def fine_tune(self, data: str | os.PathLike, *, epochs: int = 1, lr: float | None = None,
                  callbacks: list[Callback] | None = None) -> "TextClassifier":
        """Train the fitted model further on a data file with its own vocabulary and labels
        (embeddings frozen, no validation: the last weights stay). Pruning uses this between
        its steps; pruned weights stay zero because their masks stay in place."""
        self.check_fitted()
        if is_quantized(self.model_):
            raise NotFittedError("A quantised model cannot be trained; fine-tune its float original.")
        cfg = replace(run_freeze(self.config.train, pretrained=True, purpose="fine-tune"), epochs=epochs,
                      lr=lr or self.config.train.lr, patience=0, eval_every=0)
        corpus = load_corpus(data, self.config.data, self.tokenizer)
        index = {c: i for i, c in enumerate(self.classes_)}
        check_known_labels(corpus.labels, index, f"fine-tuning data {data}")
        train_data = EncodedDataset.encode(corpus.tokens, self.vocab_, corpus.labels, index)
        weights = (self.meta_ or {}).get("class_weights")
        from .training.trainer import Trainer

        Trainer(self.model_, cfg, train_data, None, n_labels=len(self.classes_), callbacks=callbacks,
                class_weights=None if weights is None else torch.tensor(weights, dtype=torch.float32)).fit()
        self.model_.eval()
        return self

    # -- prediction ---------------------------------------------------------------------------
    def check_fitted(self) -> None:
        """Raise `NotFittedError` unless the classifier is trained or loaded."""
        if not hasattr(self, "model_"):
            raise NotFittedError("This TextClassifier is not trained yet: call fit(), train() or "
                                 "TextClassifier.load() first.")

    @property
    def tokenizer(self) -> Tokenizer:
        if not hasattr(self, "_tokenizer"):
            self._tokenizer = Tokenizer(self.config.tokenizer)
        return self._tokenizer

    def encode(self, texts: Iterable[str]) -> EncodedDataset:
        self.check_fitted()
        return EncodedDataset.encode(list(self.tokenizer.pipe(texts)), self.vocab_)

    def _ready(self) -> torch.device:
        if getattr(self, "_device", None) is None:  # once: torch's thread count is process-wide
            setup_threads(self.config.train.threads)
            self._device = resolve_device(self.config.train.device)
            self.model_.to(self._device)
        return self._device

    def _run(self, texts: Iterable[str], batch_size: int, attention: bool = False):
        data = self.encode(texts)
        return predict_logits(self.model_, data, batch_size, self._ready(), attention)

    def predict_proba(self, texts: Iterable[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities `(n, len(classes_))`; the same for any batch size."""
        return softmax(self._run(texts, batch_size)[0])

    def predict(self, texts: Iterable[str], batch_size: int = 256) -> list[str]:
        """The most probable label of each text (memory: one batch's scores at a time)."""
        data = self.encode(texts)
        return [self.classes_[i] for i in predict_top(self.model_, data, batch_size, self._ready())]

    def explain(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        """Per text: its tokens with attention weights, the predicted label and probabilities."""
        texts = list(texts)
        if "attention" not in self.config.model.pooling.split("+"):
            raise NotFittedError("explain() needs a model with attention pooling (model.pooling).")
        logits, weights = self._run(texts, 64, attention=True)
        proba = softmax(logits)
        out = []
        for text, p, w in zip(texts, proba, weights):
            tokens = self.tokenizer.tokenize(text) or ["<unk>"]
            out.append({"text": text, "label": self.classes_[int(p.argmax())],
                        "proba": dict(zip(self.classes_, map(float, p))),
                        "tokens": list(zip(tokens, map(float, w)))})
        return Explanations(out)  # a list that shows itself in Jupyter

    def _repr_html_(self) -> str:
        from .notebook import classifier_html
        return classifier_html(self)

    def evaluate(self, texts: Sequence[str], labels: Sequence[Any], batch_size: int = 256,
                 skip_unknown: bool = False) -> dict:
        """Accuracy, per-class and averaged precision / recall / F1, confusion matrix.

        Labels the model never saw are an error listing them, or with `skip_unknown` are left
        out of the metrics and counted under `skipped_unknown_labels`."""
        labels = rename_labels([str(x) for x in labels], parse_label_names(self.config.data.label_names))
        known = set(self.classes_)
        unknown = Counter(lab for lab in labels if lab not in known)
        if unknown and skip_unknown:
            keep = [i for i, lab in enumerate(labels) if lab in known]
            texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        else:
            check_known_labels(labels, {c: i for i, c in enumerate(self.classes_)}, "evaluation data")
        report = evaluate_predictions(labels, self.predict(texts, batch_size), self.classes_)
        report["skipped_unknown_labels"] = dict(unknown)
        return report

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model directory atomically (config.json, vocab.txt, model.safetensors)."""
        self.check_fitted()
        art = Artifact(config=self.config.to_dict(), labels=list(self.classes_), vocab=self.vocab_,
                       tensors={k: v.detach().cpu() for k, v in float_state_dict(self.model_).items()},
                       meta=self.meta_)
        # the model card (README.md) and the run log, checksummed with the rest
        art.files = {MODEL_CARD: model_card(json.loads(config_json(art)), Path(directory).name),
                     METRICS_FILE: metrics_lines(self.meta_.get("history") or [])}
        return save_artifact(directory, art)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TextClassifier":
        """Load a model directory: JSON, text and safetensors only — nothing is unpickled."""
        art = load_artifact(directory, expected_shapes=_shapes)
        clf = cls(Config.from_dict(art.config, f"{directory}/config.json"))
        model = TextLSTM(clf.config.model, len(art.vocab), len(art.labels))
        model.load_state_dict(art.tensors)
        model = quantize_model(model.eval(), clf.config.model.quantization)  # "none": unchanged
        if is_quantized(model):
            clf.config.train.device = "cpu"  # PyTorch's int8 kernels run on the CPU only
        art.vocab.case_fallback = clf.config.vocab.case_fallback
        clf.classes_, clf.vocab_, clf.model_, clf.meta_ = art.labels, art.vocab, model, art.meta
        return clf


def _file_id(path: str | None) -> str | None:
    """A file as a resumed run must find it again: path, size and modification time; a
    built-in vector source: its name and its package's version."""
    if path is None:
        return None
    src = builtin(path)
    if src is not None:
        return f"{src.name} ({src.package} {importlib.metadata.version(src.package)})"
    st = Path(path).stat()
    return f"{path} ({st.st_size} bytes, modified {st.st_mtime_ns})"


def sources_id(sources: Sequence[str]) -> str | list[str] | None:
    """The vector sources as a checkpoint's fingerprint records them (one source: as 0.1 did)."""
    ids = [_file_id(s) for s in sources]
    return None if not ids else ids[0] if len(ids) == 1 else ids


def _stratified_split(tokens, labels, share: float, seed: int):
    counts = Counter(labels)
    n_val = math.ceil(share * len(labels))  # as scikit-learn rounds a share
    # Stratifying needs two examples of every class and a validation part of one per class.
    stratify = labels if min(counts.values()) >= 2 and n_val >= len(counts) else None
    idx_train, idx_val = train_test_split(np.arange(len(labels)), test_size=share,
                                          random_state=seed, stratify=stratify)
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    return (pick(idx_train, tokens), pick(idx_train, labels),
            (pick(idx_val, tokens), pick(idx_val, labels)))


@dataclass
class TrainingStart:
    """What a training run with some settings starts from (`prepare_training`)."""

    config: Config  # the settings it trains with: the vectors recorded, the freeze mode resolved
    vocab: Vocab
    train_data: EncodedDataset
    model: TextLSTM  # freshly seeded, embeddings from the vectors or the encoder
    class_weights: torch.Tensor | None  # None unless train.class_weights = "balanced"
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
        vocab, model = _from_encoder(cfg, counts, len(classes), callbacks)
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
    weights = class_weights_for(train_data.labels, len(classes)) if cfg.train.class_weights == "balanced" else None
    return TrainingStart(cfg, vocab, train_data, model, weights, embedded)


def _from_encoder(cfg: Config, counts: Counter, n_labels: int, callbacks):
    """Vocabulary and model from the pretrained encoder in `embeddings.encoder`."""
    path = cfg.embeddings.encoder
    if cfg.embeddings.vectors:
        raise ConfigError("Give the vectors to `textlstm pretrain-lm`, not to training with "
                          f"--encoder: the encoder in {path} brings its own embeddings.")
    encoder = load_encoder(path)
    check_compatible(encoder, cfg, f"{path}/config.json")
    torch.manual_seed(cfg.train.seed)
    vocab, model = start_from_encoder(encoder, counts, cfg, n_labels)
    covered = sum(c for w, c in counts.items() if w in encoder.vocab.stoi) / max(1, sum(counts.values()))
    say(callbacks, f"encoder {path}: {len(encoder.vocab):,} words cover {covered:.1%} of the "
                   f"training tokens; vocabulary {len(vocab):,}")
    return vocab, model

