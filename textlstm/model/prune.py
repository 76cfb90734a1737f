"""Magnitude pruning of the recurrent and linear weights with `torch.nn.utils.prune`.

The pruned tensors are every weight matrix of the network except the embedding: the LSTM/GRU
input and recurrent matrices (`weight_ih_l0`, `weight_hh_l0`), the attention projections, the
residual projections and the classifier head. Biases stay dense. While pruned, a tensor is
`weight_orig * weight_mask`, recomputed before every forward pass, so fine-tuning moves only
the surviving weights; `make_permanent` then writes the zeros into plain parameters.

>>> import torch
>>> from textlstm.config import ModelConfig
>>> from textlstm.model import TextLSTM
>>> m = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4), vocab_size=10, n_labels=2)
>>> prune_model(m, 0.5)
>>> make_permanent(m)
>>> round(zero_share(m), 2)
0.5
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import ConfigError

SCOPES = ("global", "layer")


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """`(module, parameter name)` of every weight matrix outside the embedding."""
    found = []
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            continue
        for name, param in module.named_parameters(recurse=False):
            name = name.removesuffix("_orig")  # already pruned: the reparametrised original
            if name.startswith("weight") and param.dim() >= 2:
                found.append((module, name))
    return found


def check_schedule(sparsity: float, steps: int, scope: str) -> None:
    if not 0 <= sparsity < 1:
        raise ConfigError(f"Pruning sparsity must be in [0, 1), got {sparsity} (e.g. --prune 0.5).")
    if steps < 1:
        raise ConfigError(f"Pruning needs at least one step, got {steps} (--prune-steps).")
    if scope not in SCOPES:
        raise ConfigError(f"Pruning scope {scope!r} is not allowed. Allowed: {', '.join(SCOPES)}.")


def schedule(sparsity: float, steps: int) -> list[float]:
    """The sparsity after each step, rising linearly to the target: 0.5 in 2 steps → 0.25, 0.5."""
    return [sparsity * (k + 1) / steps for k in range(steps)]


def prune_model(model: nn.Module, sparsity: float, scope: str = "global") -> None:
    """Zero the `sparsity` share of smallest-magnitude weights, over all pruned tensors together
    (`global`: layers keep different shares) or within each tensor (`layer`).

    The share counts from the current weights: weights pruned by an earlier call are zeros and
    are the first chosen again, so calling with 0.25 then 0.5 ends at 50 %, not 62.5 %."""
    check_schedule(sparsity, 1, scope)
    make_permanent(model)  # one mask per tensor: the new mask covers the old zeros
    targets = prunable(model)
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=sparsity)
    _sync_rnn_weights(model)


def make_permanent(model: nn.Module) -> None:
    """Replace every `weight_orig * weight_mask` by a plain parameter holding the product."""
    for module, name in prunable(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            prune.remove(module, name)
    _sync_rnn_weights(model)


def _sync_rnn_weights(model: nn.Module) -> None:
    """Point each RNN's `_flat_weights` (the list its kernel reads) at the current tensors.

    `nn.RNNBase.__setattr__` already does this when pruning assigns a weight; this guards
    against a PyTorch version that does not."""
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            module._flat_weights = [getattr(module, n) if hasattr(module, n) else None
                                    for n in module._flat_weights_names]


def _pruned_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    for module, name in prunable(model):
        yield getattr(module, name)


@torch.no_grad()
def zero_share(model: nn.Module) -> float:
    """Share of exact zeros among the weights `prunable` selects, masked or permanent."""
    zeros = total = 0
    for tensor in _pruned_tensors(model):
        zeros += int((tensor == 0).sum())
        total += tensor.numel()
    return zeros / total if total else 0.0


@torch.no_grad()
def zero_shares(model: nn.Module) -> dict[str, float]:
    """Share of zeros per pruned tensor, by its name in the model (for per-layer reports)."""
    names = {id(m): n for n, m in model.named_modules()}
    return {f"{names[id(module)]}.{name}".lstrip("."): float((getattr(module, name) == 0).float().mean())
            for module, name in prunable(model)}
