"""Several trained networks as one: their probabilities averaged, returned as logits.

`EnsembleModule(members, vocabs, labels)` takes each member network with its vocabulary and
label order. Its input ids index the union of the members' vocabularies (`union_vocab`), and
each member sees them translated into its own ids, so members trained with different vectors
or data splits combine. Its output is the log of the (weighted) mean of the members'
probabilities, so `softmax` of it is the mean distribution (single-label) and `sigmoid` of it
each label's mean probability (multi-label): every caller of a `TextLSTM` works unchanged.
The averaging runs in log space (`logsumexp`), so confident members never give -inf.

>>> from textlstm.config import ModelConfig
>>> from textlstm.model.network import TextLSTM
>>> v = Vocab(["<pad>", "<unk>", "good", "bad"])
>>> a, b = (TextLSTM(ModelConfig(hidden_size=4, embedding_dim=4), 4, 2) for _ in range(2))
>>> e = EnsembleModule([a, b], [v, v], [["neg", "pos"]] * 2, weights=[1.0, 1.0], multilabel=False)
>>> ids, lengths = torch.tensor([[2, 3]]), torch.tensor([2])
>>> mean = (a(ids, lengths)[0].softmax(1) + b(ids, lengths)[0].softmax(1)) / 2
>>> bool(torch.allclose(e(ids, lengths)[0].softmax(1), mean, atol=1e-6))
True
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..data.vocab import Vocab


def union_vocab(vocabs: Sequence[Vocab]) -> Vocab:
    """The first vocabulary's tokens in its order, then each next one's new tokens in theirs."""
    itos, seen = [], set()
    for vocab in vocabs:
        for tok in vocab.itos:
            if tok not in seen:
                seen.add(tok)
                itos.append(tok)
    return Vocab(itos, case_fallback=vocabs[0].case_fallback)


class EnsembleModule(nn.Module):
    """`forward(ids, lengths)` → `(log of the mean probabilities (batch, labels), the members'
    mean attention (batch, seq) or None when any member has no attention pooling)`; labels in the
    first member's order."""

    def __init__(self, members: Sequence[nn.Module], vocabs: Sequence[Vocab], labels: Sequence[Sequence[str]],
                 *, weights: Sequence[float], multilabel: bool):
        super().__init__()
        if not len(members) == len(vocabs) == len(labels) == len(weights):
            raise ValueError("one vocabulary, label list and weight per member")
        self.members = nn.ModuleList(members)
        self.multilabel = multilabel
        self.n_labels = len(labels[0])
        union = union_vocab(vocabs)
        for i, (vocab, names) in enumerate(zip(vocabs, labels)):
            # what the member itself would look up for each union token (its case fallback included)
            self.register_buffer(f"remap_{i}", torch.tensor(vocab.lookup_indices(union.itos), dtype=torch.long))
            position = {name: j for j, name in enumerate(names)}
            self.register_buffer(f"order_{i}", torch.tensor([position[n] for n in labels[0]], dtype=torch.long))
        total = float(sum(weights))
        self.register_buffer("weights", torch.tensor([w / total for w in weights], dtype=torch.float32))
        self.register_buffer("log_weights", torch.tensor([math.log(w / total) for w in weights]))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        log_p, log_q, attention = [], [], []
        for i, member in enumerate(self.members):
            logits, att = member(getattr(self, f"remap_{i}")[ids], lengths)
            logits = logits.float().index_select(1, getattr(self, f"order_{i}"))
            if self.multilabel:
                log_p.append(F.logsigmoid(logits))
                log_q.append(F.logsigmoid(-logits))  # log(1 - p)
            else:
                log_p.append(torch.log_softmax(logits, dim=1))
            attention.append(att)
        shift = self.log_weights[:, None, None]
        out = torch.logsumexp(torch.stack(log_p) + shift, dim=0)  # log of the weighted mean probability
        if self.multilabel:  # logit of the mean: log p̄ - log(1 - p̄)
            out = out - torch.logsumexp(torch.stack(log_q) + shift, dim=0)
        if any(a is None for a in attention):
            return out, None
        return out, (torch.stack([a.float() for a in attention]) * self.weights[:, None, None]).sum(dim=0)
