"""The `textlstm` command: a thin typer layer over the library. Each command turns its options
into typed values, calls one library function and formats the result."""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from . import corpora as corpora_lib
from . import distributed
from .classifier import TextClassifier
from .config import Config, make_config, preset_names
from .data import read_dataset
from .errors import TextLSTMError

app = typer.Typer(help="Text classification with pretrained embeddings and bidirectional LSTMs.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
corpora_app = typer.Typer(help="The bundled corpus and recipes for public corpora.", no_args_is_help=True)
app.add_typer(corpora_app, name="corpora")
out = Console()
err = Console(stderr=True)
STATE = {"verbose": False}

# Options shared by the commands that read data files.
FormatOpt = typer.Option("auto", "--format", help="Data format: auto, csv, tsv, jsonl, fasttext, folder, text.")
TextFieldOpt = typer.Option(None, "--text-field", help="Column/key holding the text (detected when omitted).")
LabelFieldOpt = typer.Option(None, "--label-field", help="Column/key holding the label (detected when omitted).")
EncodingOpt = typer.Option("utf-8", "--encoding", help="Text encoding of the data files, e.g. latin-1.")
BadLinesOpt = typer.Option("error", "--on-bad-lines", help="'error' stops at the first bad line; 'skip' skips, counts and reports.")


def handle_errors(fn: Callable) -> Callable:
    """Bad input ends with one clear line on stderr and exit code 1 (a traceback with --verbose)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TextLSTMError as exc:
            if STATE["verbose"]:
                err.print_exception()
            rank = "" if distributed.is_main_process() else f" (rank {os.environ['RANK']})"
            err.print(f"error{rank}: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper


@app.callback()
def main_options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs and tracebacks.")):
    STATE["verbose"] = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, force=True,
                        handlers=[RichHandler(console=err, show_path=False)], format="%(message)s")


def data_settings(cfg: Config, fmt: str, text_field, label_field, encoding: str, bad_lines: str) -> Config:
    overrides = [f"data.format={json.dumps(fmt)}", f"data.encoding={json.dumps(encoding)}",
                 f"data.on_bad_lines={json.dumps(bad_lines)}"]
    cfg.override(overrides)
    cfg.data.text_field = text_field or cfg.data.text_field
    cfg.data.label_field = label_field or cfg.data.label_field
    return cfg


@app.command()
@handle_errors
def train(
    data: Optional[Path] = typer.Argument(None, help="Training data file or folder (default: the bundled sentiment corpus)."),
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation file (default: a stratified split of DATA)."),
    val_split: Optional[float] = typer.Option(None, "--val-split", help="Share of DATA held out for validation when no --val (default 0.1)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Texts per batch (per process under torchrun); sets train.batch_size."),
    scale_lr: Optional[str] = typer.Option(None, "--scale-lr", help="Scale train.lr to the global batch size relative to train.base_batch_size: none, linear or sqrt."),
    test: Optional[Path] = typer.Option(None, "--test", help="Test file evaluated with the best model."),
    vectors: Optional[Path] = typer.Option(None, "--vectors", help="Pretrained vectors: GloVe, word2vec (text/binary), fastText .vec/.bin, .gz ok."),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"Settings preset: {', '.join(preset_names()) or 'none shipped'}."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML file of settings, one table per section (model, train, tokenizer, ...)."),
    overrides: List[str] = typer.Option([], "--set", help="Override a setting: section.key=value (repeatable)."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for the training curves and confusion matrix PNGs."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    fmt: str = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: str = EncodingOpt, on_bad_lines: str = BadLinesOpt,
):
    """Train a classifier, evaluate its best epoch on validation (and test) and save it.

    Runs data-parallel when launched with `torchrun --nproc-per-node N -m textlstm.cli train …`."""
    from .trainjob import TrainJob, run_train_job
    from .ui import RichProgress

    cfg = data_settings(make_config(preset, config_file, overrides), fmt, text_field, label_field, encoding, on_bad_lines)
    if val_split is not None:
        cfg.override([f"data.val_split={val_split}"])
    if batch_size is not None:
        cfg.override([f"train.batch_size={batch_size}"])
    if scale_lr is not None:
        cfg.override([f"train.lr_scaling={json.dumps(scale_lr)}"])
    job = TrainJob.with_defaults(data, val, test, vectors, out_dir, resume=resume, overwrite=overwrite)
    callbacks = [] if quiet or not distributed.is_main_process() else [RichProgress(out, cfg.train.epochs)]
    try:
        result = run_train_job(cfg.validate(), job, callbacks)
    finally:
        distributed.leave()
    if result.model_dir is None:
        return  # another rank of a torchrun job reports and saves
    for name, report in result.evaluations.items():
        out.print(_table(report, f"{name}: {report['n']} examples"))
    if plots:
        _write_plots(plots, result.evaluations, result.classifier.meta_["history"])
    out.print(f"model saved to {result.model_dir}")


@app.command("eval")
@handle_errors
def evaluate(
    model: Path = typer.Argument(..., help="Model directory."),
    data: Path = typer.Argument(..., help="Labelled data file to evaluate on."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for the confusion matrix PNG."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown-labels", help="Leave out (and count) examples whose label the model does not know, instead of failing."),
    fmt: str = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: str = EncodingOpt, on_bad_lines: str = BadLinesOpt,
):
    """Accuracy, per-class and averaged precision / recall / F1, and the confusion matrix."""
    from .metrics import plot_confusion, write_json

    clf = TextClassifier.load(model)
    examples, rep = read_dataset(data, format=fmt, text_field=text_field, label_field=label_field,
                                 encoding=encoding, on_bad_lines=on_bad_lines)
    err.print(rep.summary(), markup=False, highlight=False)
    report = clf.evaluate([e.text for e in examples], [e.label for e in examples], skip_unknown=skip_unknown)
    if report["skipped_unknown_labels"]:
        skipped = ", ".join(f"{k!r} ({n})" for k, n in report["skipped_unknown_labels"].items())
        err.print(f"left out examples with labels the model does not know: {skipped}", markup=False)
    out.print(_table(report, f"{data}: {report['n']} examples"))
    if json_path:
        write_json(report, json_path)
    if plots:
        plot_confusion(report, Path(plots) / "confusion_matrix.png")


@app.command()
@handle_errors
def predict(
    model: Path = typer.Argument(..., help="Model directory."),
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to classify (or read standard input)."),
    input_path: Optional[Path] = typer.Option(None, "--input", help="File of texts (CSV/TSV/JSONL/fastText/text)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Predictions file (.csv or .jsonl) for --input."),
    proba: bool = typer.Option(False, "--proba", help="Print class probabilities too."),
    explain: Optional[Path] = typer.Option(None, "--explain", help="Write an HTML page shading tokens by attention."),
    batch_size: int = typer.Option(256, "--batch-size", help="Texts per forward pass."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted --input job from <output>.partial."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    fmt: str = FormatOpt, text_field: Optional[str] = TextFieldOpt, encoding: str = EncodingOpt,
):
    """Predict labels for texts given as arguments, on standard input, or in a file."""
    from .explain import write_html
    from .jobs import predict_file

    clf = TextClassifier.load(model)
    if input_path is not None:
        if output is None:
            raise typer.BadParameter("--input needs --output (a .csv or .jsonl file).")
        cfg = data_settings(Config(), fmt, text_field, None, encoding, "error")
        try:
            summary = predict_file(clf, input_path, output, data=cfg.data, batch_size=batch_size,
                                   resume=resume, overwrite=overwrite)
        except KeyboardInterrupt:
            err.print(f"error: interrupted; rerun with --resume to continue from {output}.partial")
            raise typer.Exit(130) from None
        err.print(summary.report.summary(), markup=False, highlight=False)
        out.print(f"wrote {summary.rows} predictions to {summary.output}"
                  + (f" ({summary.resumed_from} from the interrupted run)" if summary.resumed_from else "")
                  + (f"; {summary.errors} rows have an error (see the error column)" if summary.errors else ""))
        return
    if resume:
        raise typer.BadParameter("--resume needs --input and --output.")
    texts = list(texts or [])
    if not texts and not sys.stdin.isatty():
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise typer.BadParameter("Give texts as arguments, on standard input, or with --input.")
    probs = clf.predict_proba(texts, batch_size)
    for text, p in zip(texts, probs):
        label = clf.classes_[int(p.argmax())]
        extra = "\t" + " ".join(f"{c}={x:.4f}" for c, x in zip(clf.classes_, p)) if proba else ""
        typer.echo(f"{label}{extra}\t{text}")  # plain tab-separated lines for scripts
    if explain:
        write_html(clf.explain(texts), explain)


@app.command()
@handle_errors
def info(model: Path = typer.Argument(..., help="Model directory.")):
    """Settings, labels, vocabulary size and training metrics of a model."""
    clf = TextClassifier.load(model)
    meta = clf.meta_
    out.print(f"[bold]{model}[/bold]: labels {', '.join(clf.classes_)}; vocabulary {len(clf.vocab_):,}")
    table = Table("setting", "value", title="Settings")
    for section, values in clf.config.to_dict().items():
        for key, value in (values.items() if isinstance(values, dict) else [("", values)]):
            table.add_row(f"{section}.{key}" if key else section, str(value))
    out.print(table)
    summary = {k: v for k, v in meta.items() if k not in ("history", "evaluations")}
    out.print_json(json.dumps(summary, default=str))
    for name, report in meta.get("evaluations", {}).items():
        out.print(f"{name}: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}")


@app.command()
@handle_errors
def pretrain(
    data: Path = typer.Argument(..., help="Unlabelled text: one document per line, or any data file."),
    out_path: Path = typer.Option(..., "--out", help="Vectors file to write (word2vec text format; .gz ok)."),
    vector_size: int = typer.Option(100, "--vector-size", help="Dimensions of the vectors."),
    window: int = typer.Option(5, "--window", help="Context window."),
    min_count: int = typer.Option(5, "--min-count", help="Ignore words rarer than this."),
    epochs: int = typer.Option(5, "--epochs", help="Passes over the text."),
    workers: int = typer.Option(2, "--workers", help="Worker threads."),
    tokenizer: str = typer.Option("spacy", "--tokenizer", help="spacy or regex (use the one you train with)."),
    lang: str = typer.Option("en", "--lang", help="spaCy language code."),
    fmt: str = FormatOpt, text_field: Optional[str] = TextFieldOpt, encoding: str = EncodingOpt,
):
    """Train word2vec vectors on your own unlabelled text with textlstm's tokenizer."""
    from .pretraining import pretrain_file

    cfg = make_config(overrides=[f"tokenizer.kind={json.dumps(tokenizer)}", f"tokenizer.lang={json.dumps(lang)}"])
    cfg = data_settings(cfg, fmt, text_field, None, encoding, "error")
    path = pretrain_file(data, out_path, cfg, vector_size=vector_size, window=window,
                         min_count=min_count, epochs=epochs, workers=workers,
                         progress=lambda done, total: out.print(f"word2vec epoch {done}/{total}"))
    out.print(f"vectors written to {path}")


@corpora_app.command("list")
@handle_errors
def corpora_list():
    """The bundled corpus and the public corpora that can be downloaded."""
    table = Table("name", "description", title="Corpora")
    table.add_row("sentiment (bundled)", f"written for textlstm, in {corpora_lib.DEFAULT_CORPUS}")
    for recipe in corpora_lib.list_recipes():
        table.add_row(recipe.name, recipe.description)
    out.print(table)


@corpora_app.command("download")
@handle_errors
def corpora_download(
    name: str = typer.Argument(..., help="Corpus name (see `textlstm corpora list`)."),
    out_dir: Path = typer.Option(Path("data"), "--out", help="Folder for the archive and the converted files."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the archive's SHA-256."),
):
    """Download a public corpus, verify its checksum and convert it to textlstm's formats."""
    paths = corpora_lib.download(name, out_dir / name, verify=verify)
    for p in paths:
        out.print(f"wrote {p}")


VectorsOpt = typer.Option(None, "--vectors", help="Pretrained vectors file (as for train).")
PresetOpt = typer.Option(None, "--preset", help=f"Settings preset: {', '.join(preset_names()) or 'none shipped'}.")
ConfigOpt = typer.Option(None, "--config", help="TOML file of settings (as for train).")
SetOpt = typer.Option([], "--set", help="Override a setting: section.key=value (repeatable).")


@app.command()
@handle_errors
def search(
    data: Path = typer.Argument(..., help="Labelled training data file or folder."),
    grid: Path = typer.Option(..., "--grid", help='TOML file of settings to try, e.g. "model.hidden_size" = [64, 128] (a single value is fixed).'),
    out_dir: Path = typer.Option(..., "--out", help="Folder for results.csv, results.png, best.toml (and model/ with --refit)."),
    cv: int = typer.Option(5, "--cv", help="Folds of stratified cross-validation (not used with --val)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Score each setting on this file instead of cross-validating."),
    n_random: Optional[int] = typer.Option(None, "--random", help="Try N settings sampled from the grid instead of all of them."),
    refit: bool = typer.Option(False, "--refit", help="Train the best setting on all of DATA and save it to OUT/model."),
    vectors: Optional[Path] = VectorsOpt, preset: Optional[str] = PresetOpt,
    config_file: Optional[Path] = ConfigOpt, overrides: List[str] = SetOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results in an existing OUT."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    fmt: str = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: str = EncodingOpt, on_bad_lines: str = BadLinesOpt,
):
    """Grid or random search over any settings, scored by cross-validated macro-F1."""
    from .search import SearchJob, SearchProgress, run_search
    from .searchreport import results_table, setting_label

    cfg = data_settings(make_config(preset, config_file, overrides), fmt, text_field, label_field, encoding, on_bad_lines)
    job = SearchJob(data, grid, out_dir, cv=cv, val=val, n_random=n_random, vectors=vectors,
                    refit=refit, overwrite=overwrite)
    progress = None if quiet else SearchProgress(out)
    try:
        result = run_search(cfg, job, [progress] if progress else [])
    finally:
        if progress:
            progress.close()
    out.print(results_table(result))
    out.print(f"best: {setting_label(result.best.params)} ({result.seconds:.0f} s in all)")
    for path in [*result.files.values(), *([result.model_dir] if result.model_dir else [])]:
        out.print(f"wrote {path}")


@app.command("lr-find")
@handle_errors
def lr_find(
    data: Path = typer.Argument(..., help="Labelled training data file or folder."),
    plot: Path = typer.Option(..., "--out", help="PNG of the training loss against the learning rate."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the curve and the suggestions as JSON here."),
    start: float = typer.Option(1e-6, "--start", help="Learning rate of the first step."),
    end: float = typer.Option(1.0, "--end", help="Learning rate of the last step."),
    steps: int = typer.Option(200, "--steps", help="Mini-batches over which the LR grows exponentially from --start to --end."),
    vectors: Optional[Path] = VectorsOpt, preset: Optional[str] = PresetOpt,
    config_file: Optional[Path] = ConfigOpt, overrides: List[str] = SetOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    fmt: str = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: str = EncodingOpt, on_bad_lines: str = BadLinesOpt,
):
    """Learning-rate range test: the loss while the LR grows, and a suggested LR (train.lr)."""
    from .lrfind import RangeTestProgress, lr_find as range_test, plot_lr_find
    from .metrics import write_json

    cfg = data_settings(make_config(preset, config_file, overrides), fmt, text_field, label_field, encoding, on_bad_lines)
    progress = None if quiet else RangeTestProgress(out)
    try:
        result = range_test(cfg, data, vectors=vectors, start=start, end=end, steps=steps, progress=progress)
    finally:
        if progress:
            progress.close()
    plot_lr_find(result, plot)
    if json_path:
        write_json(result.to_dict(), json_path)
    out.print(f"suggested LR {result.suggested_lr:.2e} (min-loss LR / 10); steepest descent of the "
              f"loss (upper bound): {result.steepest_lr:.2e}; {len(result.lrs)} steps: {result.reason}")
    out.print(f"plot written to {plot}" + (f", curve to {json_path}" if json_path else ""))


@app.command("compress")
@handle_errors
def compress_cmd(
    model: Path = typer.Argument(..., help="Model directory to compress."),
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    prune: float = typer.Option(0.0, "--prune", help="Target share of zero weights in the LSTM/GRU and linear layers, e.g. 0.5 (0: no pruning)."),
    scope: str = typer.Option("global", "--prune-scope", help="global: one magnitude threshold over all pruned weights; layer: the same share in each tensor."),
    steps: int = typer.Option(1, "--prune-steps", help="Reach --prune in this many equal steps (fine-tuning after each with --train)."),
    train_path: Optional[Path] = typer.Option(None, "--train", help="Labelled data to fine-tune on after each pruning step."),
    epochs: int = typer.Option(1, "--finetune-epochs", help="Epochs of fine-tuning after each pruning step."),
    lr: Optional[float] = typer.Option(None, "--finetune-lr", help="Learning rate of the fine-tuning (default: the model's train.lr)."),
    quantize: str = typer.Option("none", "--quantize", help="none or dynamic-int8: int8 LSTM/GRU and linear layers for CPU inference, applied on load."),
    eval_path: Optional[Path] = typer.Option(None, "--eval", help="Labelled file: accuracy, macro-F1 and docs/s before and after each step."),
    batch_size: int = typer.Option(256, "--batch-size", help="Texts per forward pass when measuring docs/s."),
    threads: int = typer.Option(0, "--threads", help="Torch threads for measuring and fine-tuning (0: the model's train.threads)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """Prune and/or quantise a model and report accuracy, size, zeros and speed per step."""
    from .compress import CompressOptions, compress, report_table
    from .metrics import write_json
    from .ui import RichProgress

    opts = CompressOptions(prune=prune, prune_scope=scope, prune_steps=steps, train=train_path,
                           finetune_epochs=epochs, finetune_lr=lr, quantize=quantize, eval=eval_path,
                           batch_size=batch_size, threads=threads)
    result = compress(model, out_dir, opts, overwrite=overwrite,
                      callbacks=[] if quiet else [RichProgress(out, epochs)])
    out.print(report_table(result))
    if json_path:
        write_json(result.to_dict(), json_path)
    out.print(f"model saved to {result.model_dir}")


@app.command("export")
@handle_errors
def export_cmd(
    model: Path = typer.Argument(..., help="Model directory to export."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    out_path: Path = typer.Option(..., "--out", help="File to write, e.g. model.onnx (the labels, tokenizer and vocabulary go to model.textlstm.json beside it)."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset version."),
    quantize: str = typer.Option("none", "--quantize", help="none or dynamic-int8: onnxruntime's int8 LSTM and linear layers (runs in onnxruntime only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files."),
):
    """Export a model to ONNX with dynamic batch and sequence axes."""
    from .export import export_onnx

    if fmt != "onnx":
        raise typer.BadParameter(f"--format {fmt!r} is not supported; use onnx.")
    result = export_onnx(TextClassifier.load(model), out_path, opset=opset, overwrite=overwrite, quantize=quantize)
    checked = ("not checked: onnxruntime is not installed" if result.max_abs_diff is None
               else f"onnxruntime matches textlstm's probabilities within {result.max_abs_diff:.1e}")
    out.print(f"wrote {result.path} and {result.sidecar} ({checked})")


def _table(report: dict, title: str):
    from .metrics import report_table
    return report_table(report, title)


def _write_plots(folder: Path, evaluations: dict, history: list) -> None:
    from .metrics import plot_confusion, plot_history
    folder.mkdir(parents=True, exist_ok=True)
    plot_history(history, folder / "training_curves.png")
    for name, report in evaluations.items():
        plot_confusion(report, folder / f"confusion_{name}.png")
    out.print(f"plots written to {folder}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
