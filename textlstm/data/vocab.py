"""`Vocab`: tokens to ids and back, with the familiar torchtext surface."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import ModelFileError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Vocab:
    """Maps tokens to ids. `<pad>` is 0 and `<unk>` is 1; unknown tokens map to `<unk>`.
    With `case_fallback`, a token the vocabulary lacks is looked up lowercased before it
    becomes `<unk>` (for models that keep case: "Berlin", never seen, reads as "berlin").

    >>> v = Vocab.build([["a", "b", "a"]])
    >>> v.lookup_indices(["a", "zzz"])
    [2, 1]
    >>> Vocab(v.itos, case_fallback=True).lookup_indices(["A", "B", "Zzz"])
    [2, 3, 1]
    """

    def __init__(self, itos: Sequence[str], case_fallback: bool = False):
        self.case_fallback = case_fallback
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError(f"a Vocab starts with {PAD!r}, {UNK!r}; got {list(itos[:2])}")
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {}
        for i, tok in enumerate(self.itos):
            self.stoi.setdefault(tok, i)
        if len(self.stoi) != len(self.itos):
            raise ValueError("a Vocab's tokens must be unique")

    @classmethod
    def build(
        cls,
        token_streams: Iterable[Iterable[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        extra_words: Iterable[str] = (),
        counter: Counter | None = None,
    ) -> "Vocab":
        """Count tokens and keep those seen `min_freq` times, most frequent first, ties
        alphabetical; at most `max_size` tokens besides the specials. `extra_words` (for example
        words that have a pretrained vector) are kept whenever seen at least once."""
        counts = counter if counter is not None else Counter()
        for tokens in token_streams:
            counts.update(tokens)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        extra = set(extra_words)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [w for w, c in ranked if c >= min_freq or w in extra]
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK, *kept])

    def extended(self, words: Iterable[str], max_size: int | None = None) -> "Vocab":
        """This vocabulary, then `words` it lacks in their order, up to `max_size` tokens
        besides the specials (never fewer than it has); `case_fallback` is kept.

        >>> Vocab.build([["a"]]).extended(["b", "a", "c"], max_size=2).itos
        ['<pad>', '<unk>', 'a', 'b']
        """
        new = [w for w in dict.fromkeys(words) if w not in self.stoi]
        if max_size is not None:
            new = new[:max(0, max_size + 2 - len(self))]
        return Vocab(self.itos + new, case_fallback=self.case_fallback)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.lookup_indices([token])[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def lookup_indices(self, tokens: Iterable[str]) -> list[int]:
        get = self.stoi.get
        if self.case_fallback:
            return [get(t) or get(t.lower(), UNK_ID) for t in tokens]  # id 0 is <pad>, never a token's
        return [get(t, UNK_ID) for t in tokens]

    def lookup_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        """One token per line, in id order (tokens never contain newlines: the tokenizer
        splits on whitespace)."""
        Path(path).write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"Cannot read vocabulary {path}: {exc}") from exc
        itos = text.split("\n")
        if itos and itos[-1] == "":
            itos.pop()
        try:
            return cls(itos)
        except ValueError as exc:
            raise ModelFileError(f"Vocabulary {path} is corrupt: {exc}") from exc
