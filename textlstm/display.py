"""All terminal display: rich progress bars (training epochs, search fits, the LR range test) and
rich tables (evaluation reports, search results, compression steps). Only the CLI imports this
module; the library reports through callbacks and return values."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .callbacks import Callback, epoch_line, validation_parts
from .jobs.compress import CompressResult
from .jobs.searchreport import SearchResult, pm
from .metrics import weighted_average
from .sklearn import FitCallback, TextLSTMClassifier


class RichProgress(Callback):
    """Shows loss, tokens/s and ETA while an epoch runs; prints a summary when it ends."""

    def __init__(self, console: Console, total_epochs: int):
        self.console, self.total = console, total_epochs
        self.progress: Progress | None = None

    def on_info(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def on_epoch_start(self, epoch: int, n_batches: int, frozen: bool) -> None:
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{self.total}" + (" (embeddings frozen)" if frozen else "")),
            BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[speed]:,.0f} tok/s"), TimeRemainingColumn(),
            console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=n_batches, loss=0.0, speed=0.0)
        self.start, self.tokens, self.loss = time.perf_counter(), 0, None

    def on_step(self, epoch: int, step: int, loss: float, tokens: int, lr: float) -> None:
        self.tokens += tokens
        self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        speed = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.progress.update(self.task, completed=step, loss=self.loss, speed=speed)

    def on_validation(self, record: dict[str, Any]) -> None:
        if record.get("mid_epoch"):
            self.console.print("  validation: " + ", ".join(validation_parts(record)))

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.console.print(epoch_line(record, self.total), highlight=False)


# -- progress ---------------------------------------------------------------------------------
class SearchProgress(FitCallback):
    """The CLI's display: a bar over all fits (trial k of n, fold j, the setting) and a bar over
    the steps of the current fit. Counts fits in GridSearchCV's order (setting-major)."""

    def __init__(self, console):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.fits, self.n_splits, self.n_candidates, self.epochs = 0, 1, 1, None

    def on_search_start(self, n_candidates: int, n_splits: int, settings: list[dict]) -> None:
        self.n_candidates, self.n_splits = n_candidates, n_splits
        self.keys = [k for k in settings[0] if len({repr(s[k]) for s in settings}) > 1]
        self.trials = self.progress.add_task("fits", total=n_candidates * n_splits)
        self.steps = self.progress.add_task("", total=None)
        self.progress.start()

    def on_fit_start(self, params: dict[str, Any], n_texts: int) -> None:
        setting = ", ".join(f"{k}={params['overrides'][k]}" for k in self.keys)
        trial, fold = divmod(self.fits, self.n_splits)
        self.epochs = TextLSTMClassifier(**params).build_config().train.epochs
        self.progress.update(self.trials, description=f"trial {trial + 1}/{self.n_candidates} "
                             f"fold {fold + 1}/{self.n_splits}  {setting}")

    def on_fit_end(self, seconds: float) -> None:
        self.fits += 1
        self.progress.update(self.trials, completed=self.fits)
        if not self.progress.console.is_terminal:  # a log gets one line per fit instead of bars
            self.progress.console.print(f"{self.progress.tasks[self.trials].description}: "
                                        f"trained in {seconds:.1f} s", highlight=False)

    def on_refit_start(self, n_texts: int) -> None:
        self.progress.update(self.trials, description=f"refit on all {n_texts} examples")
        self.epochs = None

    def on_epoch_start(self, epoch: int, n_batches: int, frozen: bool) -> None:
        of = f"/{self.epochs}" if self.epochs else ""
        self.progress.update(self.steps, description=f"  epoch {epoch}{of}", total=n_batches, completed=0)

    def on_step(self, epoch: int, step: int, loss: float, tokens: int, lr: float) -> None:
        self.progress.update(self.steps, completed=step)

    def close(self) -> None:
        self.progress.stop()


class RangeTestProgress:
    """The CLI's display: a bar over the steps with the current LR and smoothed loss. Pass the
    object as `progress=`; `close()` when done."""

    def __init__(self, console):
        self.progress = Progress(TextColumn("LR range test"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("LR {task.fields[lr]:.2e}  loss {task.fields[loss]:.4f}"),
                                 console=console, transient=True)
        self.task = None

    def __call__(self, step: int, steps: int, lr: float, loss: float) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("", total=steps, lr=lr, loss=loss)
        self.progress.update(self.task, completed=step, lr=lr, loss=loss)

    def close(self) -> None:
        self.progress.stop()


# -- tables -----------------------------------------------------------------------------------
def evaluation_table(report: dict[str, Any], title: str = "Evaluation") -> Table:
    """A rich table in the layout of scikit-learn's `classification_report` (multi-label: with
    each label's ROC-AUC and threshold, and the four averages, subset accuracy, Hamming loss)."""
    if report.get("task") == "multilabel":
        return _multilabel_table(report, title)
    table = Table(title=title)
    table.add_column("label")
    for name in ("precision", "recall", "f1", "support"):
        table.add_column(name, justify="right")
    for label, row in report["per_class"].items():
        table.add_row(str(label), f"{row['precision']:.4f}", f"{row['recall']:.4f}",
                      f"{row['f1']:.4f}", str(row["support"]))
    n = str(report["n"])
    table.add_section()
    table.add_row("accuracy", "", "", f"{report['accuracy']:.4f}", n, style="bold")
    table.add_row("macro avg", f"{report['macro_precision']:.4f}", f"{report['macro_recall']:.4f}",
                  f"{report['macro_f1']:.4f}", n)
    table.add_row("micro avg", "", "", f"{report['micro_f1']:.4f}", n)
    table.add_row("weighted avg", f"{weighted_average(report, 'precision'):.4f}",
                  f"{weighted_average(report, 'recall'):.4f}", f"{report['weighted_f1']:.4f}", n)
    return table


def _multilabel_table(report: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("label")
    for name in ("precision", "recall", "f1", "support", "ROC-AUC", "threshold"):
        table.add_column(name, justify="right")

    def num(value: Any) -> str:
        return "—" if value is None else f"{value:.4f}"
    for label, row in report["per_class"].items():
        table.add_row(str(label), num(row["precision"]), num(row["recall"]), num(row["f1"]), str(row["support"]),
                      num(row.get("roc_auc")), f"{row['threshold']:.2f}" if "threshold" in row else "")
    n = str(report["n"])
    table.add_section()
    for kind in ("micro", "macro", "weighted", "samples"):
        table.add_row(f"{kind} avg", num(report[f"{kind}_precision"]), num(report[f"{kind}_recall"]),
                      num(report[f"{kind}_f1"]), n, num(report["macro_roc_auc"]) if kind == "macro" else "", "",
                      style="bold" if kind == "micro" else None)
    table.add_row("subset accuracy", "", "", num(report["accuracy"]), n)
    table.add_row("Hamming loss", "", "", num(report["hamming_loss"]), n)
    return table


def ensemble_table(reports: list[tuple[str, dict[str, Any]]], title: str) -> Table:
    """Each member's and the ensemble's headline scores on one labelled file (the last row bold)."""
    multi = any(r.get("task") == "multilabel" for _, r in reports)
    names = ("micro_f1", "macro_f1", "accuracy") if multi else ("accuracy", "macro_f1", "weighted_f1")
    headers = {"accuracy": "subset accuracy" if multi else "accuracy"}
    table = Table("model", *(headers.get(n, n.replace("_", "-")) for n in names), title=title)
    for i, (name, report) in enumerate(reports):
        table.add_row(name, *(f"{report[n]:.4f}" for n in names), style="bold" if i == len(reports) - 1 else None)
    return table


def members_table(members: list[dict[str, Any]]) -> Table:
    """An ensemble's members: where each came from, its weight and what sets it apart."""
    keys = ("weight", "cell", "hidden_size", "num_layers", "pooling", "vocab_size", "seed", "best_val_macro_f1")
    table = Table("member", "trained as", *(k.replace("_", " ") for k in keys), title="Ensemble members")
    for i, m in enumerate(members):
        table.add_row(str(i), str(m.get("source") or "-"), *("-" if m.get(k) is None else
                      f"{m[k]:.4f}" if k == "best_val_macro_f1" else str(m[k]) for k in keys))
    return table


def threshold_table(old: dict[str, float], new: dict[str, float], before: dict[str, Any], after: dict[str, Any],
                    title: str) -> Table:
    """Each label's threshold and F1 before and after retuning, then the averages."""
    table = Table(title=title)
    for name in ("label", "threshold was", "threshold", "F1 was", "F1", "support"):
        table.add_column(name, justify="left" if name == "label" else "right")
    for label, row in after["per_class"].items():
        was = old.get(label)
        table.add_row(str(label), "—" if was is None else f"{was:.2f}", f"{new[label]:.2f}",
                      f"{before['per_class'][label]['f1']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    table.add_section()
    for key, name in (("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"), ("samples_f1", "samples-F1"),
                      ("accuracy", "subset accuracy")):
        table.add_row(name, "", "", f"{before[key]:.4f}", f"{after[key]:.4f}", str(after["n"]), style="bold")
    return table


CONFUSION_TABLE_LABELS = 10  # beyond this the matrix no longer reads as a table in a terminal


def confusion_table(report: dict[str, Any]) -> Table | None:
    """Rows true, columns predicted, counts; None beyond `CONFUSION_TABLE_LABELS` labels."""
    labels, counts = report["labels"], report.get("confusion_matrix")
    if counts is None or len(labels) > CONFUSION_TABLE_LABELS:
        return None
    table = Table(title="Confusion matrix (rows: true, columns: predicted)")
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(str(label), justify="right")
    for label, row in zip(labels, counts):
        table.add_row(str(label), *(str(n) for n in row))
    return table


def results_table(result: SearchResult) -> Table:
    """One row per setting, best first: its values, mean ± std of macro-F1 and accuracy."""
    folds = f"{result.n_splits} folds" if result.n_splits > 1 else "the validation file"
    table = Table(title=f"{len(result.trials)} settings, scored on {folds}")
    for name in ["rank", *result.keys, "macro-F1", "accuracy", "fit s"]:
        key = name in result.keys
        table.add_column(name, justify="left" if key else "right", no_wrap=not key, overflow="fold")
    for rank, t in enumerate(result.trials, 1):
        table.add_row(str(rank), *(str(t.params[k]) for k in result.keys), pm(*t.stats()),
                      pm(*t.stats("accuracy")), f"{t.fit_seconds:.1f}", style="bold" if rank == 1 else None)
    return table


def compress_table(result: CompressResult) -> Table:
    """The report as a rich table: one row per step, deltas against the original."""
    table = Table("step", "acc %", "F1 %", "zeros %", "MiB", "docs/s", "speed", "tune s",
                  title=f"Compression ({result.n_eval} evaluation texts, {result.threads or 'all'} threads)")
    first = result.steps[0]
    num = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
    for s in result.steps:
        speed = s.docs_per_s / first.docs_per_s if s.docs_per_s and first.docs_per_s else None
        table.add_row(s.step, num(s.accuracy and 100 * s.accuracy, ".2f"), num(s.macro_f1 and 100 * s.macro_f1, ".2f"),
                      f"{100 * s.zero_share:.1f}", f"{s.file_bytes / 2**20:.2f}", num(s.docs_per_s, ",.0f"),
                      num(speed, ".2f") + ("×" if speed else ""), num(s.finetune_seconds, ",.0f"))
    return table
