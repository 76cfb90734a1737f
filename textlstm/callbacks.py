"""`Callback`: the hooks a training loop calls (the CLI's progress display is one), and `say`
for one line of information. Upstream of every module that trains or reports."""
from __future__ import annotations

from typing import Any


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
