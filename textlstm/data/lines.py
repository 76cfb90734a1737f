"""Bytes to lines for the data readers: plain or gzip files, decoded one line at a time, with
errors that name the file, the line and the byte offset.

Lines end in `\\n` (or `\\r\\n`). A file whose first 64 KiB hold a `\\r` but no `\\n` has the
lone-`\\r` line ends of classic Mac OS and old spreadsheet exports: it is split on `\\r`, `\\r\\n`
and `\\n` alike, so every format reads it line by line. Other files pay only for that sniff.
"""
from __future__ import annotations

import codecs
import gzip
import io
import zlib
from pathlib import Path
from typing import IO, Iterator

from ..errors import DataError, where


def open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def first_bytes(path: Path) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.readline(64).removeprefix(codecs.BOM_UTF8)
    except (OSError, EOFError, zlib.error):
        return b""  # reading the file will say what is wrong with it


_SNIFF = 1 << 16  # bytes read to tell lone-\r line ends from \n ones
_BLOCK = 1 << 16


def _guarded(fh: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from _raw_lines(fh)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is not a valid gzip file or is truncated ({exc}).") from None


def _raw_lines(fh: IO[bytes]) -> Iterator[bytes]:
    """The file's lines with their ends: split on `\\n`, or on `\\r` too when the start of the
    file has a `\\r` but no `\\n` (so a quoted `\\r` in a `\\n` file stays inside its line)."""
    head = fh.read(_SNIFF)
    fh.seek(0)
    if b"\r" in head and b"\n" not in head:
        return _cr_lines(fh)
    return iter(fh)


def _cr_lines(fh: IO[bytes]) -> Iterator[bytes]:
    """Lines ending in `\\r`, `\\r\\n` or `\\n`, read a block at a time."""
    pending: list[bytes] = []  # the unfinished last line, in pieces (a line can be huge)
    while block := fh.read(_BLOCK):
        if b"\r" not in block and b"\n" not in block:
            pending.append(block)
            continue
        lines = b"".join([*pending, block]).splitlines(keepends=True)
        pending = [lines.pop()]  # may be unfinished, or a \r whose \n starts the next block
        yield from lines
    if pending:
        yield b"".join(pending)


def decode_error(path: Path, line: int, offset: int, bad: bytes, encoding: str) -> DataError:
    gz = " of the decompressed data" if path.name.lower().endswith(".gz") else ""
    return DataError(f"{where(path, line)}: cannot decode {bad!r} at byte offset {offset}{gz} as "
                     f"{encoding}. Pass --encoding latin-1 (or the file's encoding, e.g. cp1252).")


def iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, line with its newline), decoded one line at a time; a BOM is dropped."""
    if "\n".encode(encoding) != b"\n":  # UTF-16/32: a 0x0A byte is not a line end
        yield from _wide_lines(path, encoding)
        return
    offset = 0
    with open_binary(path) as fh:
        for n, raw in enumerate(_guarded(fh, path), 1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise decode_error(path, n, offset + exc.start, raw[exc.start:exc.end],
                                    encoding) from None
            offset += len(raw)
            yield n, (text.removeprefix("\ufeff") if n == 1 else text)


def _wide_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    n = 0
    with open_binary(path) as fh, io.TextIOWrapper(fh, encoding=encoding, newline="") as text:
        try:
            for n, line in enumerate(text, 1):
                yield n, line
        except UnicodeDecodeError as exc:
            raise DataError(f"{where(path, n + 1)}: cannot decode as {encoding} ({exc.reason}). "
                            "Pass --encoding with the file's encoding.") from None


def chomp(line: str) -> str:
    """The line without its `\\n`, `\\r\\n` or `\\r`; nothing else changes."""
    if line.endswith("\n"):
        return line[:-2] if line.endswith("\r\n") else line[:-1]
    return line[:-1] if line.endswith("\r") else line
