"""`TensorBoard`: a `Callback` that writes a run's curves as TensorBoard event files, through
`torch.utils.tensorboard` (which needs the optional `tensorboard` package:
`pip install 'textlstm[tensorboard]'`).

What goes where (view with `tensorboard --logdir DIR`):

- `step/loss`, `step/lr`: every training step, at the global step (counted across epochs);
- `epoch/<key>`: every numeric value of the epoch's history record (`train_loss`, `val_loss`,
  `val_accuracy`, `val_macro_f1`, `lr`, `tokens_per_s`, `padding_share`, `seconds`, `unfrozen`
  as 0/1, ...), at the epoch number, so they equal `meta_["history"]`;
- `validation/<key>`: every validation, mid-epoch ones (`train.eval_every`) too, at the global
  step of the step it followed;
- `info` (text): each line of information the run reports (`on_info`), at the current step.

The callback API has no end-of-training hook, so the writer is flushed at the end of every epoch
(and every `flush_secs` in between) and closed by `close()`, by leaving a `with` block, when the
callback is garbage-collected, or at interpreter exit, whichever comes first.
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from .callbacks import Callback
from .errors import ConfigError

MISSING = "--tensorboard needs the tensorboard package: pip install 'textlstm[tensorboard]'"


class TensorBoard(Callback):
    """Writes the loss and learning rate per step, the history record per epoch, every
    validation and the run's information lines to event files in `log_dir`.

    The event file is opened at the first event, so a run that fails before training (or a
    torchrun rank other than 0, to which the trainer passes no callbacks) leaves no empty file.
    A run resumed from a checkpoint continues the step axis: its first step is numbered
    `(epoch - 1) * batches_per_epoch + step`, as the first run numbered it.

    Example::

        with TensorBoard("runs/sst2") as tb:
            TextClassifier(make_config()).fit(texts, labels, callbacks=[tb])
    """

    def __init__(self, log_dir: str | os.PathLike, *, flush_secs: int = 30):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch raises it when `tensorboard` is not installed
            raise ConfigError(MISSING) from e
        self.log_dir, self.flush_secs = Path(log_dir), flush_secs
        self._summary_writer = SummaryWriter
        self._writer: Any = None
        self._close_at_exit: weakref.finalize | None = None
        self._n_batches = 0
        self._step: int | None = None  # global step of the last training step; None before one

    # -- the hooks --------------------------------------------------------------------------
    def on_info(self, text: str) -> None:
        self.writer().add_text("info", text, self.global_step)

    def on_epoch_start(self, epoch: int, n_batches: int, frozen: bool) -> None:
        self._n_batches = n_batches

    def on_step(self, epoch: int, step: int, loss: float, tokens: int, lr: float) -> None:
        if self._step is None:  # the first step seen: 1 in a new run, later in a resumed one
            self._step = (epoch - 1) * self._n_batches + step - 1
        self._step += 1
        w = self.writer()
        w.add_scalar("step/loss", loss, self._step)
        w.add_scalar("step/lr", lr, self._step)

    def on_validation(self, record: dict[str, Any]) -> None:
        self._scalars("validation", record, self.global_step, skip={"epoch", "mid_epoch"})

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self._scalars("epoch", record, record["epoch"], skip={"epoch"})
        self.writer().flush()

    # -- the writer -------------------------------------------------------------------------
    @property
    def global_step(self) -> int:
        """The global step of the last training step (0 before the first)."""
        return self._step or 0

    def writer(self):
        """The `SummaryWriter`, opened on first use (and again after `close()`)."""
        if self._writer is None:
            self._writer = self._summary_writer(log_dir=str(self.log_dir), flush_secs=self.flush_secs)
            # holds the writer, not self: the callback can still be collected, and closes it then
            self._close_at_exit = weakref.finalize(self, self._writer.close)
        return self._writer

    def close(self) -> None:
        """Flush and close the event file; later events open a new one."""
        if self._close_at_exit is not None:
            self._close_at_exit()  # calls writer.close() once, and unregisters the exit hook
        self._writer = self._close_at_exit = None

    def __enter__(self) -> "TensorBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _scalars(self, prefix: str, record: dict[str, Any], step: int, skip: set[str]) -> None:
        w = self.writer()
        for key, value in record.items():
            if key not in skip and isinstance(value, (int, float)):  # bool is an int: 0/1
                w.add_scalar(f"{prefix}/{key}", float(value), step)
