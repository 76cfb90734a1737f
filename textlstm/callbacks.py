"""`Callback`: the hooks a training loop calls (the CLI's progress display is one), `say` for
one line of information, and `EpochLines`: one plain text line per epoch for a stream the caller
chooses (the estimator's `verbose`). Upstream of every module that trains or reports."""
from __future__ import annotations

from typing import Any, TextIO


class Callback:
    """Hooks the loop calls; the CLI's progress display is one. All methods are optional."""

    def on_info(self, text: str) -> None: ...
    def on_epoch_start(self, epoch: int, n_batches: int, frozen: bool) -> None: ...
    def on_step(self, epoch: int, step: int, loss: float, tokens: int, lr: float) -> None: ...
    def on_validation(self, record: dict[str, Any]) -> None: ...
    def on_epoch_end(self, record: dict[str, Any]) -> None: ...


def say(callbacks: list[Callback] | None, text: str) -> None:
    """Pass one line of information to every callback."""
    for cb in callbacks or []:
        cb.on_info(text)


def validation_parts(r: dict[str, Any]) -> list[str]:
    """A validation record's scores: a classifier's accuracy and macro-F1, a language model's
    perplexity."""
    parts = []
    if "val_micro_f1" in r:  # multi-label: at the best global threshold of this validation
        parts += [f"micro-F1 {r['val_micro_f1']:.4f}", f"macro-F1 {r['val_macro_f1']:.4f}",
                  f"subset accuracy {r['val_accuracy']:.4f}", f"threshold {r['val_threshold']:.2f}"]
    elif "val_accuracy" in r:
        parts += [f"accuracy {r['val_accuracy']:.4f}", f"macro-F1 {r['val_macro_f1']:.4f}"]
    if r.get("val_perplexity") is not None:
        parts.append(f"perplexity {r['val_perplexity']:.1f}")
    return parts


def epoch_line(r: dict[str, Any], total: int) -> str:
    parts = [f"epoch {r['epoch']}/{total}", f"train loss {r['train_loss']:.4f}",
             *(f"val {p}" for p in validation_parts(r))]
    parts += [f"lr {r['lr']:.2e}", f"padding {r['padding_share']:.1%}",
              f"{r['tokens_per_s']:,.0f} tok/s", f"{r['seconds']:.1f}s"]
    if r.get("unfrozen"):
        parts.append("embeddings trainable")
    return " | ".join(parts)


class EpochLines(Callback):
    """Writes information and one summary line per epoch to `stream` (no progress bars)."""

    def __init__(self, stream: TextIO, total_epochs: int):
        self.stream, self.total = stream, total_epochs

    def on_info(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        print(epoch_line(record, self.total), file=self.stream, flush=True)
