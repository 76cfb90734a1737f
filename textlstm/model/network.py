"""The network: embedding, stacked (Bi)LSTM/GRU/peephole LSTM exact under padding, pooling,
classifier head.

Only `nn.Module`s live here: no loss, no file I/O, no device choice.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .cells import PeepholeLSTM
from .directions import run_directions

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "peephole": PeepholeLSTM}


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's real steps, leaving padding at the end: `(batch, seq, dim)`.
    Its own inverse."""
    batch, seq = x.shape[:2]
    steps = torch.arange(seq, device=x.device)[None, :]  # (1, seq)
    lengths = lengths.to(x.device)[:, None]  # (batch, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (batch, seq)
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))


class Encoder(nn.Module):
    """Stacked recurrent layers over right-padded batches, exact for every real token.

    Each direction is its own unidirectional module. The forward one reads the padded batch as
    it is: padding comes after the real tokens, so it cannot reach them. The backward one reads
    each sequence reversed within its length, so it too starts on real tokens. This keeps the
    fused CPU kernels (oneDNN), which are several times faster for training than packed
    sequences, while a batch still gives the same outputs as its texts one by one. On long
    batches the two directions run side by side on two threads (`directions.py`). With
    `residual`, each layer's input is added to its output (projected where sizes differ).
    """

    def __init__(self, input_size: int, cfg: ModelConfig):
        super().__init__()
        cell = CELLS[cfg.cell]
        directions = 2 if cfg.bidirectional else 1
        self.residual = cfg.residual
        self.output_size = cfg.hidden_size * directions
        self.dropout = nn.Dropout(cfg.dropout)
        sizes = [input_size] + [self.output_size] * (cfg.num_layers - 1)
        self.layers = nn.ModuleList(
            nn.ModuleList(cell(size, cfg.hidden_size, batch_first=True) for _ in range(directions))
            for size in sizes)
        self.projections = nn.ModuleList(
            nn.Identity() if i == 0 or size == self.output_size or not cfg.residual
            else nn.Linear(size, self.output_size, bias=False)
            for i, size in enumerate(sizes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x (batch, seq, input)` → outputs `(batch, seq, output_size)` (padding positions
        hold unspecified values) and the final states of the top layer `(batch, output_size)`:
        the forward state after the last real token and the backward state after the first."""
        last_index = (lengths.to(x.device) - 1)[:, None, None]  # (batch, 1, 1)
        finals = []
        for i, (directions, proj) in enumerate(zip(self.layers, self.projections)):
            inp = self.dropout(x) if i > 0 else x
            seq_ins = [inp if d == 0 else reverse_within_length(inp, lengths) for d in range(len(directions))]
            outs, finals = [], []
            for d, out in enumerate(run_directions(directions, seq_ins)):  # (batch, seq, hidden)
                finals.append(out.gather(1, last_index.expand(-1, 1, out.shape[2])).squeeze(1))
                outs.append(out if d == 0 else reverse_within_length(out, lengths))
            out = torch.cat(outs, dim=-1)  # (batch, seq, directions*hidden)
            x = out + proj(inp) if self.residual and i > 0 else out
        return x, torch.cat(finals, dim=-1)


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
        self.cfg, self.n_labels = cfg, n_labels
        weight = torch.empty(vocab_size, cfg.embedding_dim)
        if weight.device.type != "meta":  # what nn.Embedding does; on the meta device (shape
            nn.init.normal_(weight)  # checks) normal_ would import torch's meta kernels: seconds
            with torch.no_grad():
                weight[0] = 0.0  # the padding row
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=0, _weight=weight)
        if embeddings is not None:
            if tuple(embeddings.shape) != (vocab_size, cfg.embedding_dim):
                raise ValueError(f"embedding matrix {tuple(embeddings.shape)} does not match "
                                 f"({vocab_size}, {cfg.embedding_dim})")
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
        # Word dropout (Iyyer et al. 2015): on (batch, seq, emb), Dropout1d zeroes whole token
        # vectors and scales the rest by 1 / (1 - p). Off, it is no module at all: no mask is
        # drawn, so the random stream of models without it is unchanged.
        self.word_dropout = nn.Dropout1d(cfg.word_dropout) if cfg.word_dropout else nn.Identity()
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

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, perturb: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, labels) and attention weights; `perturb` (batch, seq, emb) is added to
        the embeddings before dropout (adversarial and virtual adversarial training)."""
        batch, seq = ids.shape
        emb = self.embedding(ids)
        if perturb is not None:
            emb = emb + perturb.to(emb.dtype)
        emb = self.embedding_dropout(self.word_dropout(emb))  # (batch, seq, emb)
        states, last = self.encoder(emb, lengths)  # (batch, seq, out), (batch, out)
        mask = torch.arange(seq, device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        if "mean" in self.poolings:  # the other poolings never read padding: attention weighs
            states = states.masked_fill(~mask[..., None], 0.0)  # it 0 and max masks it itself
        pooled, attention = [], None
        for name in self.poolings:
            if name == "attention":
                vec, attention = self.attention(states, mask)
            elif name == "max":
                vec = states.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
            elif name == "mean":
                vec = states.sum(dim=1) / lengths.to(states)[:, None]
            else:  # last: final forward state and final backward state
                vec = last  # (batch, directions*hidden)
            pooled.append(vec)
        return self.head(torch.cat(pooled, dim=-1)), attention  # (batch, labels)

    def freeze_embeddings(self, frozen: bool, encoder: bool = False) -> None:
        """Freeze or unfreeze the pretrained parts: the embeddings, and with `encoder` the
        recurrent layers too (a classifier that starts from a pretrained encoder)."""
        self.embedding.weight.requires_grad_(not frozen)
        if encoder:
            self.encoder.requires_grad_(not frozen)

    @property
    def embeddings_frozen(self) -> bool:
        return not self.embedding.weight.requires_grad


def expected_shapes(cfg: ModelConfig, vocab_size: int, n_labels: int) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes a model with these settings has (used to check loaded files)."""
    with torch.device("meta"):
        model = TextLSTM(cfg, vocab_size, n_labels)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
