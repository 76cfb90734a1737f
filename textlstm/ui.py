"""Terminal display for the CLI: a rich progress bar per epoch and one summary line per epoch."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .callbacks import Callback


class RichProgress(Callback):
    """Shows loss, tokens/s and ETA while an epoch runs; prints a summary when it ends."""

    def __init__(self, console: Console, total_epochs: int):
        self.console, self.total = console, total_epochs
        self.progress: Progress | None = None

    def on_info(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def on_epoch_start(self, epoch: int, n_batches: int, frozen: bool) -> None:
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{self.total}" + (" (embeddings frozen)" if frozen else "")),
            BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[speed]:,.0f} tok/s"), TimeRemainingColumn(),
            console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=n_batches, loss=0.0, speed=0.0)
        self.start, self.tokens, self.loss = time.perf_counter(), 0, None

    def on_step(self, epoch: int, step: int, loss: float, tokens: int, lr: float) -> None:
        self.tokens += tokens
        self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        speed = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.progress.update(self.task, completed=step, loss=self.loss, speed=speed)

    def on_validation(self, record: dict[str, Any]) -> None:
        if record.get("mid_epoch"):
            self.console.print("  validation: " + ", ".join(validation_parts(record)))

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.console.print(epoch_line(record, self.total), highlight=False)


def validation_parts(r: dict[str, Any]) -> list[str]:
    """A validation record's scores: a classifier's accuracy and macro-F1, a language model's
    perplexity."""
    parts = []
    if "val_accuracy" in r:
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
