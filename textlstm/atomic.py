"""Files and directories that are complete or absent, never half written.

Everything is first written to a temporary sibling (`.{name}.tmp-<pid>-<rand>`, same directory
so the final rename stays on one file system), flushed to disk, then renamed onto its target.
A writer killed half way leaves only such a temporary, which `clean_stale_temps` removes.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "a.txt", "hello")
>>> (d / "a.txt").read_text()
'hello'
"""
from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import DiskFullError, ModelFileError

log = logging.getLogger(__name__)

_TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def disk_space(path: str | os.PathLike, kept: str = "nothing was replaced") -> Iterator[None]:
    """Turn a write that runs out of disk space (or quota) into one `DiskFullError` naming
    `path` and saying what was kept; every other error passes through unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_SPACE or isinstance(exc, DiskFullError):
            raise
        raise DiskFullError(f"No space left on the device while writing {path} ({kept}). "
                            "Free some space and run again.") from None


def temp_sibling(path: str | os.PathLike) -> Path:
    """A fresh, unused name next to `path` for writing its new content."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def backup_sibling(path: str | os.PathLike) -> Path:
    """Where a directory being replaced waits until its successor is in place."""
    path = Path(path)
    return path.with_name(f".{path.name}.backup")


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's content to disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (new names, renames) to disk; a no-op where the platform
    cannot open directories (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush every file and directory under `path`, then `path` itself."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fsync_file(os.path.join(root, name))
        fsync_dir(root)


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file or a directory tree; missing is fine."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def restore_backup(path: str | os.PathLike) -> bool:
    """Settle a directory replacement that was interrupted by a crash.

    If `path` is missing but its backup exists, the crash came between the two renames: the
    backup (the previous, complete content) is moved back and True is returned. If both exist,
    the swap had finished and the leftover backup is removed. Returns False otherwise."""
    path, backup = Path(path), backup_sibling(path)
    if not backup.exists():
        return False
    if path.exists():
        log.info("removing %s left by a finished replacement", backup)
        remove_path(backup)
        return False
    log.warning("restoring %s from %s after an interrupted replacement", path, backup)
    os.replace(backup, path)
    fsync_dir(path.parent)
    return True


def swap_dir(new: Path, target: Path) -> None:
    """Put directory `new` in place of `target` with two renames. A crash between them leaves
    the old content at `backup_sibling(target)`; `restore_backup` puts it back."""
    restore_backup(target)
    backup = backup_sibling(target)
    moved = False
    if target.exists():
        os.replace(target, backup)
        moved = True
        fsync_dir(target.parent)
    try:
        os.replace(new, target)
    except BaseException:
        if moved:
            os.replace(backup, target)
        raise
    fsync_dir(target.parent)
    if moved:
        remove_path(backup)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write instead of `path`.

    On success the temporary (a file, or a directory the caller created) is flushed to disk and
    renamed onto `path`; on any exception it is removed and `path` is left as it was. Running
    out of disk space is a `DiskFullError` that names `path`.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "b.bin") as tmp:
    ...     _ = tmp.write_bytes(b"ok")
    >>> (d / "b.bin").read_bytes()
    b'ok'
    """
    target = Path(path)
    tmp = temp_sibling(target)
    with disk_space(target, f"{target.name} is as it was" if target.exists() else "nothing was written"):
        try:
            yield tmp
            if tmp.is_dir():
                fsync_tree(tmp)
                swap_dir(tmp, target)
            else:
                fsync_file(tmp)
                os.replace(tmp, target)
                fsync_dir(target.parent)
        except BaseException:
            remove_path(tmp)
            raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` for text."""
    atomic_write_bytes(path, text.encode(encoding))


def _writer_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: no such pid can exist
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def clean_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove temporaries (`.*.tmp-<pid>-<rand>`) in `directory` whose writer process is gone,
    and return them. Those of live processes, this one included, are kept: they may still be
    in use. Backups (`.*.backup`) are never removed here: one may be the only copy of a model."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in sorted(directory.iterdir()):
        match = _TEMP_RE.match(entry.name)
        if match and not _writer_alive(int(match.group(1))):
            remove_path(entry)
            removed.append(entry)
            log.info("removed stale temporary %s", entry)
    return removed


def check_output_dir(path: Path, overwrite: bool) -> None:
    """Refuse an output directory that is a file, or that holds results, unless `overwrite`:
    nothing a user made is replaced by accident."""
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"--out {path} is a file; choose a directory.")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise ModelFileError(f"{path} already exists; pass --overwrite to replace it or choose another --out.")
