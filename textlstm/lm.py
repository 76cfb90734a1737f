"""Pretraining the encoder as a bidirectional language model on unlabelled text
(`textlstm pretrain-lm`), and the pretrained encoder a classifier starts from (`train --encoder`).

The forward direction's state after token t predicts token t+1; the backward direction, which
has read the text from its end back to t, predicts token t-1: ELMo's two language models
(Peters et al. 2018) sharing one embedding layer, scored by one adaptive softmax (Grave et al.
2017) so that a large vocabulary stays cheap. A classifier then takes the vocabulary, the
embeddings and the recurrent layers; its pooling and head start fresh, and `train.freeze`
freezes the recurrent layers together with the embeddings (so the new head is fitted first,
then everything is trained: ULMFiT's gradual unfreezing in two stages).

The encoder directory is a model directory (`artifact.py`) with no labels, the embedding and
encoder tensors only, and `meta.kind = "bilm-encoder"`. Only one-layer encoders are pretrained:
in a stacked bidirectional encoder the upper forward layer would read the lower backward
layer, which has already seen the word to predict.
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import precision
from .artifact import Artifact, load_artifact, save_artifact
from .batching import EncodedDataset, bucket_batches, iterate, padding_share, sorted_batches
from .callbacks import Callback
from .config import Config, ModelConfig
from .corpus import load_corpus
from .errors import ConfigError, ModelFileError, TrainingError
from .model import TextLSTM, expected_shapes
from .tokenize import Tokenizer
from .optim import make_optimizer, make_scheduler
from .train import n_batches, setup_threads
from .vocab import Vocab
from .vocab_vectors import vocab_and_vectors

KIND = "bilm-encoder"
PREFIXES = ("embedding.", "encoder.")
TOKEN_SETTINGS = ("kind", "lang", "lower", "strip_html")  # what makes two tokenizers agree
SHAPE_SETTINGS = ("embedding_dim", "hidden_size", "num_layers", "bidirectional", "cell", "residual")
NOT_ENCODER = ("not a pretrained encoder (textlstm pretrain-lm); a trained classifier cannot be "
               "used as --encoder")
VAL_SHARE = 0.01  # held-out texts for the perplexity reported each epoch


class BiLM(nn.Module):
    """`TextLSTM`'s embedding and encoder, with an adaptive softmax over the vocabulary.
    `forward(ids, lengths)` returns the summed negative log-likelihood of every predicted
    token and their number."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, embeddings: torch.Tensor | None = None):
        super().__init__()
        if cfg.num_layers != 1 or not cfg.bidirectional:
            raise ConfigError("Language-model pretraining needs model.num_layers = 1 and "
                              f"model.bidirectional = true (got {cfg.num_layers} and "
                              f"{str(cfg.bidirectional).lower()}): a stacked bidirectional encoder "
                              "lets each direction see the words it must predict.")
        self.net = TextLSTM(cfg, vocab_size, 2, embeddings)  # its pooling and head stay unused
        self.hidden = cfg.hidden_size
        self.dropout = nn.Dropout(cfg.dropout)
        cutoffs = [c for c in (2_000, 10_000) if c < vocab_size - 1] or [max(1, (vocab_size - 1) // 2)]
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden_size, vocab_size, cutoffs, div_value=4.0)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
        emb = self.net.embedding_dropout(self.net.embedding(ids))
        states, _ = self.net.encoder(emb, lengths)  # (batch, seq, 2H)
        seq = ids.shape[1]
        steps = torch.arange(seq - 1, device=ids.device)[None, :]
        real = steps + 1 < lengths.to(ids.device)[:, None]  # pairs (t, t+1) inside a text
        forward = states[:, :-1, :self.hidden][real]  # predicts the next word
        backward = states[:, 1:, self.hidden:][real]  # predicts the previous word
        inputs = self.dropout(torch.cat([forward, backward]).float())
        targets = torch.cat([ids[:, 1:][real], ids[:, :-1][real]])
        if len(targets) == 0:
            return inputs.sum() * 0.0, 0
        # In float32: the module's index_copy_ needs one dtype throughout. Rewriting its loss to
        # run the projections in bfloat16 was measured and gained nothing (1.00-1.02x tokens/s).
        with torch.autocast(inputs.device.type, enabled=False):
            return self.softmax(inputs, targets).loss * len(targets), len(targets)


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * VAL_SHARE))) if n >= 20 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@torch.no_grad()
def perplexity(model: BiLM, data: EncodedDataset, batch_size: int = 64) -> float:
    model.eval()
    total, count = 0.0, 0
    for _, ids, lengths, _ in iterate(data, sorted_batches(data.lengths, batch_size)):
        loss, n = model(ids, lengths)
        total, count = total + float(loss), count + n
    model.train()
    return math.exp(total / count) if count else float("nan")


def pretrain_lm(data: str | os.PathLike, out_dir: str | os.PathLike, cfg: Config, *,
                vectors: str | os.PathLike | None = None, callbacks: list[Callback] | None = None
                ) -> tuple[Path, list[dict[str, Any]]]:
    """Train a bidirectional language model on the texts of `data` (one per line, or any data
    file) with `cfg`'s tokenizer, vocabulary, model and training settings (epochs, batch size,
    LR, schedule, clipping, `amp`), starting from `vectors` if given; save the encoder to
    `out_dir`. Runs on the CPU. Returns the directory and one record per epoch."""
    cfg.validate()
    if cfg.train.schedule == "plateau":
        raise ConfigError("pretrain-lm has no validation score to drive train.schedule = \"plateau\"; "
                          "use cosine, linear, onecycle or constant.")
    if cfg.train.device not in ("auto", "cpu"):
        raise ConfigError(f"pretrain-lm runs on the CPU; train.device = {cfg.train.device!r} is not supported.")
    callbacks = callbacks or []
    corpus = load_corpus(data, cfg.data, Tokenizer(cfg.tokenizer), labelled=False)
    for cb in callbacks:
        cb.on_info(corpus.report.summary())
    counts = Counter(t for toks in corpus.tokens for t in toks)
    vocab, matrix, coverage = vocab_and_vectors(cfg, counts, vectors, callbacks)
    encoded = EncodedDataset.encode(corpus.tokens, vocab)
    train_idx, val_idx = _split(len(encoded), cfg.train.seed)
    train = EncodedDataset([encoded.ids[i] for i in train_idx], None)
    val = EncodedDataset([encoded.ids[i] for i in val_idx], None)
    setup_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    model = BiLM(cfg.model, len(vocab), torch.from_numpy(matrix) if matrix is not None else None)
    optimizer = make_optimizer(model.net, cfg.train)
    optimizer.add_param_group({"params": list(model.softmax.parameters()),
                               "weight_decay": cfg.train.weight_decay, "lr": cfg.train.lr})
    per_epoch = n_batches(len(train), cfg.train.batch_size, cfg.train.bucket_chunk)
    scheduler = make_scheduler(optimizer, cfg.train, cfg.train.epochs * per_epoch)
    history: list[dict[str, Any]] = []
    model.train()
    for epoch in range(1, cfg.train.epochs + 1):
        batches = bucket_batches(train.lengths, cfg.train.batch_size, cfg.train.bucket_chunk,
                                 np.random.default_rng([cfg.train.seed, epoch]))
        for cb in callbacks:
            cb.on_epoch_start(epoch, len(batches), False)
        start = time.perf_counter()
        total, count, tokens = _epoch(model, optimizer, scheduler, train, batches, cfg, epoch, callbacks)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": optimizer.param_groups[0]["lr"],
                  "padding_share": padding_share(batches, train.lengths),
                  "train_perplexity": math.exp(total / max(count, 1)),
                  "val_perplexity": perplexity(model, val) if len(val) else None,
                  "seconds": seconds, "tokens_per_s": tokens / seconds if seconds > 0 else 0.0}
        history.append(record)
        for cb in callbacks:
            cb.on_epoch_end(record)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()
               if k.startswith(PREFIXES)}
    meta = {"kind": KIND, "history": history, "n_texts": len(train), "n_val_texts": len(val),
            "coverage": coverage and coverage.summary(), "vectors": str(vectors) if vectors else None}
    return save_artifact(out_dir, Artifact(cfg.to_dict(), [], vocab, tensors, meta)), history


def _epoch(model: BiLM, optimizer, scheduler, train: EncodedDataset, batches, cfg: Config, epoch: int,
           callbacks: list[Callback]) -> tuple[float, int, int]:
    """One pass over `batches`; returns the summed loss, predicted words and real tokens."""
    amp = precision.amp_dtype(torch.device("cpu"), cfg.train.amp)
    total, count, tokens = 0.0, 0, 0
    for step, (_, ids, lengths, _) in enumerate(iterate(train, batches), start=1):
        with precision.autocast(torch.device("cpu"), amp):
            loss, n = model(ids, lengths)
        value, real = float(loss.detach()), int(lengths.sum())
        if not math.isfinite(value):
            raise TrainingError(f"Non-finite loss ({value}) at epoch {epoch}, step {step}; nothing was "
                                "saved. Lower train.lr or set train.clip_norm.")
        if n:
            optimizer.zero_grad(set_to_none=True)
            (loss / n).backward()
            if cfg.train.clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_norm)
            optimizer.step()
        scheduler.step()
        del loss  # its graph goes before the next step builds one
        total, count, tokens = total + value, count + n, tokens + real
        for cb in callbacks:
            cb.on_step(epoch, step, value / max(n, 1), real, optimizer.param_groups[0]["lr"])
    return total, count, tokens


class _NotEncoder(Exception):
    """A directory with labels: a classifier's, named as such by `load_encoder`."""


def _encoder_shapes(config: dict, vocab_size: int, n_labels: int) -> dict[str, tuple[int, ...]]:
    if n_labels:
        raise _NotEncoder
    shapes = expected_shapes(ModelConfig(**config["model"]), vocab_size, 2)
    return {k: v for k, v in shapes.items() if k.startswith(PREFIXES)}


def load_encoder(directory: str | os.PathLike) -> Artifact:
    """A directory written by `pretrain_lm`, checked like a model directory."""
    try:
        art = load_artifact(directory, expected_shapes=_encoder_shapes)
    except _NotEncoder:
        raise ModelFileError(f"{directory}: {NOT_ENCODER}") from None
    if art.meta.get("kind") != KIND:
        raise ModelFileError(f"{directory}: {NOT_ENCODER}")
    return art


def check_compatible(encoder: Artifact, cfg: Config, where: str) -> None:
    """The classifier must tokenize like the encoder and have its layer sizes."""
    enc = Config.from_dict(encoder.config, where)
    wrong = [f"model.{k}: encoder {getattr(enc.model, k)!r}, classifier {getattr(cfg.model, k)!r}"
             for k in SHAPE_SETTINGS if getattr(enc.model, k) != getattr(cfg.model, k)]
    wrong += [f"tokenizer.{k}: encoder {getattr(enc.tokenizer, k)!r}, classifier {getattr(cfg.tokenizer, k)!r}"
              for k in TOKEN_SETTINGS if getattr(enc.tokenizer, k) != getattr(cfg.tokenizer, k)]
    if wrong:
        raise ConfigError(f"The encoder in {where} does not fit these settings: " + "; ".join(wrong)
                          + ". Train with the settings the encoder was pretrained with.")


def start_from_encoder(encoder: Artifact, counts: Counter, cfg: Config, n_labels: int
                       ) -> tuple[Any, TextLSTM]:
    """The classifier's vocabulary (the encoder's, then the most frequent training words it
    lacks, seen `vocab.min_freq` times, up to `vocab.max_size` words in all) and a model whose
    embeddings and recurrent layers are the encoder's; new words get random vectors of the
    encoder embeddings' spread."""
    seen = Vocab.build([], cfg.vocab.min_freq, None, counter=Counter(counts))  # its ranking
    vocab = Vocab(encoder.vocab.itos, case_fallback=cfg.vocab.case_fallback).extended(
        seen.itos[2:], cfg.vocab.max_size)
    old = encoder.tensors["embedding.weight"]
    rng = torch.Generator().manual_seed(cfg.train.seed)
    extra = torch.randn(len(vocab) - len(encoder.vocab), old.shape[1], generator=rng) * old[2:].std()
    model = TextLSTM(cfg.model, len(vocab), n_labels, torch.cat([old, extra]))
    model.encoder.load_state_dict({k[len("encoder."):]: v for k, v in encoder.tensors.items()
                                   if k.startswith("encoder.")})
    model.pretrained_encoder = True
    return vocab, model
