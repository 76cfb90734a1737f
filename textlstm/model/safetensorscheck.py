"""Validating a safetensors file's layout before its tensors are read: a truncated file, another
format renamed (a pickle), or a header that claims terabytes fails fast with a clear message."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import ModelFileError

MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def _unsafe(path: Path, detail: str, head: bytes = b"") -> ModelFileError:
    hint = (" It looks like a pickled PyTorch checkpoint (torch.save); textlstm never loads pickles "
            "because unpickling can run arbitrary code.") if head.startswith((b"PK\x03\x04", b"\x80")) else ""
    return ModelFileError(f"{path} is not a valid safetensors file: {detail}.{hint}")


def check_safetensors_header(path: str | os.PathLike) -> dict:
    """Validate a safetensors file's layout without reading its tensors; return the header.

    Reads at most 8 bytes plus a header of at most `MAX_HEADER_BYTES`, so a truncated file,
    another format renamed, or a header claiming terabytes fails fast with a clear message."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _unsafe(path, f"it has only {size} bytes", head)
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > MAX_HEADER_BYTES:
            raise _unsafe(path, f"its header claims {n} bytes but the file has {size} (limit "
                                f"{MAX_HEADER_BYTES}); it is truncated or another format", head)
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _unsafe(path, f"its header is not JSON ({exc})", head) from exc
    if not isinstance(header, dict):
        raise _unsafe(path, "its header is not a JSON object")
    _check_layout(path, header, size - 8 - n)
    return header


def _check_layout(path: Path, header: dict, data_len: int) -> None:
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise _unsafe(path, "__metadata__ must map strings to strings")
            continue
        info = info if isinstance(info, dict) else {}
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise _unsafe(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _unsafe(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_len):
            raise _unsafe(path, f"tensor {name!r} has data_offsets {offsets!r} outside the {data_len} data bytes")
        need = math.prod(shape) * DTYPE_BYTES[dtype]
        if offsets[1] - offsets[0] != need:
            raise _unsafe(path, f"tensor {name!r} ({dtype}, shape {shape}) needs {need} bytes "
                                f"but its offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise _unsafe(path, f"tensor {name!r} starts at byte {begin}, expected {end} (overlap or gap)")
        end = stop
    if end != data_len:
        raise _unsafe(path, f"the tensors cover {end} bytes but the file holds {data_len}")
