"""Where a run computes and with how many threads: shared by training and prediction, so that
prediction never imports the trainer."""
from __future__ import annotations

import os

import torch

from . import distributed


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present; under torchrun each process takes its local rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and distributed.launched():
        device = torch.device("cuda", distributed.local_rank())
    return device


def setup_threads(threads: int) -> None:
    """torch's intra-op threads (`train.threads`, 0: all cores) and flush-to-zero for denormals,
    which are very slow on x86 CPUs. Only touches torch's global settings when they differ."""
    wanted = threads or os.cpu_count() or 1
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    torch.set_flush_denormal(True)
