"""Adversarial training, virtual adversarial training (VAT) and entropy minimisation: a
classification objective wrapped with the losses of Miyato, Dai & Goodfellow (2017) and Sachan,
Zaheer & Salakhutdinov (2019), on labelled and (with `unlabelled`) unlabelled texts.

Per step, besides the labelled batch's loss:

- `train.adversarial` = ε > 0: the gradient g of the loss with respect to the batch's word
  embeddings is found (a forward and backward pass of the plain module, no parameter update);
  each text's embeddings are moved by r = ε·s·g/‖g‖ (the norm over the text's tokens; s the
  batch's mean token-vector norm, so ε is relative to the embeddings' scale) and the loss on
  the moved batch is added with weight 1.
- `train.vat` = weight > 0: for the unlabelled batch (or the labelled one without unlabelled
  texts) the direction d to which the predictions are most sensitive is found by
  `train.vat_iterations` power iterations from a random direction (ξ = 1e-6·s), and
  KL(p(x) ‖ p(x + ε_vat·s·d)) is added, p(x) held fixed.
- `train.entropy_min` = weight > 0: the mean entropy of the predictions on that batch is added.

Every loss term of a step comes out of one forward pass of the (distributed) network over the
batches concatenated, so DistributedDataParallel sees one forward and one backward as usual.
Unlabelled batches are length-bucketed like the labelled ones, per epoch from the seed and the
epoch: step k of an epoch takes the k-th (cycling), so a resumed run draws the same ones; under
torchrun each rank takes its share. Multi-label models use a Bernoulli KL and entropy per label.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import TrainConfig
from ..data.batching import EncodedDataset, bucket_batches, collate
from ..data.vocab import PAD_ID
from . import distributed

XI = 1e-6  # VAT's finite-difference step, relative to the embeddings' scale


def regularised(objective: Any, cfg: TrainConfig, unlabelled: EncodedDataset | None, global_batch: int,
                dist: distributed.Dist) -> Any:
    """`objective` wrapped when the settings ask for any of the three losses, else itself."""
    if not (cfg.adversarial or cfg.vat or cfg.entropy_min):
        return objective
    return Regularised(objective, cfg, unlabelled, global_batch, dist)


class Regularised:
    """A classification objective (`loss_from_logits`, `multilabel`) with the added losses."""

    def __init__(self, base: Any, cfg: TrainConfig, unlabelled: EncodedDataset | None, global_batch: int,
                 dist: distributed.Dist):
        self.base, self.cfg, self.unlabelled, self.dist = base, cfg, unlabelled, dist
        self.global_batch = global_batch
        self._epoch, self._step, self._batches = 0, 0, []

    def to(self, device: torch.device) -> "Regularised":
        self.base.to(device)
        return self

    def validate(self, model, data, device, dist):
        return self.base.validate(model, data, device, dist)

    def begin_step(self, epoch: int, step: int) -> None:
        """Called by the trainer before each step: which unlabelled batch this step takes."""
        if self.unlabelled is not None and epoch != self._epoch:
            rng = np.random.default_rng([self.cfg.seed, epoch, 1])
            self._batches = bucket_batches(self.unlabelled.lengths, self.global_batch, self.cfg.bucket_chunk, rng)
        self._epoch, self._step = epoch, step

    # -- the loss ---------------------------------------------------------------------------
    def loss(self, net: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor | None,
             batch: np.ndarray, weight: float) -> torch.Tensor:
        cfg, raw = self.cfg, getattr(net, "module", net)  # the plain module finds directions
        device = ids.device
        scale = _token_norm(raw, ids, lengths)
        parts = [(ids, lengths, None)]
        if cfg.adversarial:
            grad = self._loss_gradient(raw, ids, lengths, labels, batch)
            parts.append((ids, lengths, cfg.adversarial * scale * _unit(grad)))
        u_ids, u_lengths, n_u = self._unlabelled_batch(ids, lengths, device)
        target = None
        if cfg.vat:
            with torch.no_grad():
                target = self._probabilities(raw(u_ids, u_lengths)[0]).detach()
            direction = self._sensitive_direction(raw, u_ids, u_lengths, target, scale)
            parts.append((u_ids, u_lengths, cfg.vat_epsilon * scale * direction))
        if cfg.entropy_min:
            parts.append((u_ids, u_lengths, None))
        logits = _forward_all(net, parts)
        total = self.base.loss_from_logits(logits[0], labels, batch, weight)
        if cfg.adversarial:
            total = total + self.base.loss_from_logits(logits[1], labels, batch, weight)
        share = weight / float(n_u)  # this rank's texts over the global (unlabelled) batch
        at = 1 + bool(cfg.adversarial)
        if cfg.vat:
            total = total + cfg.vat * self._divergence(target, logits[at]).sum() * share
            at += 1
        if cfg.entropy_min:
            total = total + cfg.entropy_min * self._entropy(logits[at]).sum() * share
        return total

    def _loss_gradient(self, raw, ids, lengths, labels, batch) -> torch.Tensor:
        zero = torch.zeros(*ids.shape, raw.embedding.embedding_dim, device=ids.device, requires_grad=True)
        loss = self.base.loss_from_logits(raw(ids, lengths, perturb=zero)[0], labels, batch, 1.0)
        return torch.autograd.grad(loss, zero)[0].detach()

    def _sensitive_direction(self, raw, ids, lengths, target, scale) -> torch.Tensor:
        mask = _mask(ids, lengths)
        d = _unit(torch.randn(*ids.shape, raw.embedding.embedding_dim, device=ids.device) * mask)
        for _ in range(self.cfg.vat_iterations):
            d = (XI * scale * d).requires_grad_(True)
            kl = self._divergence(target, raw(ids, lengths, perturb=d)[0]).sum()
            d = _unit(torch.autograd.grad(kl, d)[0].detach() * mask)
        return d

    def _unlabelled_batch(self, ids, lengths, device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """This rank's share of the step's unlabelled batch (else the labelled batch) and the
        size of the global batch it is a share of."""
        if self.unlabelled is None or not (self.cfg.vat or self.cfg.entropy_min):
            return ids, lengths, self.global_batch
        chosen = self._batches[(self._step - 1) % len(self._batches)]
        local = distributed.shard(chosen, self.dist)
        if len(local) == 0:
            local = chosen[:1]
        u_ids, u_lengths = collate([self.unlabelled.ids[i] for i in local])
        return u_ids.to(device), u_lengths, len(chosen)

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.sigmoid(logits) if self.base.multilabel else torch.softmax(logits, dim=-1)

    def _divergence(self, p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """KL(p ‖ q(logits)) per text (multi-label: summed Bernoulli KLs over the labels)."""
        logits = logits.float()
        if self.base.multilabel:
            log_q1, log_q0 = F.logsigmoid(logits), F.logsigmoid(-logits)
            p = p.clamp(1e-7, 1 - 1e-7)
            return (p * (p.log() - log_q1) + (1 - p) * ((1 - p).log() - log_q0)).sum(dim=-1)
        return (p * (p.clamp_min(1e-12).log() - F.log_softmax(logits, dim=-1))).sum(dim=-1)

    def _entropy(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.base.multilabel:
            q = torch.sigmoid(logits)
            return -(q * F.logsigmoid(logits) + (1 - q) * F.logsigmoid(-logits)).sum(dim=-1)
        log_q = F.log_softmax(logits, dim=-1)
        return -(log_q.exp() * log_q).sum(dim=-1)


def _mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(batch, seq, 1): 1 on a text's own tokens, 0 on padding."""
    seq = ids.shape[1]
    return (torch.arange(seq, device=ids.device)[None, :] < lengths.to(ids.device)[:, None]).unsqueeze(-1).float()


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each text's (batch, seq, emb) slice scaled to norm 1 (0 stays 0)."""
    norm = v.flatten(1).norm(dim=1).clamp_min(1e-12)
    return v / norm[:, None, None]


@torch.no_grad()
def _token_norm(raw: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> float:
    """The mean norm of the batch's real token vectors: the unit of ε."""
    norms = raw.embedding(ids).float().norm(dim=-1) * _mask(ids, lengths).squeeze(-1)
    return float(norms.sum() / lengths.sum().clamp_min(1))


def _forward_all(net: nn.Module, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
                 ) -> list[torch.Tensor]:
    """One forward pass over the batches stacked (padded to the longest), logits per batch."""
    seq = max(p[0].shape[1] for p in parts)
    ids = torch.cat([F.pad(p[0], (0, seq - p[0].shape[1]), value=PAD_ID) for p in parts])
    lengths = torch.cat([p[1] for p in parts])
    perturb = None
    if any(p[2] is not None for p in parts):
        dim = next(p[2] for p in parts if p[2] is not None).shape[-1]
        perturb = torch.cat([F.pad(p[2], (0, 0, 0, seq - p[2].shape[1])) if p[2] is not None else
                             torch.zeros(p[0].shape[0], seq, dim, device=ids.device) for p in parts])
    logits, _ = net(ids, lengths, perturb=perturb) if perturb is not None else net(ids, lengths)
    return list(torch.split(logits, [p[0].shape[0] for p in parts]))
