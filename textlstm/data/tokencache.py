"""Read and tokenize a data file once; later runs load its tokens from an on-disk cache.

A cache entry is keyed by the file's content (a BLAKE2b hash, so a renamed copy still hits and
an edited file misses), the reader settings, the tokenizer settings and versions (spaCy's,
Unicode's, `tokenize.RULES_VERSION`, `CACHE_VERSION`). It is a directory of plain files, never
pickles: the unique tokens (`tokens.json`), token ids (`ids.npy`, int32) and document offsets
(`offsets.npy`, int64), `labels.json`, `report.json`, `meta.json` and a `COMPLETE` marker.
Entries are written in a temporary sibling and renamed into place, so a reader never sees half
of one; an entry that is incomplete or does not parse is ignored, with a warning, and rebuilt.

The cache grows without bound (an entry is about 5 bytes per token); `clear_cache` empties it.

>>> corpus = load_corpus("data/train.tsv", DataConfig(), Tokenizer(TokenizerConfig()))  # doctest: +SKIP
>>> corpus.tokens[0][:4], corpus.labels[0], corpus.from_cache  # doctest: +SKIP
(['a', 'gripping', ',', 'funny'], '1', False)
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import importlib.metadata
import itertools
import json
import logging
import os
import re
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..atomic import clean_stale_temps, fsync_dir, fsync_tree, remove_path, temp_sibling
from ..config import DataConfig
from ..errors import DataError
from ..hashing import update_with_file
from .readers import Example, ReadReport, read_data
from .tokenize import RULES_VERSION, Tokenizer

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 3: multi-label tuples, label_sep and the task in the key
_PREFIX = "corpus-"
_ENTRY = re.compile(r"^corpus-[A-Za-z0-9._-]*-[0-9a-f]{32}$")
_TEMP = re.compile(r"^\.corpus-.*\.tmp-\d+-[0-9a-f]+$")  # `atomic.temp_sibling` of an entry
_DONE = "COMPLETE"


@dataclass
class Corpus:
    """The tokens and labels of a data file, the report of its read, and whether they came
    from the cache."""

    tokens: list[list[str]]
    labels: list[str | tuple[str, ...] | None]
    report: ReadReport
    from_cache: bool = False


def cache_dir_default() -> Path:
    """`$TEXTLSTM_CACHE`, else `$XDG_CACHE_HOME/textlstm`, else `~/.cache/textlstm`."""
    if os.environ.get("TEXTLSTM_CACHE"):
        return Path(os.environ["TEXTLSTM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "textlstm"


def load_corpus(path: str | os.PathLike, data: DataConfig, tokenizer: Tokenizer, *,
                labelled: bool = True, cache_dir: str | os.PathLike | None = None,
                use_cache: bool = True, task: str = "auto") -> Corpus:
    """Read `path` (a file or a folder per class) as `data` says and tokenize every text with
    `tokenizer`, or load the result of an earlier identical call from the cache.

    Raises what `readers.read_data` raises (`DataError`, `ConfigError`). A cache that cannot
    be written (read-only disk, ...) only costs a warning."""
    path = Path(path)
    report = ReadReport()
    examples = read_data(path, data, labelled=labelled, report=report, task=task)
    if not use_cache:  # (the call above checked the options and the path; nothing is read yet)
        return _build(path, examples, report, tokenizer)
    start = time.perf_counter()
    root = Path(cache_dir) if cache_dir is not None else cache_dir_default()
    key, material = cache_key(path, data, tokenizer, labelled, task)
    entry = root / f"{_PREFIX}{_safe_name(path.name)}-{key}"
    corpus = _read_entry(entry, str(path))
    if corpus is not None:
        log.info("loaded the tokens of %s from %s in %.2fs", path, entry, time.perf_counter() - start)
        return corpus
    corpus = _build(path, examples, report, tokenizer)
    table = _flatten(corpus.tokens)
    corpus.tokens = _unflatten(*table)  # one str per distinct token, as on a hit: ~1/5 the memory
    try:
        _write_entry(entry, table, corpus, material)
    except (OSError, ValueError) as exc:
        log.warning("could not cache the tokens of %s in %s: %s", path, root, exc)
    return corpus


def cache_key(path: Path, data: DataConfig, tokenizer: Tokenizer, labelled: bool,
              task: str = "auto") -> tuple[str, dict]:
    """The entry's key (32 hex digits) and what it hashes."""
    material = {
        "cache_version": CACHE_VERSION,
        "content": content_hash(path),
        "reader": {"format": data.format, "text_field": data.text_field,
                   "label_field": data.label_field, "encoding": data.encoding,
                   "on_bad_lines": data.on_bad_lines, "labelled": labelled,
                   "label_sep": data.label_sep, "task": task},
        "tokenizer": tokenizer.to_dict(),
        "versions": _versions(tokenizer),
    }
    blob = json.dumps(material, sort_keys=True).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=16).hexdigest(), material


def content_hash(path: str | os.PathLike) -> str:
    """BLAKE2b of a file's bytes, read 1 MiB at a time; for a folder, of the sorted relative
    paths and contents of the files in it and in its subfolders (the class folders)."""
    path = Path(path)
    h = hashlib.blake2b(digest_size=20)
    try:
        files = _folder_files(path) if path.is_dir() else [("", path)]
        for rel, file in files:
            h.update(f"{len(rel)}:{rel}".encode("utf-8", "surrogateescape"))
            update_with_file(h, file)
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return h.hexdigest()


def clear_cache(cache_dir: str | os.PathLike | None = None) -> int:
    """Remove every tokenized corpus (and leftover temporaries) from the cache; return the
    bytes freed. Other files in the directory are left alone."""
    root = Path(cache_dir) if cache_dir is not None else cache_dir_default()
    if not root.is_dir():
        return 0
    freed = 0
    for entry in root.iterdir():
        if _ENTRY.match(entry.name) or _TEMP.match(entry.name):
            freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            remove_path(entry)
    return freed


# -- building -----------------------------------------------------------------------------------

def _build(path: Path, examples: Iterator[Example], report: ReadReport,
           tokenizer: Tokenizer) -> Corpus:
    """Stream the examples through `tokenizer.pipe`; texts are not kept once tokenized."""
    start = time.perf_counter()
    labels: list[str | None] = []

    def texts() -> Iterator[str]:
        for example in examples:
            labels.append(example.label)
            yield example.text

    tokens = list(tokenizer.pipe(texts()))
    log.info("tokenized %d texts of %s in %.1fs", len(tokens), path, time.perf_counter() - start)
    return Corpus(tokens, labels, report, from_cache=False)


def _versions(tokenizer: Tokenizer) -> dict[str, str]:
    versions = {"rules": str(RULES_VERSION), "unicode": unicodedata.unidata_version}
    if tokenizer.config.kind == "spacy":
        versions["spacy"] = importlib.metadata.version("spacy")
    return versions


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of the files in `root` and its subfolders, sorted."""
    files = []
    for child in root.iterdir():
        inner = child.iterdir() if child.is_dir() else [child]
        files.extend((f.relative_to(root).as_posix(), f) for f in inner if f.is_file())
    return sorted(files)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40]


# -- the entry on disk --------------------------------------------------------------------------

def _write_entry(entry: Path, table: tuple[list[str], np.ndarray, np.ndarray], corpus: Corpus,
                 material: dict) -> None:
    """Write into a temporary sibling, then rename it into place (a no-op if a concurrent
    writer got there first)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(entry.parent)  # left by writers that were killed
    tmp = temp_sibling(entry)
    try:
        tmp.mkdir()
        vocab, ids, offsets = table
        np.save(tmp / "ids.npy", ids, allow_pickle=False)
        np.save(tmp / "offsets.npy", offsets, allow_pickle=False)
        _write_json(tmp / "tokens.json", vocab)
        _write_json(tmp / "labels.json", corpus.labels)
        _write_json(tmp / "report.json", _report_to_json(corpus.report))
        _write_json(tmp / "meta.json", {**material, "n_docs": len(corpus.tokens), "n_tokens": len(ids)})
        (tmp / _DONE).write_bytes(b"")
        fsync_tree(tmp)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / _DONE).is_file():
                raise
            log.debug("%s was written concurrently; keeping that one", entry)
        fsync_dir(entry.parent)
    finally:
        remove_path(tmp)


def _read_entry(entry: Path, path: str) -> Corpus | None:
    """The cached corpus, or None if there is none or it is unusable (then it is removed)."""
    if not entry.is_dir():
        return None
    try:
        if not (entry / _DONE).is_file():
            raise ValueError(f"no {_DONE} marker: its writer did not finish")
        meta = _read_json(entry / "meta.json")
        if not isinstance(meta, dict) or meta.get("cache_version") != CACHE_VERSION:
            raise ValueError("a different cache version")
        vocab = _read_json(entry / "tokens.json")
        ids = np.load(entry / "ids.npy", allow_pickle=False)
        offsets = np.load(entry / "offsets.npy", allow_pickle=False)
        tokens = _unflatten(vocab, ids, offsets)
        labels = _read_json(entry / "labels.json")
        if not isinstance(labels, list) or len(labels) != len(tokens):
            raise ValueError(f"{len(tokens)} documents but labels are not a list of as many")
        labels = [tuple(lab) if isinstance(lab, list) else lab for lab in labels]  # multi-label
        report = _report_from_json(_read_json(entry / "report.json"), path)
    except (OSError, ValueError, TypeError, KeyError, EOFError) as exc:
        log.warning("ignoring the unusable tokenization cache %s (%s); rebuilding it", entry, exc)
        _discard(entry)
        return None
    return Corpus(tokens, labels, report, from_cache=True)


def _discard(entry: Path) -> None:
    """Move a broken entry aside (one rename, so no reader sees it half removed), remove it."""
    trash = temp_sibling(entry)
    try:
        os.rename(entry, trash)
    except OSError:
        return  # gone already, or replaced by a concurrent writer
    remove_path(trash)


def _flatten(docs: list[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unique tokens in first-seen order, all token ids (int32) and document offsets (int64)."""
    index: defaultdict[str, int] = defaultdict()
    index.default_factory = index.__len__  # a new token gets the next id
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(map(index.__getitem__, d) for d in docs),
                      dtype=np.int32, count=int(offsets[-1]))
    return list(index), ids, offsets


def _unflatten(vocab: Any, ids: np.ndarray, offsets: np.ndarray) -> list[list[str]]:
    """The documents back from `_flatten`'s table, after checking that it is consistent."""
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise ValueError("tokens.json is not a list of strings")
    if ids.dtype != np.int32 or ids.ndim != 1 or offsets.dtype != np.int64 or offsets.ndim != 1:
        raise ValueError("ids.npy or offsets.npy has the wrong type or shape")
    if len(ids) and (ids.min() < 0 or ids.max() >= len(vocab)):
        raise ValueError("token ids out of range")
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(ids) or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets do not partition the token ids")
    words = np.array(vocab, dtype=object)[ids]  # shares one str object per distinct token
    bounds = offsets.tolist()
    with _gc_paused():  # millions of new references: collections would only rescan them
        return [words[a:b].tolist() for a, b in zip(bounds, bounds[1:])]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _report_to_json(report: ReadReport) -> dict[str, Any]:
    return {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}


def _report_from_json(raw: Any, path: str) -> ReadReport:
    """The stored report, with the path this call was given (a renamed copy hits the cache)."""
    if not isinstance(raw, dict):
        raise ValueError("report.json is not an object")
    known = {f.name for f in dataclasses.fields(ReadReport)}
    report = ReadReport(**{k: v for k, v in raw.items() if k in known})
    old = str(report.path)
    report.skipped = Counter(report.skipped)
    report.reported = Counter(report.reported)
    report.examples_of_skips = [(_moved(str(s), old, path), line, reason)
                                for s, line, reason in report.examples_of_skips]
    if report.first_no_label is not None:
        source, line = report.first_no_label
        report.first_no_label = (_moved(str(source), old, path), line)
    report.path = path
    return report


def _moved(source: str, old: str, new: str) -> str:
    return new + source[len(old):] if source.startswith(old) else source


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
