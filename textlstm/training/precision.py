"""Mixed precision: which lower-precision type a device computes natively, and the autocast
context that uses it.

`train.amp = true` trains under `torch.autocast`: float16 with loss scaling on CUDA, bfloat16
on a CPU with native bfloat16 instructions (AVX512-BF16 or AMX). There nn.LSTM's oneDNN
kernels run about 1.8x faster (benchmarks/README.md); CPU autocast leaves nn.GRU in float32,
and the peephole cell keeps its scan in float32. Weights, the optimiser's state, the loss
and the saved model stay float32. A CPU without native bfloat16 would emulate it, slower than
float32, so there training stays in float32 and says so.
"""
from __future__ import annotations

import torch


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast type for `device` when mixed precision is asked for, else None."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """`torch.autocast` to `dtype` on `device`; a disabled one when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
