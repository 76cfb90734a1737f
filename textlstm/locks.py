"""Exclusive locks on outputs: one writer per model directory or prediction file at a time.

A job that writes `path` (a model directory with its checkpoints, a predictions file with its
partial file) holds `.{name}.lock` next to it from its first check to its last rename; a second
job on the same path fails at once, naming the holder, instead of both "succeeding" while one
result is silently lost. The lock is the operating system's (`flock`), so a killed holder
releases it; the file records the holder's pid for the message and is removed on release.
Where `fcntl` does not exist (Windows) jobs run unlocked.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
>>> with exclusive(out, "train --out"):
...     pass
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import TextLSTMError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class LockedError(TextLSTMError):
    """Another process is writing the same output."""


def lock_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def exclusive(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the lock of `path` for the block, or raise `LockedError` at once if another
    process holds it. `what` names the option in the message (e.g. "train --out")."""
    if fcntl is None:
        yield
        return
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, path, what)
    try:
        yield
    finally:
        try:
            os.unlink(lock)  # while still held: a waiter that opened it re-checks the inode
        except OSError:
            pass
        os.close(fd)


def _acquire(lock: Path, path: str | os.PathLike, what: str) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise LockedError(f"Another textlstm job (pid {holder}) is writing {path}; wait for it "
                              f"to finish or choose another {what}. (Lock: {lock}.)") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder unlinked after we opened it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
