"""Shared pieces of the benchmark scripts: the three data sets with their fixed splits, the
tokenizer and preset sizes (from textlstm when it imports), timing, peak memory, and the
rich table / JSON output.

Data sets (see ../shared/data/README.md); every split is fixed (seed 0) so runs compare:

| name | training texts | evaluation texts |
| --- | --- | --- |
| imdb | `imdb/train.csv.gz` less a stratified 20 % | that 20 % (5,000 reviews) |
| sst2 | `sst2/train.tsv` (6,920) | `sst2/dev.tsv` (872) |
| trec | `trec/train.jsonl` less a stratified 20 % | that 20 % (1,091 questions) |
"""
from __future__ import annotations

import csv
import datetime
import gzip
import json
import os
import platform
import re
import resource
import sys
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("TEXTLSTM_BENCH_DATA", REPO.parent / "shared" / "data"))
VECTORS = "embeddings/imdb-w2v-100d.txt.gz"  # relative to the data folder
DATASETS = ("imdb", "sst2", "trec")
PRESETS = {"imdb": "document-sentiment", "sst2": "sentence-sentiment", "trec": "short-topics"}
SEED = 0
EVAL_SHARE = 0.2  # IMDB and TREC: the stratified share held out for evaluation
QUICK_TRAIN, QUICK_EVAL = 2000, 500  # --quick: texts per data set (stratified subsamples)


@dataclass
class Split:
    """Training and evaluation texts with string labels."""

    name: str
    train_texts: list[str]
    train_labels: list[str]
    eval_texts: list[str]
    eval_labels: list[str]

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train_texts):,} training / {len(self.eval_texts):,} "
                f"evaluation texts, {len(set(self.train_labels))} labels")


# -- data ---------------------------------------------------------------------------------

def read_imdb(data_dir: Path) -> tuple[list[str], list[str]]:
    with gzip.open(data_dir / "imdb" / "train.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["review"] for r in rows], [r["sentiment"] for r in rows]


def read_sst2(path: Path) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [r["label"] for r in rows]


def read_trec(data_dir: Path) -> tuple[list[str], list[str]]:
    with open(data_dir / "trec" / "train.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def stratified_part(texts: Sequence[str], labels: Sequence[str], size: int | float,
                    seed: int = SEED) -> tuple[list[str], list[str], list[str], list[str]]:
    """`(texts_a, labels_a, texts_b, labels_b)`, b holding `size` (a count or share), both
    with the label mix of the whole."""
    idx_a, idx_b = train_test_split(np.arange(len(labels)), test_size=size, random_state=seed,
                                    stratify=list(labels))
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    return pick(idx_a, texts), pick(idx_a, labels), pick(idx_b, texts), pick(idx_b, labels)


def load_split(name: str, data_dir: Path = DATA_DIR, quick: bool = False) -> Split:
    """The fixed training/evaluation split of a data set; `quick` keeps stratified subsamples
    of `QUICK_TRAIN` training and `QUICK_EVAL` evaluation texts."""
    if name == "sst2":
        train = read_sst2(data_dir / "sst2" / "train.tsv")
        evaluation = read_sst2(data_dir / "sst2" / "dev.tsv")
    elif name in ("imdb", "trec"):
        texts, labels = (read_imdb if name == "imdb" else read_trec)(data_dir)
        tr_x, tr_y, ev_x, ev_y = stratified_part(texts, labels, EVAL_SHARE)
        train, evaluation = (tr_x, tr_y), (ev_x, ev_y)
    else:
        raise ValueError(f"Unknown data set {name!r}. Data sets: {', '.join(DATASETS)}.")
    if quick:
        train = _subsample(*train, QUICK_TRAIN)
        evaluation = _subsample(*evaluation, QUICK_EVAL)
    return Split(name, list(train[0]), list(train[1]), list(evaluation[0]), list(evaluation[1]))


def _subsample(texts: list[str], labels: list[str], n: int) -> tuple[list[str], list[str]]:
    if len(texts) <= n:
        return texts, labels
    _, _, x, y = stratified_part(texts, labels, n)
    return x, y


# -- textlstm pieces, with fallbacks while the package is incomplete ------------------------

_FALLBACK_TAG = re.compile(r"<[^<>]*>")
_FALLBACK_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def fallback_tokenize(text: str) -> list[str]:
    """Lowercase, HTML tags dropped, words (with an apostrophe suffix) and single symbols."""
    return _FALLBACK_TOKEN.findall(_FALLBACK_TAG.sub(" ", text.lower()))


def make_tokenizer(preset: str | None = None, kind: str | None = None, max_tokens: int | None = None
                   ) -> tuple[Callable[[Sequence[str]], list[list[str]]], str]:
    """`(tokenize_many, description)`: textlstm's `Tokenizer` with the preset's settings (and
    `kind` / `max_tokens` when given), or the fallback regex if textlstm does not import."""
    try:
        from textlstm.config import make_config
        from textlstm.data.tokenize import Tokenizer
    except Exception as exc:  # noqa: BLE001 - any import failure means "not ready yet"
        note = f"fallback regex tokenizer (textlstm.tokenize not importable: {type(exc).__name__}: {exc})"
        return (lambda texts: [fallback_tokenize(t) for t in texts]), note
    cfg = make_config(preset=preset).tokenizer
    if kind is not None:
        cfg.kind = kind
    if max_tokens is not None:
        cfg.max_tokens = max_tokens
    tok = Tokenizer(cfg)
    return (lambda texts: list(tok.pipe(texts))), f"textlstm Tokenizer(kind={cfg.kind}, max_tokens={cfg.max_tokens})"


def preset_model_sizes(preset: str) -> tuple[int, int]:
    """`(embedding_dim, hidden_size)` of a textlstm preset. Read through textlstm's config when
    it imports, otherwise from the preset's TOML file over the ModelConfig defaults (100, 128)."""
    try:
        from textlstm.config import make_config
    except Exception:  # noqa: BLE001
        raw = tomllib.loads((REPO / "textlstm" / "presets" / f"{preset}.toml").read_text()).get("model", {})
        return int(raw.get("embedding_dim", 100)), int(raw.get("hidden_size", 128))
    model = make_config(preset=preset).model
    return model.embedding_dim, model.hidden_size


# -- measuring ------------------------------------------------------------------------------

@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """`with timer() as t: ...` then `t["s"]` holds the wall-clock seconds."""
    out = {"s": 0.0}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """RSS high-water mark in MiB of this process, or with `RUSAGE_CHILDREN` of its largest
    waited-for child.

    For this process Linux's VmHWM is read: `ru_maxrss` also keeps the high-water mark of the
    process image that exec replaced, which for a child started by `subprocess` (vfork + exec)
    is the parent's, so every child would report at least the parent's peak."""
    if who == resource.RUSAGE_SELF:
        try:
            return status_mb("VmHWM")
        except (OSError, KeyError):
            pass
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def status_mb(key: str) -> float:
    """One memory line of Linux's /proc/self/status (VmHWM, VmRSS, ...) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def machine_info() -> dict[str, object]:
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"cores": cores(), "torch": torch_version, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
            "load_avg_1m": os.getloadavg()[0]}


def cpu_model() -> str | None:
    """The CPU's name and its bfloat16 instructions (Linux): scores in bfloat16 depend on them,
    as oneDNN picks other kernels (AVX512-BF16, AMX) on other CPUs."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    first: dict[str, str] = {}  # one block per core: the first holds what all say
    for line in info.splitlines():
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    name, flags = first.get("model name", ""), first.get("flags", "").split()
    extras = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return (f"{name} [{', '.join(extras)}]" if extras else name) or None


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def busy_note() -> str | None:
    """A warning when other work is using the CPU: timings then mean little."""
    load = os.getloadavg()[0]
    if load < 0.5:
        return None
    return (f"the 1-minute load average was {load:.1f} on {cores()} cores before this run: other "
            "processes compete for the CPU, so times and speeds are unreliable")


def limit_threads(threads: int) -> None:
    """Cap the BLAS / OpenMP pools of numpy, scipy and scikit-learn (torch has its own
    setting): more threads than free cores make their parallel regions wait on each other."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)


def today() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in items if x not in allowed]
    if unknown:
        sys.exit(f"Unknown {what} {', '.join(unknown)}. Choose from: {', '.join(allowed)}.")
    return items


# -- output ---------------------------------------------------------------------------------

def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
                notes: Sequence[str] = ()) -> None:
    """A rich table (numbers right-aligned) followed by numbered notes."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 2 else "right", no_wrap=i < 2)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for note in notes:
        console.print(f"[dim]• {note}[/dim]", highlight=False)


def write_json(path: str | os.PathLike, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
