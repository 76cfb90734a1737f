"""The one file hasher: a file's bytes fed to a hashlib digest 1 MiB at a time, into a reused
buffer (model manifests, download checksums and the token cache's content keys use it)."""
from __future__ import annotations

import hashlib
import os
from typing import Any

CHUNK = 1 << 20


def update_with_file(digest: Any, path: str | os.PathLike) -> Any:
    """Feed the bytes of `path` to `digest` (any hashlib object); return it."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, in hex.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    return update_with_file(hashlib.sha256(), path).hexdigest()
