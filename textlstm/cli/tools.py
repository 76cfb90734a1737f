"""The tuning and deployment commands: `search`, `lr-find`, `pretrain-lm`, `compress`, `export`. Registered on
the app in `commands.py`; each turns its options into typed values and calls one library function."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..classifier import TextClassifier
from ._common import (BadLinesOpt, ConfigOpt, EncodingOpt, FormatOpt, LabelFieldOpt, PresetOpt, SetOpt,
                      TextFieldOpt, VectorsOpt, data_flags, err, handle_errors, out, settings)


@handle_errors
def search(
    data: Path = typer.Argument(..., exists=True, help="Labelled training data file or folder."),
    grid: Path = typer.Option(..., "--grid", exists=True, dir_okay=False, help='TOML file of settings to try, e.g. "model.hidden_size" = [64, 128] (a single value is fixed).'),
    out_dir: Path = typer.Option(..., "--out", help="Folder for results.csv, results.png, best.toml (and model/ with --refit)."),
    cv: int = typer.Option(5, "--cv", help="Folds of stratified cross-validation (not used with --val)."),
    val: Optional[Path] = typer.Option(None, "--val", exists=True, help="Score each setting on this file instead of cross-validating."),
    n_random: Optional[int] = typer.Option(None, "--random", help="Try N settings sampled from the grid instead of all of them."),
    refit: bool = typer.Option(False, "--refit", help="Train the best setting on all of DATA and save it to OUT/model."),
    vectors: Optional[List[str]] = VectorsOpt, preset: Optional[str] = PresetOpt,
    config_file: Optional[Path] = ConfigOpt, overrides: List[str] = SetOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results in an existing OUT."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt, on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Grid or random search over any settings, scored by cross-validated macro-F1."""
    from ..display import SearchProgress, results_table
    from ..jobs.search import SearchJob, run_search
    from ..jobs.searchreport import setting_label

    cfg = settings(preset, config_file, overrides, data_flags(fmt, text_field, label_field, encoding, on_bad_lines))
    job = SearchJob(data, grid, out_dir, cv=cv, val=val, n_random=n_random, vectors=vectors,
                    refit=refit, overwrite=overwrite)
    progress = None if quiet else SearchProgress(err)
    try:
        result = run_search(cfg, job, [progress] if progress else [])
    finally:
        if progress:
            progress.close()
    out.print(results_table(result))
    out.print(f"best: {setting_label(result.best.params)} ({result.seconds:.0f} s in all)")
    for path in [*result.files.values(), *([result.model_dir] if result.model_dir else [])]:
        out.print(f"wrote {path}")


@handle_errors
def lr_find(
    data: Path = typer.Argument(..., exists=True, help="Labelled training data file or folder."),
    plot: Path = typer.Option(..., "--out", help="PNG of the training loss against the learning rate."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the curve and the suggestions as JSON here."),
    start: float = typer.Option(1e-6, "--start", help="Learning rate of the first step."),
    end: float = typer.Option(1.0, "--end", help="Learning rate of the last step."),
    steps: int = typer.Option(200, "--steps", help="Mini-batches over which the LR grows exponentially from --start to --end."),
    vectors: Optional[List[str]] = VectorsOpt, preset: Optional[str] = PresetOpt,
    config_file: Optional[Path] = ConfigOpt, overrides: List[str] = SetOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt, on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Learning-rate range test: the loss while the LR grows, and a suggested LR (train.lr)."""
    from ..display import RangeTestProgress
    from ..jobs.lrfind import lr_find as range_test
    from ..jobs.lrfind import no_descent, plot_lr_find
    from ..metrics import write_json

    cfg = settings(preset, config_file, overrides, data_flags(fmt, text_field, label_field, encoding, on_bad_lines))
    progress = None if quiet else RangeTestProgress(err)
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
    if no_descent(result.losses):
        err.print("warning: the loss never fell below its first steps' level, so the suggestion is no more than "
                  "the start LR; run more --steps (the LR then grows more slowly) or a lower --end")


@handle_errors
def pretrain_lm_cmd(
    data: Path = typer.Argument(..., exists=True, help="Unlabelled text: one document per line, or any data file (labels are ignored)."),
    out_dir: Path = typer.Option(..., "--out", help="Encoder directory to write; train from it with `textlstm train --encoder DIR`."),
    vectors: Optional[List[str]] = VectorsOpt, preset: Optional[str] = PresetOpt,
    config_file: Optional[Path] = ConfigOpt, overrides: List[str] = SetOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing encoder directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, encoding: Optional[str] = EncodingOpt,
    on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Pretrain the embeddings and recurrent layers as a bidirectional language model."""
    from ..atomic import check_output_dir
    from ..display import RichProgress
    from ..training.lm import pretrain_lm

    cfg = settings(preset, config_file, overrides, data_flags(fmt, text_field, None, encoding, on_bad_lines))
    check_output_dir(out_dir, overwrite)
    callbacks = [] if quiet else [RichProgress(err, cfg.train.epochs)]
    path, history = pretrain_lm(data, out_dir, cfg, vectors=vectors, callbacks=callbacks)
    scored = [h for h in history if h.get("val_perplexity") is not None]
    if scored:  # the encoder saved is the epoch with the lowest held-out perplexity
        best = min(scored, key=lambda h: h["val_perplexity"])
        out.print(f"held-out perplexity {best['val_perplexity']:.1f} (epoch {best['epoch']}, kept)")
    out.print(f"encoder saved to {path}")


@handle_errors
def compress_cmd(
    model: Path = typer.Argument(..., help="Model directory to compress."),
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    prune: float = typer.Option(0.0, "--prune", help="Target share of zero weights in the LSTM/GRU and linear layers, e.g. 0.5 (0: no pruning)."),
    scope: str = typer.Option("global", "--prune-scope", help="global: one magnitude threshold over all pruned weights; layer: the same share in each tensor."),
    steps: int = typer.Option(1, "--prune-steps", help="Reach --prune in this many equal steps (fine-tuning after each with --train)."),
    train_path: Optional[Path] = typer.Option(None, "--train", exists=True, help="Labelled data to fine-tune on after each pruning step."),
    epochs: int = typer.Option(1, "--finetune-epochs", help="Epochs of fine-tuning after each pruning step."),
    lr: Optional[float] = typer.Option(None, "--finetune-lr", help="Learning rate of the fine-tuning (default: the model's train.lr)."),
    quantize: str = typer.Option("none", "--quantize", help="none or dynamic-int8: int8 LSTM/GRU and linear layers for CPU inference, applied on load."),
    eval_path: Optional[Path] = typer.Option(None, "--eval", exists=True, help="Labelled file: accuracy, macro-F1 and docs/s before and after each step."),
    batch_size: int = typer.Option(256, "--batch-size", help="Texts per forward pass when measuring docs/s."),
    threads: int = typer.Option(0, "--threads", help="Torch threads for measuring and fine-tuning (0: the model's train.threads)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """Prune and/or quantise a model and report accuracy, size, zeros and speed per step."""
    from ..display import RichProgress, compress_table
    from ..jobs.compress import CompressOptions, compress
    from ..metrics import write_json

    opts = CompressOptions(prune=prune, prune_scope=scope, prune_steps=steps, train=train_path,
                           finetune_epochs=epochs, finetune_lr=lr, quantize=quantize, eval=eval_path,
                           batch_size=batch_size, threads=threads)
    result = compress(model, out_dir, opts, overwrite=overwrite,
                      callbacks=[] if quiet else [RichProgress(err, epochs)])
    out.print(compress_table(result))
    if json_path:
        write_json(result.to_dict(), json_path)
    out.print(f"model saved to {result.model_dir}")


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
    from ..jobs.export import export_onnx

    if fmt != "onnx":
        raise typer.BadParameter(f"--format {fmt!r} is not supported; use onnx.")
    result = export_onnx(TextClassifier.load(model), out_path, opset=opset, overwrite=overwrite, quantize=quantize)
    checked = ("not checked: onnxruntime is not installed" if result.max_abs_diff is None
               else f"onnxruntime matches textlstm's probabilities within {result.max_abs_diff:.1e}")
    out.print(f"wrote {result.path} and {result.sidecar} ({checked})")
