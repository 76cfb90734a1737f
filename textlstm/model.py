"""The network: embedding, stacked (Bi)LSTM/GRU over packed sequences, pooling, classifier head.

Only `nn.Module`s live here: no loss, no file I/O, no device choice.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _map_packed(fn, packed: PackedSequence) -> PackedSequence:
    """Apply an element-wise function to the real (non-padding) steps of a packed batch."""
    return PackedSequence(fn(packed.data), packed.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)


class Encoder(nn.Module):
    """Stacked recurrent layers. Without residual connections the stack is one fused cuDNN/MKL
    module; with them, one module per layer so each layer's input can be added to its output
    (through a linear projection where the sizes differ)."""

    def __init__(self, input_size: int, cfg: ModelConfig):
        super().__init__()
        cell = CELLS[cfg.cell]
        self.residual = cfg.residual and cfg.num_layers > 1
        self.output_size = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        if not self.residual:
            self.layers = nn.ModuleList([cell(
                input_size, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)])
            self.projections = nn.ModuleList([nn.Identity()])
            return
        sizes = [input_size] + [self.output_size] * (cfg.num_layers - 1)
        self.layers = nn.ModuleList(
            cell(size, cfg.hidden_size, batch_first=True, bidirectional=cfg.bidirectional)
            for size in sizes)
        self.projections = nn.ModuleList(
            nn.Identity() if size == self.output_size else nn.Linear(size, self.output_size, bias=False)
            for size in sizes)

    def forward(self, packed: PackedSequence) -> tuple[PackedSequence, torch.Tensor]:
        """Returns the packed outputs of the top layer and its final hidden states
        `(directions, batch, hidden)`."""
        h_n = None
        for i, (layer, proj) in enumerate(zip(self.layers, self.projections)):
            if i > 0:
                packed = _map_packed(self.dropout, packed)
            out, h_n = layer(packed)
            if self.residual and i > 0:
                out = PackedSequence(out.data + proj(packed.data), out.batch_sizes,
                                     out.sorted_indices, out.unsorted_indices)
            packed = out
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        directions = 2 if self.layers[-1].bidirectional else 1
        return packed, h_n[-directions:]


class AdditiveAttention(nn.Module):
    """Bahdanau-style scores `v^T tanh(W h)`, softmax over the real tokens only."""

    def __init__(self, size: int, attention_dim: int):
        super().__init__()
        self.proj = nn.Linear(size, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(torch.tanh(self.proj(states))).squeeze(-1)  # (batch, seq)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (batch, seq), 0 on padding
        pooled = torch.bmm(weights.unsqueeze(1), states).squeeze(1)  # (batch, size)
        return pooled, weights


class TextLSTM(nn.Module):
    """Embedding → dropout → stacked (Bi)LSTM/GRU → pooling → classifier head.

    `forward(ids, lengths)` returns `(logits, attention)`; attention is `(batch, seq)` weights
    that sum to 1 over each text's real tokens, or None when the pooling has no attention.

    >>> m = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4), vocab_size=10, n_labels=2)
    >>> logits, att = m(torch.tensor([[2, 3, 0]]), torch.tensor([2]))
    >>> tuple(logits.shape), tuple(att.shape)
    ((1, 2), (1, 3))
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_labels: int,
                 embeddings: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=0)
        if embeddings is not None:
            if tuple(embeddings.shape) != (vocab_size, cfg.embedding_dim):
                raise ValueError(f"embedding matrix {tuple(embeddings.shape)} does not match "
                                 f"({vocab_size}, {cfg.embedding_dim})")
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
        self.embedding_dropout = nn.Dropout(cfg.embedding_dropout)
        self.encoder = Encoder(cfg.embedding_dim, cfg)
        size = self.encoder.output_size
        self.poolings = cfg.pooling.split("+")
        self.attention = AdditiveAttention(size, cfg.attention_dim) if "attention" in self.poolings else None
        pooled = size * len(self.poolings)
        layers: list[nn.Module] = [nn.Dropout(cfg.dropout)]
        if cfg.head_hidden > 0:
            layers += [nn.Linear(pooled, cfg.head_hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            pooled = cfg.head_hidden
        layers.append(nn.Linear(pooled, n_labels))
        self.head = nn.Sequential(*layers)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq = ids.shape
        emb = self.embedding_dropout(self.embedding(ids))  # (batch, seq, emb)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, last = self.encoder(packed)
        states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seq)  # (batch, seq, out)
        mask = torch.arange(seq, device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        pooled, attention = [], None
        for name in self.poolings:
            if name == "attention":
                vec, attention = self.attention(states, mask)
            elif name == "max":
                vec = states.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
            elif name == "mean":
                vec = states.sum(dim=1) / lengths.to(states)[:, None]
            else:  # last: final forward state and final backward state
                vec = last.transpose(0, 1).reshape(batch, -1)  # (batch, directions*hidden)
            pooled.append(vec)
        return self.head(torch.cat(pooled, dim=-1)), attention  # (batch, labels)

    def freeze_embeddings(self, frozen: bool) -> None:
        self.embedding.weight.requires_grad_(not frozen)

    @property
    def embeddings_frozen(self) -> bool:
        return not self.embedding.weight.requires_grad


def expected_shapes(cfg: ModelConfig, vocab_size: int, n_labels: int) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes a model with these settings has (used to check loaded files)."""
    with torch.device("meta"):
        model = TextLSTM(cfg, vocab_size, n_labels)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
