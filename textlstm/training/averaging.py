"""An exponential moving average of the weights (`train.ema_decay`), which the trainer validates
and keeps in place of the raw weights.

torch's `AveragedModel` holds the average; the update is an EMA whose decay warms up, as
TensorFlow's `ExponentialMovingAverage(num_updates=...)` does: `min(decay, (1 + n) / (10 + n))`
after `n` updates, so the first steps' weights (the random head) fade quickly.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> avg = weight_average(model, 0.9)
>>> with torch.no_grad():
...     _ = model.weight.fill_(1.0)
>>> avg.update_parameters(model)  # the first update copies
>>> with torch.no_grad():
...     _ = model.weight.fill_(3.0)
>>> avg.update_parameters(model)  # decay min(0.9, 2 / 11): 1 + (3 - 1) * (1 - 2 / 11)
>>> round(float(avg.module.weight[0, 0]), 4)
2.6364
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warm_ema(decay: float):
    """`AveragedModel`'s `multi_avg_fn`: lerp every averaged tensor towards the model's."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        n_updates = int(n)
        d = min(decay, (1 + n_updates) / (10 + n_updates))
        torch._foreach_lerp_(averaged, current, 1.0 - d)
    return update


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """A moving average of `model`'s parameters (a copy of it; None when `decay` is 0)."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=warm_ema(decay), use_buffers=False)
