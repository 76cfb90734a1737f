"""Data-parallel training under `torchrun`: the process group, each rank's share of a batch and
the few collective operations the training loop needs.

`torchrun --nproc-per-node N -m textlstm.cli train …` starts N processes with `RANK`,
`WORLD_SIZE` and `LOCAL_RANK` set; `join()` then opens the process group (gloo on CPU, nccl on
GPU). In a single process every function here is a no-op, so the training loop has one code
path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True inside a process started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0, or not distributed at all (read from the environment, before `join`)."""
    return int(os.environ.get("RANK", "0")) == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def join(device: torch.device) -> Dist:
    """Open the process group once when launched by torchrun; `Dist()` otherwise."""
    if not launched():
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank())


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: np.ndarray, d: Dist) -> np.ndarray:
    """This rank's contiguous share of a global batch. Batches are cut from length-sorted runs,
    so each share is length-homogeneous too (bucketing is kept per rank)."""
    return np.array_split(batch, d.world_size)[d.rank] if d.enabled else batch


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Sum each value across ranks (float64)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def gather(obj: Any, d: Dist) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def wrap(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (gradients averaged across ranks during backward),
    or the model itself. Call again after changing which parameters require gradients."""
    if not d.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
