"""Pretraining the encoder as a bidirectional language model on unlabelled text
(`textlstm pretrain-lm`), and the pretrained encoder a classifier starts from (`train --encoder`).

The forward direction's state after token t predicts token t+1; the backward direction, which
has read the text from its end back to t, predicts token t-1: ELMo's two language models
(Peters et al. 2018) sharing one embedding layer, scored by one adaptive softmax (Grave et al.
2017) so that a large vocabulary stays cheap. A classifier then takes the vocabulary, the
embeddings and the recurrent layers; its pooling and head start fresh, and `train.freeze`
freezes the recurrent layers together with the embeddings (so the new head is fitted first,
then everything is trained: ULMFiT's gradual unfreezing in two stages).

The encoder directory is a model directory (`model/artifact.py`) with no labels, the embedding and
encoder tensors only, and `meta.kind = "bilm-encoder"`. Only one-layer encoders are pretrained:
in a stacked bidirectional encoder the upper forward layer would read the lower backward
layer, which has already seen the word to predict.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..callbacks import Callback, say
from ..config import Config, ModelConfig
from ..data.batching import EncodedDataset, iterate, sorted_batches
from ..data.tokencache import load_corpus
from ..data.tokenize import Tokenizer
from ..data.vocab import Vocab
from ..embeddings.matrix import VectorsArg, vocab_and_vectors, with_sources
from ..errors import ConfigError, ModelFileError
from ..model.artifact import Artifact, load_artifact, save_artifact
from ..model.network import TextLSTM, expected_shapes
from . import distributed
from .freezing import run_freeze

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
        emb = self.net.embedding_dropout(self.net.word_dropout(self.net.embedding(ids)))
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

    # What the training loop and `optim.make_optimizer` use of a `TextLSTM`.
    @property
    def embedding(self) -> nn.Embedding:
        return self.net.embedding

    @property
    def embeddings_frozen(self) -> bool:
        return self.net.embeddings_frozen

    def freeze_embeddings(self, frozen: bool, encoder: bool = False) -> None:
        self.net.freeze_embeddings(frozen, encoder)


class LanguageModelling:
    """The training loop's objective for a `BiLM`: the mean negative log-likelihood of the
    batch's predicted words; validation reports the held-out perplexity, and the score is the
    negative held-out loss. One process only (pretrain-lm runs on the CPU)."""

    def to(self, device: torch.device) -> "LanguageModelling":
        return self

    def loss(self, net, ids, lengths, labels, batch, weight):
        loss, n = net(ids, lengths)
        return loss * (weight / max(n, 1))

    def validate(self, model, data, device, dist):
        ppl = perplexity(model, data)
        return {"val_perplexity": ppl}, -math.log(ppl)


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * VAL_SHARE))) if n >= 20 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@torch.no_grad()
def perplexity(model: BiLM, data: EncodedDataset, batch_size: int = 64) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for _, ids, lengths, _ in iterate(data, sorted_batches(data.lengths, batch_size)):
        loss, n = model(ids, lengths)
        total, count = total + float(loss), count + n
    model.train(was_training)
    return math.exp(total / count) if count else float("nan")


def pretrain_lm(data: str | os.PathLike, out_dir: str | os.PathLike, cfg: Config, *,
                vectors: VectorsArg = None, callbacks: list[Callback] | None = None
                ) -> tuple[Path, list[dict[str, Any]]]:
    """Train a bidirectional language model on the texts of `data` (one per line, or any data
    file) with `cfg`'s tokenizer, vocabulary, model and training settings (epochs, batch size,
    LR, schedule, clipping, `amp`, `patience`, `ema_decay`), starting from `vectors` if given;
    save the encoder with the best held-out perplexity to `out_dir`. The embeddings train from
    the start (`train.freeze` does not apply). Runs on the CPU, in one process, through the
    training loop of `trainer.py`. Returns the directory and one record per epoch."""
    cfg.validate()
    if cfg.train.device not in ("auto", "cpu"):
        raise ConfigError(f"pretrain-lm runs on the CPU; train.device = {cfg.train.device!r} is not supported.")
    if distributed.launched():
        raise ConfigError("pretrain-lm runs in one process; start it without torchrun.")
    corpus = load_corpus(data, cfg.data, Tokenizer(cfg.tokenizer), labelled=False)
    say(callbacks, corpus.report.summary())
    counts = Counter(t for toks in corpus.tokens for t in toks)
    cfg = with_sources(cfg, vectors)  # recorded in the encoder's config.json
    embedded = vocab_and_vectors(cfg, counts, callbacks)
    cfg = embedded.settings(cfg)  # the sources decide the embedding dimension
    vocab, matrix = embedded.vocab, embedded.matrix
    encoded = EncodedDataset.encode(corpus.tokens, vocab)
    train_idx, val_idx = _split(len(encoded), cfg.train.seed)
    train = EncodedDataset([encoded.ids[i] for i in train_idx], None)
    val = EncodedDataset([encoded.ids[i] for i in val_idx], None)
    torch.manual_seed(cfg.train.seed)
    model = BiLM(cfg.model, len(vocab), torch.from_numpy(matrix) if matrix is not None else None)
    settings = dataclasses.replace(run_freeze(cfg.train, pretrained=False, purpose="pretrain-lm"), device="cpu")
    from .trainer import Trainer  # here: a classifier that loads an encoder never imports the loop

    result = Trainer(model, settings, train, val, objective=LanguageModelling(), callbacks=callbacks).fit()
    history = [{**h, "train_perplexity": math.exp(h["train_loss"])} for h in result.history]
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()
               if k.startswith(PREFIXES)}
    meta = {"kind": KIND, "history": history, "best_epoch": result.best_epoch, "n_texts": len(train),
            "n_val_texts": len(val), "coverage": embedded.coverage_summary(),
            "vector_sources": [src.record() for src in embedded.sources],
            "vectors": cfg.embeddings.vectors or None}
    return save_artifact(out_dir, Artifact(cfg.to_dict(), [], vocab, tensors, meta)), history


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
    return vocab, model
