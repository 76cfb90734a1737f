"""What `textlstm search` writes: the results table (rich), `results.csv`, `results.png` and
`best.toml` — the full best configuration, which `textlstm train --config best.toml` reads."""
from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from .atomic import atomic_write_text
from .metrics import new_figure, save_figure

if TYPE_CHECKING:
    from .search import SearchJob, SearchResult


def setting_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(the one setting)"


def _pm(mean: float, std: float) -> str:
    return "failed" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def results_table(result: "SearchResult") -> Table:
    """One row per setting, best first: its values, mean ± std of macro-F1 and accuracy."""
    folds = f"{result.n_splits} folds" if result.n_splits > 1 else "the validation file"
    table = Table(title=f"{len(result.trials)} settings, scored on {folds}")
    for name in ["rank", *result.keys, "macro-F1", "accuracy", "fit s"]:
        key = name in result.keys
        table.add_column(name, justify="left" if key else "right", no_wrap=not key, overflow="fold")
    for rank, t in enumerate(result.trials, 1):
        table.add_row(str(rank), *(str(t.params[k]) for k in result.keys), _pm(*t.stats()),
                      _pm(*t.stats("accuracy")), f"{t.fit_seconds:.1f}", style="bold" if rank == 1 else None)
    return table


def results_csv(result: "SearchResult") -> str:
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


def plot_results(result: "SearchResult", path: str | Path) -> Path:
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


def write_outputs(result: "SearchResult", job: "SearchJob") -> dict[str, Path]:
    out = job.out
    atomic_write_text(out / "results.csv", results_csv(result))
    plot_results(result, out / "results.png")
    best = result.best
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [f"Best of {len(result.trials)} settings from {job.grid} on {job.data} ({stamp}):",
              f"  {setting_label(best.params)}",
              f"  macro-F1 {_pm(best.mean, best.std)} over {result.n_splits} fold(s).",
              f"Train with: textlstm train DATA --config {out / 'best.toml'}"
              + (f" --vectors {job.vectors}" if job.vectors else "")]
    atomic_write_text(out / "best.toml", config_toml(result.best_config.to_dict(), header))
    return {name: out / name for name in ("results.csv", "results.png", "best.toml")}
