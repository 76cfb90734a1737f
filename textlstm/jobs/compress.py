"""`textlstm compress` as a library function: prune (optionally in steps, fine-tuning between
them), quantise, measure every step on an evaluation file, save the result.

>>> result = compress("model", "model-small", CompressOptions(prune=0.5, prune_steps=2,
...                   train="train.csv", quantize="dynamic-int8", eval="dev.csv"))  # doctest: +SKIP
>>> [(s.step, s.accuracy, s.docs_per_s) for s in result.steps]  # doctest: +SKIP

Each step is reported with accuracy and macro-F1 on the evaluation file, the size of its
model.safetensors, the share of zeros among the pruned weights and the model's inference speed
(docs/s over the encoded evaluation texts: the network alone, no tokenization, the same batch
size and threads for every step, best of `timing_repeats` runs after a warm-up).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import nn

from ..atomic import check_output_dir
from ..callbacks import Callback, say
from ..classifier import TextClassifier
from ..data import multilabel
from ..data.batching import EncodedDataset
from ..data.readers import check_known_labels
from ..data.tokencache import load_corpus
from ..errors import ConfigError, DataError, ModelFileError
from ..metrics import evaluate as evaluate_predictions
from ..metrics import evaluate_multilabel
from ..model.infer import predict_logits, sigmoid
from ..model.prune import check_schedule, make_permanent, prune_model, schedule, zero_share
from ..ensemble import is_ensemble
from ..model.quantize import check_quantization, float_state_dict, is_quantized, quantize_model
from ..thresholds import decide
from ..training.device import setup_threads

WARMUP_TEXTS = 64


@dataclass
class CompressOptions:
    """What to do: `prune` is the target share of zero weights (0: no pruning), reached in
    `prune_steps` equal steps with `finetune_epochs` of training on `train` after each (no
    `train`: no fine-tuning); `quantize` is "none" or "dynamic-int8"; `eval` a labelled file
    measured before and after every step."""

    prune: float = 0.0
    prune_scope: str = "global"
    prune_steps: int = 1
    train: str | os.PathLike | None = None
    finetune_epochs: int = 1
    finetune_lr: float | None = None  # None: the model's train.lr
    quantize: str = "none"
    eval: str | os.PathLike | None = None
    batch_size: int = 256
    threads: int = 0  # 0: the model's train.threads (0 there: all cores)
    timing_repeats: int = 3

    def check(self) -> "CompressOptions":
        check_schedule(self.prune, self.prune_steps, self.prune_scope)
        check_quantization(self.quantize)
        if self.prune == 0 and self.quantize == "none":
            raise ConfigError("Nothing to do: give --prune SHARE (e.g. 0.5) and/or --quantize dynamic-int8.")
        if self.train is not None and self.prune == 0:
            raise ConfigError("--train fine-tunes between pruning steps; it needs --prune.")
        if self.finetune_epochs < 1 or self.batch_size < 1 or self.timing_repeats < 1:
            raise ConfigError(f"finetune_epochs ({self.finetune_epochs}), batch_size ({self.batch_size}) "
                              f"and timing_repeats ({self.timing_repeats}) must be at least 1.")
        for what, path in (("--train", self.train), ("--eval", self.eval)):
            if path is not None and not Path(path).exists():
                raise DataError(f"{what} file {path} does not exist.")
        return self


@dataclass
class StepReport:
    """One row of the report: the model after `step`."""

    step: str  # "original", "pruned 25%", "dynamic-int8", ...
    zero_share: float  # among the weights pruning works on (LSTM/GRU and linear matrices)
    file_bytes: int  # model.safetensors as this step would save it
    accuracy: float | None = None  # None without an evaluation file
    macro_f1: float | None = None
    docs_per_s: float | None = None
    finetune_seconds: float | None = None


@dataclass
class CompressResult:
    classifier: TextClassifier
    model_dir: Path
    steps: list[StepReport] = field(default_factory=list)
    n_eval: int = 0
    threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"model_dir": str(self.model_dir), "n_eval": self.n_eval, "threads": self.threads,
                "steps": [asdict(s) for s in self.steps]}


class _Evaluator:
    """Accuracy, macro-F1 and docs/s of a network on the encoded evaluation texts (multi-label:
    subset accuracy and macro-F1 over the labels at the model's thresholds)."""

    def __init__(self, clf: TextClassifier, path: str | os.PathLike, opts: CompressOptions):
        corpus = load_corpus(path, clf.config.data, clf.tokenizer, task=clf.config.model.task)
        index = {c: i for i, c in enumerate(clf.classes_)}
        labels = (multilabel.as_tuples(corpus.labels) if clf.multilabel else
                  multilabel.as_strings(corpus.labels, f"evaluation data {path}", corpus.report))
        check_known_labels(labels, index, f"evaluation data {path}")
        self.data = EncodedDataset.encode(corpus.tokens, clf.vocab_)
        self.labels, self.classes = labels, clf.classes_
        self.multi_hot = multilabel.multi_hot(labels, index) if clf.multilabel else None
        self.thresholds = clf.thresholds_ if clf.multilabel else None
        self.batch_size, self.repeats = opts.batch_size, opts.timing_repeats

    def measure(self, model: nn.Module) -> dict[str, float]:
        predict_logits(model, self.data.subset(range(min(WARMUP_TEXTS, len(self.data)))), self.batch_size)
        best = float("inf")
        for _ in range(self.repeats):
            start = time.perf_counter()
            logits, _ = predict_logits(model, self.data, self.batch_size)
            best = min(best, time.perf_counter() - start)
        if self.multi_hot is not None:
            proba = sigmoid(logits)
            report = evaluate_multilabel(self.multi_hot, decide(proba, self.thresholds), self.classes, proba)
        else:
            report = evaluate_predictions(self.labels, [self.classes[i] for i in logits.argmax(axis=1)],
                                          self.classes)
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                "docs_per_s": len(self.data) / best}


def _file_bytes(model: nn.Module) -> int:
    """Size of model.safetensors for this model: pruning masks folded in, float weights."""
    state = float_state_dict(model)
    dense = {k.removesuffix("_orig"): v.detach().cpu().contiguous() for k, v in state.items()
             if not k.endswith("_mask")}
    return len(safetensors.torch.save(dense, metadata={"format": "pt"}))  # as artifact.py writes it


def _check_out(model_dir: Path, out: Path, overwrite: bool) -> None:
    check_output_dir(out, overwrite)
    if out.resolve() == model_dir.resolve():
        raise ModelFileError(f"--out {out} is the model being compressed; write the result elsewhere.")


def compress(model_dir: str | os.PathLike, out: str | os.PathLike, options: CompressOptions, *,
             overwrite: bool = False, callbacks: list[Callback] | None = None) -> CompressResult:
    """Load `model_dir`, prune and/or quantise it as `options` say, save it to `out` and return
    a report row per step. Pruned weights are made permanent (plain zeros) before saving; a
    quantised model is saved with float weights and `model.quantization` recorded in its
    config, so `TextClassifier.load` quantises it again."""
    opts = options.check()
    model_dir, out = Path(model_dir), Path(out)
    _check_out(model_dir, out, overwrite)
    clf = TextClassifier.load(model_dir)
    if is_ensemble(clf):
        raise ModelFileError(f"{model_dir} is an ensemble; compress each member, then combine the "
                             "compressed ones with `textlstm ensemble`.")
    if is_quantized(clf.model_):
        raise ModelFileError(f"{model_dir} is already quantised (model.quantization = "
                             f"{clf.config.model.quantization!r}); compress its float original.")
    threads = opts.threads or clf.config.train.threads
    setup_threads(threads)
    evaluator = _Evaluator(clf, opts.eval, opts) if opts.eval is not None else None
    result = CompressResult(clf, out, n_eval=len(evaluator.data) if evaluator else 0, threads=threads)
    result.steps.append(_row("original", clf.model_, evaluator, callbacks))
    if opts.prune > 0:
        result.steps += _prune(clf, opts, evaluator, threads, callbacks)
    if opts.quantize != "none":
        clf.config = replace(clf.config, model=replace(clf.config.model, quantization=opts.quantize))
        clf.model_ = quantize_model(clf.model_, opts.quantize)
        # the zeros of the float weights it was quantised from
        result.steps.append(_row(opts.quantize, clf.model_, evaluator, callbacks, zeros=result.steps[-1].zero_share))
    meta = dict(clf.meta_ or {})
    source_evaluations = meta.pop("evaluations", None)  # they describe the uncompressed model
    meta["compression"] = {"source": str(model_dir), "source_evaluations": source_evaluations,
                           "options": _jsonable(opts), **result.to_dict()}
    clf.meta_ = meta
    clf.save(out)
    return result


def _prune(clf: TextClassifier, opts: CompressOptions, evaluator: _Evaluator | None, threads: int,
           callbacks: list[Callback] | None) -> list[StepReport]:
    """Prune in steps (fine-tuning after each when `opts.train`), then make the zeros permanent."""
    rows = []
    for sparsity in schedule(opts.prune, opts.prune_steps):
        say(callbacks, f"pruning to {sparsity:.0%} zeros ({opts.prune_scope})")
        prune_model(clf.model_, sparsity, opts.prune_scope)
        seconds = None
        if opts.train is not None:
            start = time.perf_counter()
            clf.fine_tune(opts.train, epochs=opts.finetune_epochs, lr=opts.finetune_lr, callbacks=callbacks)
            clf.model_.cpu()  # training may have used a GPU; measuring runs on the CPU
            setup_threads(threads)  # and training sets its own threads
            seconds = time.perf_counter() - start
        rows.append(_row(f"pruned {sparsity:.0%}", clf.model_, evaluator, callbacks, seconds))
    make_permanent(clf.model_)
    return rows


def _row(step: str, model: nn.Module, evaluator: _Evaluator | None, callbacks,
         finetune_seconds: float | None = None, zeros: float | None = None) -> StepReport:
    row = StepReport(step, zero_share(model) if zeros is None else zeros, _file_bytes(model),
                     finetune_seconds=finetune_seconds)
    if evaluator is not None:
        say(callbacks, f"measuring: {step}")
        for key, value in evaluator.measure(model).items():
            setattr(row, key, value)
    return row


def _jsonable(opts: CompressOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, os.PathLike) else v for k, v in asdict(opts).items()}
