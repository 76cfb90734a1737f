"""The one training loop (`trainer`) and what it is built from: device and threads (`device`),
the freeze policy (`freezing`), objectives (`objectives`: classification; the language model's
in `lm`), optimiser and schedule (`optim`), weight averaging (`averaging`), mixed precision
(`precision`), checkpoints (`checkpoint`) and data-parallel training under torchrun
(`distributed`).

>>> from textlstm.training import Trainer   # doctest: +SKIP

The loop's names load on first use, so that prediction, which needs only `device`, never
imports the trainer.
"""
from .device import resolve_device, setup_threads

_TRAINER_NAMES = ("TrainResult", "TrainState", "Trainer", "TrainingInterrupted")
__all__ = [*_TRAINER_NAMES, "resolve_device", "setup_threads"]


def __getattr__(name: str):
    if name in _TRAINER_NAMES:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
