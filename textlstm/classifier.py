"""`TextClassifier`: the library API. Texts in, labels and probabilities out.

>>> clf = TextClassifier()                                  # doctest: +SKIP
>>> clf.fit(["great film", "awful film"], ["pos", "neg"])   # doctest: +SKIP
>>> clf.predict(["a great story"])                          # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .ensemble import combine as combine_ensemble, is_ensemble, is_ensemble_dir, networks
from .ensemble import load as load_ensemble, save as save_ensemble
from .callbacks import Callback, say
from .config import Config, ModelConfig
from .data import multilabel
from .data.batching import EncodedDataset
from .data.readers import check_known_labels, each_label, label_order, parse_label_names, rename_labels
from .data.tokencache import load_corpus
from .data.tokenize import Tokenizer
from .embeddings.matrix import VectorsArg
from .errors import DataError, not_fitted
from .metrics import evaluate as evaluate_predictions, evaluate_multilabel
from .model.artifact import METRICS_FILE, MODEL_CARD, Artifact, config_json, load_artifact, save_artifact
from .model.card import model_card
from .notebook import Explanations
from .thresholds import decide, tune as tune_thresholds
from .training.checkpoint import metrics_lines
from .model.infer import logit_batches, predict_logits, predict_top, sigmoid, softmax
from .model.network import TextLSTM, expected_shapes
from .model.quantize import float_state_dict, is_quantized, quantize_model
from .training.device import resolve_device, setup_threads
from .training.freezing import run_freeze
from .training.objectives import MultiLabelClassification
from .training.start import check_label_count, prepare_training, resume_fingerprint, stratified_split, unlabelled_tokens


def _shapes(config: dict, vocab_size: int, n_labels: int) -> dict[str, tuple[int, ...]]:
    return expected_shapes(ModelConfig(**config["model"]), vocab_size, n_labels)


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
            callbacks: list[Callback] | None = None, unlabelled_texts: Sequence[str] | None = None
            ) -> "TextClassifier":
        """Train on in-memory texts; `val_*` or a stratified `data.val_split` of the training data
        picks the best epoch. A label that is a list (or tuple) of labels makes multi-label
        training (`model.task = "auto"`): `[["joy", "love"], [], ["anger"]]`. `unlabelled_texts`
        feed `train.vat` and `train.entropy_min`."""
        tok = Tokenizer(self.config.tokenizer)
        self.reports_ = []  # no files read
        val = None if val_texts is None else (list(tok.pipe(val_texts)), multilabel.given_labels(val_labels))
        unlabelled = None if unlabelled_texts is None else (list(tok.pipe(unlabelled_texts)), "in-memory texts")
        return self._fit_tokens(list(tok.pipe(texts)), multilabel.given_labels(labels), val, vectors,
                                checkpoint_dir, resume, callbacks, unlabelled)

    def train(self, data: str | os.PathLike, *, val: str | os.PathLike | None = None,
              vectors: VectorsArg = None, checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = False, callbacks: list[Callback] | None = None,
              unlabelled: str | os.PathLike | None = None) -> "TextClassifier":
        """Train from files in any supported format (see `textlstm.data`); `unlabelled` is a
        file of texts (any format, labels ignored, or plain text one per line; .gz too) for
        `train.vat` and `train.entropy_min`."""
        tok = Tokenizer(self.config.tokenizer)
        self.reports_ = []
        train_corpus = self._read(data, tok, callbacks)
        val_corpus = None if val is None else self._read(val, tok, callbacks)
        val_pair = None if val_corpus is None else (val_corpus.tokens, val_corpus.labels)
        extra = None if unlabelled is None else unlabelled_tokens(unlabelled, self.config.data.encoding, tok, callbacks)
        return self._fit_tokens(train_corpus.tokens, train_corpus.labels, val_pair, vectors,
                                checkpoint_dir, resume, callbacks, extra)

    def _read(self, path, tok: Tokenizer, callbacks):
        corpus = load_corpus(path, self.config.data, tok, task=self.config.model.task)
        self.reports_.append(corpus.report)
        if not corpus.tokens:  # the report says why: empty, a header only, blank, all skipped
            raise DataError(f"No examples to train or validate on: {corpus.report.summary()}.")
        say(callbacks, corpus.report.summary() + (" (tokens from cache)" if corpus.from_cache else ""))
        return corpus

    def _fit_tokens(self, tokens, labels, val, vectors, checkpoint_dir, resume, callbacks, unlabelled=None):
        cfg = self.config.validate()
        names = parse_label_names(cfg.data.label_names)  # e.g. 0=negative: classes are the names
        labels = rename_labels(labels, names, what="training data", strict=True)
        if val is not None:
            val = (val[0], rename_labels(val[1], names, what="validation data", strict=True))
        task = multilabel.resolve_task(labels, cfg.model.task)
        labels, val = self._labels_for(task, labels, val, getattr(self, "reports_", []))
        classes = label_order(set(each_label(labels)))
        check_label_count(classes, len(labels), cfg.data.max_labels)
        if task == "multilabel":
            say(callbacks, multilabel.describe(labels, classes))
        cfg = replace(cfg, model=replace(cfg.model, task=task))
        if val is None and cfg.data.val_split > 0:
            tokens, labels, val = stratified_split(tokens, labels, cfg.data.val_split, cfg.train.seed)
        index = {c: i for i, c in enumerate(classes)}
        if val is not None:
            check_known_labels(val[1], index, "validation data")
        run = prepare_training(cfg, tokens, labels, classes, vectors, callbacks)
        self.config = cfg = run.config  # what the model trains with is what config.json records
        vocab, train_data, model, weights = run.vocab, run.train_data, run.model, run.class_weights
        val_data = EncodedDataset.encode(val[0], vocab, val[1], index) if val else None
        fingerprint = resume_fingerprint(cfg, classes, vocab)
        start = time.perf_counter()
        from .training.trainer import Trainer  # here: loading and predicting never import the loop

        objective = (MultiLabelClassification(len(classes), weights, cfg.train.label_smoothing,
                                              cfg.train.multilabel_score) if task == "multilabel" else None)
        unlabelled_data = None
        if unlabelled is not None:  # the training vocabulary: their other words are <unk>
            unlabelled_data = EncodedDataset.encode(unlabelled[0], vocab)
            fingerprint["unlabelled"] = {"source": unlabelled[1], "n": len(unlabelled_data)}
            if not (cfg.train.vat or cfg.train.entropy_min):
                say(callbacks, "unlabelled texts are used by train.vat and train.entropy_min, which are off")
        trainer = Trainer(model, cfg.train, train_data, val_data, n_labels=len(classes),
                          class_weights=None if objective else weights, objective=objective,
                          checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                          callbacks=callbacks, freeze_encoder=bool(cfg.embeddings.encoder),
                          unlabelled=unlabelled_data)
        result = trainer.fit(resume=resume)
        self.classes_, self.vocab_, self.model_ = classes, vocab, model.eval()
        self.class_weights_ = None if weights is None else weights.tolist()
        score = f"best_val_{cfg.train.multilabel_score}" if task == "multilabel" else "best_val_macro_f1"
        self.meta_ = {"history": result.history, "best_epoch": result.best_epoch,
                      "label_counts": {"train": dict(Counter(each_label(labels))),
                                       "val": dict(Counter(each_label(val[1]))) if val else None},
                      score: result.best_score, "unfrozen_epoch": result.unfrozen_epoch,
                      "stopped_early": result.stopped_early, "padding_share": result.padding_share,
                      "train_seconds": time.perf_counter() - start, "n_train": len(train_data),
                      "n_val": len(val_data) if val_data else 0, "class_weights": self.class_weights_,
                      "effective_lr": trainer.lr, "world_size": trainer.dist.world_size,
                      "coverage": run.embedded and run.embedded.coverage_summary(),
                      "n_unlabelled": 0 if unlabelled_data is None else len(unlabelled_data),
                      "vector_sources": [src.record() for src in run.sources]}
        self.sources_ = run.sources
        self.coverage_ = run.sources[0].coverage if run.sources else None  # the first source's
        if task == "multilabel":
            self.meta_["labels_per_text"] = sum(map(len, labels)) / max(1, len(labels))
            self._tune_thresholds(val_data, "validation split" if val else None, callbacks)
        return self

    @staticmethod
    def _labels_for(task: str, labels, val, reports=()):
        """The labels as the task needs them: tuples (multi-label) or strings (multi-class,
        where a text with no label or several is an error saying where: the files' read
        `reports`, training then validation, know the line)."""
        if task == "multilabel":
            return multilabel.as_tuples(labels), val and (val[0], multilabel.as_tuples(val[1]))
        train_report, val_report = (list(reports) + [None, None])[:2]
        return (multilabel.as_strings(labels, "training data", train_report),
                val and (val[0], multilabel.as_strings(val[1], "validation data", val_report)))

    # -- multi-label decisions --------------------------------------------------------------
    @property
    def multilabel(self) -> bool:
        """Whether each text gets any number of labels (a sigmoid per label) or exactly one."""
        return self.config.model.task == "multilabel"

    @property
    def thresholds_(self) -> np.ndarray:
        """The decision threshold of each label (multi-label models), in `classes_` order."""
        saved = (self.meta_ or {}).get("thresholds")
        if saved is None:
            return np.full(len(self.classes_), self.config.model.threshold, dtype=np.float32)
        return np.asarray([saved[c] for c in self.classes_], dtype=np.float32)

    def cutoffs(self, threshold: float | None = None) -> np.ndarray:
        """The thresholds a multi-label prediction applies: the model's, or `threshold` for all."""
        return self.thresholds_ if threshold is None else np.full(len(self.classes_), threshold, np.float32)

    def _tune_thresholds(self, data: EncodedDataset | None, source: str | None, callbacks=None,
                         mode: str | None = None, score: str | None = None) -> np.ndarray:
        m = self.config.model
        mode, score = mode or m.thresholds, score or self.config.train.multilabel_score
        if data is None or mode == "fixed":
            found, mode, source = np.full(len(self.classes_), m.threshold, dtype=np.float32), "fixed", None
        else:
            proba = sigmoid(predict_logits(self.model_, data, 256, self._ready())[0])
            found = tune_thresholds(data.labels, proba, mode, score, m.threshold)
        self.meta_["thresholds"] = {c: round(float(t), 2) for c, t in zip(self.classes_, found)}
        self.meta_["threshold_tuning"] = {"mode": mode, "score": score, "on": source}
        shown = f"{float(found[0]):.2f}" if mode != "per-label" else f"{found.min():.2f}-{found.max():.2f}"
        say(callbacks, f"thresholds ({mode}{f', {score} on the {source}' if source else ''}): {shown}")
        return found

    def find_threshold(self, texts: Sequence[str], labels: Sequence[Any], *, mode: str | None = None,
                       score: str | None = None, source: str = "given data") -> dict[str, float]:
        """Retune the multi-label thresholds on labelled texts (`mode` global or per-label,
        `score` micro_f1 or macro_f1; default the model's settings) and keep them; `save` to
        write them. Returns {label: threshold}."""
        self.check_fitted()
        if not self.multilabel:
            raise not_fitted("find_threshold() is for multi-label models; this one gives one label per text.")
        gold = self._gold(texts, labels, skip_unknown=False)[1]
        data = self.encode(texts)
        data.labels = multilabel.multi_hot(gold, {c: i for i, c in enumerate(self.classes_)})
        self._tune_thresholds(data, source, mode=mode, score=score)
        return dict(self.meta_["thresholds"])

    def fine_tune(self, data: str | os.PathLike, *, epochs: int = 1, lr: float | None = None,
                  callbacks: list[Callback] | None = None) -> "TextClassifier":
        """Train the fitted model further on a data file with its own vocabulary and labels
        (embeddings frozen, no validation: the last weights stay). Pruning uses this between
        its steps; pruned weights stay zero because their masks stay in place."""
        self.check_fitted()
        if is_quantized(self.model_) or is_ensemble(self):
            raise not_fitted("A quantised model or an ensemble cannot be trained; fine-tune the float "
                             "original (an ensemble: each member) instead.")
        cfg = replace(run_freeze(self.config.train, pretrained=True, purpose="fine-tune"), epochs=epochs,
                      lr=lr or self.config.train.lr, patience=0, eval_every=0)
        corpus = load_corpus(data, self.config.data, self.tokenizer, task=self.config.model.task)
        index = {c: i for i, c in enumerate(self.classes_)}
        labels = self._labels_for(self.config.model.task, corpus.labels, None)[0]
        check_known_labels(labels, index, f"fine-tuning data {data}")
        train_data = EncodedDataset.encode(corpus.tokens, self.vocab_, labels, index)
        weights = (self.meta_ or {}).get("class_weights")
        weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)
        objective = (MultiLabelClassification(len(self.classes_), weights, self.config.train.label_smoothing)
                     if self.multilabel else None)
        from .training.trainer import Trainer

        Trainer(self.model_, cfg, train_data, None, n_labels=len(self.classes_), callbacks=callbacks,
                class_weights=None if objective else weights, objective=objective).fit()
        self.model_.eval()
        return self

    # -- prediction ---------------------------------------------------------------------------
    def check_fitted(self) -> None:
        """Raise `NotFittedError` unless the classifier is trained or loaded."""
        if not hasattr(self, "model_"):
            raise not_fitted("This TextClassifier is not trained yet: call fit(), train() or "
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
        """Probabilities `(n, len(classes_))`; the same for any batch size. Multi-class: a
        distribution per text (softmax); multi-label: each label's own probability (sigmoid)."""
        logits = self._run(texts, batch_size)[0]
        return sigmoid(logits) if self.multilabel else softmax(logits)

    def predict(self, texts: Iterable[str], batch_size: int = 256, *, threshold: float | None = None,
                at_least_one: bool = False) -> list:
        """The most probable label of each text (memory: one batch's scores at a time). A
        multi-label model gives each text the list of labels at or above their thresholds
        (`threshold`: one for all instead), with `at_least_one` its top label when none is."""
        data = self.encode(texts)
        if not self.multilabel:
            return [self.classes_[i] for i in predict_top(self.model_, data, batch_size, self._ready())]
        cut = self.cutoffs(threshold)
        out: list = [None] * len(data)
        for index, logits, _, _ in logit_batches(self.model_, data, batch_size, self._ready()):
            chosen = decide(sigmoid(logits.numpy()), cut, at_least_one)
            for row, i in enumerate(index):
                out[i] = [self.classes_[j] for j in np.flatnonzero(chosen[row])]
        return out

    def explain(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        """Per text: its tokens with attention weights, the predicted label (multi-label: the
        most probable, and `labels`, those predicted) and probabilities."""
        texts = list(texts)
        if not all("attention" in n.config.model.pooling.split("+") for n in networks(self)):
            raise not_fitted("explain() needs a model with attention pooling (model.pooling; "
                             "an ensemble: every member).")
        logits, weights = self._run(texts, 64, attention=True)
        proba = sigmoid(logits) if self.multilabel else softmax(logits)
        chosen = decide(proba, self.thresholds_) if self.multilabel else None
        out = []
        for row, (text, p, w) in enumerate(zip(texts, proba, weights)):
            tokens = self.tokenizer.tokenize(text) or ["<unk>"]
            doc = {"text": text, "label": self.classes_[int(p.argmax())],
                   "proba": dict(zip(self.classes_, map(float, p))),
                   "tokens": list(zip(tokens, map(float, w)))}
            if chosen is not None:
                doc["labels"] = [self.classes_[j] for j in np.flatnonzero(chosen[row])]
            out.append(doc)
        return Explanations(out)  # a list that shows itself in Jupyter

    def _repr_html_(self) -> str:
        from .notebook import classifier_html
        return classifier_html(self)

    def evaluate(self, texts: Sequence[str], labels: Sequence[Any], batch_size: int = 256,
                 skip_unknown: bool = False, *, threshold: float | None = None) -> dict:
        """Accuracy, per-class and averaged precision / recall / F1, confusion matrix; for a
        multi-label model (labels: lists of labels per text) subset accuracy, Hamming loss,
        micro / macro / weighted / samples averages and per-label ROC-AUC, at the model's
        thresholds (or `threshold`).

        Labels the model never saw are an error listing them, or with `skip_unknown` are left
        out of the metrics and counted under `skipped_unknown_labels`."""
        texts, gold, unknown = self._gold(texts, labels, skip_unknown)
        if self.multilabel:
            index = {c: i for i, c in enumerate(self.classes_)}
            proba = self.predict_proba(texts, batch_size)
            cut = self.cutoffs(threshold)
            report = evaluate_multilabel(multilabel.multi_hot(gold, index), decide(proba, cut),
                                         self.classes_, proba, cut)
        else:
            report = evaluate_predictions(gold, self.predict(texts, batch_size), self.classes_)
        report["skipped_unknown_labels"] = dict(unknown)
        return report

    def _gold(self, texts: Sequence[str], labels: Sequence[Any], skip_unknown: bool):
        """(texts, gold labels as the task needs them, unknown label counts)."""
        self.check_fitted()
        names = parse_label_names(self.config.data.label_names)
        gold = rename_labels(multilabel.given_labels(labels), names)
        gold = multilabel.as_tuples(gold) if self.multilabel else multilabel.as_strings(gold, "evaluation data")
        known = set(self.classes_)
        unknown = Counter(lab for lab in each_label(gold) if lab not in known)
        if unknown and skip_unknown:
            if self.multilabel:  # the unknown labels go, the texts stay
                gold = [tuple(lab for lab in labs if lab in known) for labs in gold]
            else:
                keep = [i for i, lab in enumerate(gold) if lab in known]
                texts, gold = [texts[i] for i in keep], [gold[i] for i in keep]
        else:
            check_known_labels(gold, {c: i for i, c in enumerate(self.classes_)}, "evaluation data")
        return list(texts), gold, unknown

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model directory atomically (config.json, vocab.txt, model.safetensors; an
        ensemble: its members' directories and ensemble.json, see `textlstm.ensemble`)."""
        self.check_fitted()
        if is_ensemble(self):
            return save_ensemble(self, directory)
        art = Artifact(config=self.config.to_dict(), labels=list(self.classes_), vocab=self.vocab_,
                       tensors={k: v.detach().cpu() for k, v in float_state_dict(self.model_).items()},
                       meta=self.meta_)
        # the model card (README.md) and the run log, checksummed with the rest
        art.files = {MODEL_CARD: model_card(json.loads(config_json(art)), Path(directory).name),
                     METRICS_FILE: metrics_lines(self.meta_.get("history") or [])}
        return save_artifact(directory, art)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TextClassifier":
        """Load a model (or ensemble) directory: JSON, text and safetensors only — nothing is unpickled."""
        if is_ensemble_dir(directory):
            return load_ensemble(cls, directory)
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

    @classmethod
    def ensemble(cls, members: Sequence["TextClassifier"], weights: Sequence[float] | None = None,
                 sources: Sequence[str | None] | None = None) -> "TextClassifier":
        """A classifier averaging the fitted `members`' probabilities (`weights`: default equal);
        `save` writes an ensemble directory that `load` and every command take."""
        return combine_ensemble(members, weights, sources)
