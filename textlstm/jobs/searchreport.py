"""What `textlstm search` writes: the results table (rich), `results.csv`, `results.png` and
`best.toml` — the full best configuration, which `textlstm train --config best.toml` reads."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..config import Config
from ..metrics import new_figure, save_figure


@dataclass
class SearchJob:
    data: Path
    grid: Path
    out: Path
    cv: int = 5
    val: Path | None = None
    n_random: int | None = None  # sample this many settings from the grid instead of all
    vectors: list[str] | None = None  # vector sources; None: the settings' embeddings.vectors
    refit: bool = False
    overwrite: bool = False


@dataclass
class Trial:
    """One setting: its grid values and the scores of each fold (NaN where the fit failed)."""

    index: int  # position in the list of settings
    params: dict[str, Any]
    macro_f1: list[float]
    accuracy: list[float]
    fit_seconds: float

    def stats(self, metric: str = "macro_f1") -> tuple[float, float]:
        """Mean and standard deviation over the folds that did not fail."""
        values = [v for v in getattr(self, metric) if not math.isnan(v)]
        return (float(np.mean(values)), float(np.std(values))) if values else (math.nan, math.nan)

    @property
    def mean(self) -> float:
        return self.stats()[0]

    @property
    def std(self) -> float:
        return self.stats()[1]

    @property
    def failed(self) -> int:
        return sum(math.isnan(x) for x in self.macro_f1)


@dataclass
class SearchResult:
    keys: list[str]  # the grid keys that vary
    trials: list[Trial]  # best first
    best_config: Config
    n_splits: int
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)
    model_dir: Path | None = None

    @property
    def best(self) -> Trial:
        return self.trials[0]


def setting_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(the one setting)"


def pm(mean: float, std: float) -> str:
    return "failed" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def results_csv(result: SearchResult) -> str:
    """One row per setting, best first; per-fold scores in the last columns."""
    folds = range(1, result.n_splits + 1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", *result.keys, "macro_f1_mean", "macro_f1_std", "accuracy_mean",
                     "accuracy_std", "fit_seconds", "failed_folds",
                     *(f"macro_f1_fold{k}" for k in folds), *(f"accuracy_fold{k}" for k in folds)])
    for rank, t in enumerate(result.trials, 1):
        writer.writerow([rank, *(t.params[k] for k in result.keys),
                         *(f"{x:.6f}" for x in (*t.stats(), *t.stats("accuracy"))), f"{t.fit_seconds:.2f}",
                         t.failed, *(f"{x:.6f}" for x in t.macro_f1 + t.accuracy)])
    return buf.getvalue()


def plot_results(result: SearchResult, path: str | Path) -> Path:
    """Mean macro-F1 ± std per setting, best at the top."""
    trials = result.trials
    fig = new_figure(8, 1.4 + 0.4 * len(trials))
    ax = fig.add_subplot()
    ys = list(range(len(trials)))[::-1]
    for y, t in zip(ys, trials):
        if not math.isnan(t.mean):
            ax.errorbar(t.mean, y, xerr=t.std, fmt="o", capsize=4, color="C0" if y != ys[0] else "C3")
    labels = [setting_label(t.params) + (" (failed)" if math.isnan(t.mean) else "") for t in trials]
    ax.set_yticks(ys, labels=labels)
    ax.set_ylim(-0.7, len(trials) - 0.3)
    ax.set_xlabel(f"macro-F1, mean ± std over {result.n_splits} fold(s)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"textlstm search: {len(trials)} settings, best in red")
    return save_figure(fig, path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def config_toml(settings: dict[str, Any], header: list[str]) -> str:
    """A `Config.to_dict()` as TOML (unset values are left out: they default to unset)."""
    lines = [f"# {h}" for h in header]
    if settings.get("preset"):
        lines.append(f"preset = {_toml_value(settings['preset'])}")
    for section, values in settings.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def write_outputs(result: SearchResult, job: SearchJob) -> dict[str, Path]:
    out = job.out
    atomic_write_text(out / "results.csv", results_csv(result))
    plot_results(result, out / "results.png")
    best = result.best
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [f"Best of {len(result.trials)} settings from {job.grid} on {job.data} ({stamp}):",
              f"  {setting_label(best.params)}",
              f"  macro-F1 {pm(best.mean, best.std)} over {result.n_splits} fold(s).",
              f"Train with: textlstm train DATA --config {out / 'best.toml'}"
              + "".join(f" --vectors {v}" for v in job.vectors or [])]
    atomic_write_text(out / "best.toml", config_toml(result.best_config.to_dict(), header))
    return {name: out / name for name in ("results.csv", "results.png", "best.toml")}
