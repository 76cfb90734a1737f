"""The one training loop (`trainer`) and what it is built from: device and threads (`device`),
objectives (`objectives`: classification; the language model's in `lm`), optimiser and schedule
(`optim`), weight averaging (`averaging`), mixed precision (`precision`), checkpoints
(`checkpoint`) and data-parallel training under torchrun (`distributed`).

>>> from textlstm.training import Trainer   # doctest: +SKIP
"""
from .device import resolve_device, setup_threads
from .trainer import Trainer, TrainingInterrupted, TrainResult, TrainState

__all__ = ["TrainResult", "TrainState", "Trainer", "TrainingInterrupted", "resolve_device", "setup_threads"]
