"""The "tutorial BiLSTM": the text classifier of the popular PyTorch tutorials and the Keras
IMDB examples, as a baseline for textlstm.

Every text is padded (at the end) or truncated (keeping its head) to one fixed length; no
packing, no length bucketing; the classifier reads the last hidden state of each direction of
`nn.LSTM` (for the forward direction that is the state after the padding, as in those
tutorials); Adam at 1e-3, batches of 64, a fixed number of epochs, no validation, no early
stopping: the weights after the last epoch are the model.

    vocab = build_vocab(train_tokens)                       # words seen at least twice
    ids = encode(train_tokens, vocab, max_len=400)          # (n, 400)
    model = TutorialBiLSTM(len(vocab), embedding_dim=100, hidden_size=128, n_labels=2)
    train(model, ids, torch.tensor(y), epochs=4)
    pred = predict(model, encode(test_tokens, vocab, 400))  # label ids
"""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

PAD, UNK = 0, 1


class TutorialBiLSTM(nn.Module):
    """Embedding → BiLSTM → [final forward state; final backward state] → dropout → linear."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, n_labels: int,
                 dropout: float = 0.5, vectors: torch.Tensor | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(vectors)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden_size, n_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (batch, seq, emb)
        _, (h_n, _) = self.lstm(emb)  # h_n: (2, batch, hidden)
        last = torch.cat([h_n[-2], h_n[-1]], dim=1)  # (batch, 2*hidden)
        return self.fc(self.dropout(last))  # (batch, labels)


def build_vocab(token_lists: Sequence[Sequence[str]], min_count: int = 2) -> dict[str, int]:
    """Words seen at least `min_count` times, most frequent first; 0 is padding, 1 unknown."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return {"<pad>": PAD, "<unk>": UNK, **{w: i for i, w in enumerate(words, start=2)}}


def encode(token_lists: Sequence[Sequence[str]], vocab: dict[str, int], max_len: int) -> torch.Tensor:
    """`(n, max_len)` ids: the first `max_len` tokens of each text, padded at the end."""
    out = np.full((len(token_lists), max_len), PAD, dtype=np.int64)
    for row, tokens in enumerate(token_lists):
        ids = [vocab.get(t, UNK) for t in tokens[:max_len]]
        out[row, :len(ids)] = ids
    return torch.from_numpy(out)


def load_vectors(path: str | Path, vocab: dict[str, int], dim: int, seed: int = 0
                 ) -> tuple[torch.Tensor, float]:
    """An embedding matrix from a GloVe-format text file (gzip allowed): found words get their
    vector, the others N(0, σ) with σ the spread of the found vectors, padding zeros. Returns
    the matrix and the share of vocabulary words found."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((len(vocab), dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            word, _, rest = line.rstrip().partition(" ")
            i = vocab.get(word)
            if i is not None and i > UNK:
                matrix[i] = np.array(rest.split(), dtype=np.float32)
                found[i] = True
    std = float(matrix[found].std()) if found.any() else 1.0
    missing = ~found
    missing[PAD] = False
    matrix[missing] = rng.normal(0.0, std, size=(int(missing.sum()), dim))
    return torch.from_numpy(matrix), float(found[2:].mean()) if len(vocab) > 2 else 0.0


def train(model: TutorialBiLSTM, ids: torch.Tensor, labels: torch.Tensor, epochs: int,
          batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Adam, cross-entropy, shuffled batches; returns the mean loss of each epoch."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(ids))
        total = 0.0
        for start in range(0, len(ids), batch_size):
            batch = order[start:start + batch_size]
            loss = loss_fn(model(ids[batch]), labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        losses.append(total / max(1, len(ids)))
    return losses


@torch.inference_mode()
def predict(model: TutorialBiLSTM, ids: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Predicted label ids, in order."""
    model.eval()
    out = [model(ids[i:i + batch_size]).argmax(dim=1) for i in range(0, len(ids), batch_size)]
    return torch.cat(out).numpy() if out else np.empty(0, dtype=np.int64)
