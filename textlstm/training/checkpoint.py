"""Training checkpoints: written atomically, read with PyTorch's safe `weights_only` loader."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path, clean_stale_temps
from ..config import ModelConfig
from ..errors import ModelFileError, TrainingError

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
METRICS_LOG = "metrics.jsonl"  # one JSON object per epoch, beside the checkpoint and in the model


def metrics_lines(history: list[dict[str, Any]]) -> str:
    """The per-epoch records as JSON lines (`metrics.jsonl`); a value that is not a finite
    number is written as null, so every line is valid JSON."""
    def finite(value: Any) -> Any:
        return value if not isinstance(value, float) or math.isfinite(value) else None
    return "".join(json.dumps({k: finite(v) for k, v in record.items()}, allow_nan=False) + "\n"
                   for record in history)


def save_checkpoint(directory: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write `payload` (tensors, numbers, strings, lists and dicts only) as `checkpoint.pt`:
    temporary file in the same directory, fsync, rename — a killed save leaves the previous
    checkpoint in place."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT
    buffer = io.BytesIO()  # serialised in memory: a full disk is then an OSError (no
    torch.save(payload, buffer)  # "unexpected pos" from torch's zip writer), reported as such
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def load_checkpoint(directory: str | os.PathLike) -> dict[str, Any]:
    """Read the last complete checkpoint (never unpickling arbitrary objects) and remove
    leftovers of saves that were killed."""
    directory = Path(directory)
    for stale in clean_stale_temps(directory):
        log.warning("removed %s left by an interrupted save", stale)
    path = directory / CHECKPOINT
    if not path.exists():
        raise ModelFileError(f"No checkpoint to resume from in {directory} ({CHECKPOINT} is missing).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the safe loader refuses anything but plain data
        raise ModelFileError(f"Checkpoint {path} cannot be read safely: {exc}") from exc


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: object) -> None:
    """Refuse to resume when the vocabulary, labels, vectors or settings differ. A model setting
    added after the checkpoint was written counts as its default (which the run then had)."""
    defaults = dataclasses.asdict(ModelConfig())
    if isinstance(saved.get("model"), dict):
        saved = {**saved, "model": {**defaults, **saved["model"]}}
    if isinstance(current.get("model"), dict):  # a setting the run leaves out is its default too
        current = {**current, "model": {**defaults, **current["model"]}}
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, this run has {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diffs:
        raise TrainingError(f"Cannot resume from {path}: it was made with different inputs. "
                            + "; ".join(diffs) + ". Start a new run (drop --resume) or restore the inputs.")
