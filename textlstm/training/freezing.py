"""Which pretrained parts train, and when: the one owner of `train.freeze`.

`run_freeze` decides the mode a run trains with, from the configured one and what the run
is: a classifier with pretrained vectors keeps the configured mode, one without any has
nothing to protect (`epochs`/`plateau` become `never`); fine-tuning a trained model keeps the
embeddings frozen (`always`); the LR range test holds the first epochs' state throughout; a
language model trains its embeddings from the start. `frozen_in_epoch` is what the trainer
asks before each epoch; `plateau` unfreezes when validation stops improving (the trainer
calls `unfreeze_on_plateau`). Callers get a new `TrainConfig` (`dataclasses.replace`), so what
config.json records is what the model trained with.
"""
from __future__ import annotations

from dataclasses import replace

from ..config import TrainConfig

PURPOSES = ("classify", "fine-tune", "lr-find", "pretrain-lm")
STARTS_FROZEN = ("epochs", "plateau", "always")


def run_freeze(train: TrainConfig, *, pretrained: bool, purpose: str = "classify") -> TrainConfig:
    """`train` with the freeze mode this run uses (unchanged settings are the same object)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r}; one of {PURPOSES}")
    mode = train.freeze
    if not pretrained and mode in ("epochs", "plateau"):
        mode = "never"  # random embeddings have nothing to protect
    if purpose == "fine-tune":
        mode = "always"
    elif purpose == "lr-find":
        mode = "always" if mode in STARTS_FROZEN else "never"
    elif purpose == "pretrain-lm":
        mode = "never"
    return train if mode == train.freeze else replace(train, freeze=mode)


def frozen_in_epoch(train: TrainConfig, epoch: int, frozen_now: bool, fresh: bool) -> bool:
    """Whether the pretrained parts are frozen for `epoch` (1-based). `fresh`: no epoch and no
    step has run yet (a resumed run keeps the state its checkpoint restored)."""
    if train.freeze == "always":
        return True
    if train.freeze == "never":
        return False
    if train.freeze == "epochs":
        return epoch <= train.freeze_epochs
    return True if fresh and epoch == 1 else frozen_now  # plateau: frozen until validation stalls


def unfreeze_on_plateau(train: TrainConfig, frozen_now: bool) -> bool:
    """After an epoch without a validation gain: unfreeze instead of counting towards stopping."""
    return train.freeze == "plateau" and frozen_now
