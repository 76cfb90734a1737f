"""What every `textlstm` command shares: the consoles, the options that read data files, the
error handling that turns a `TextLSTMError` into one line on stderr, and settings from options.

Two kinds of errors reach the user. Usage errors (an unknown option, a missing argument, a path
given to an option that does not exist, a flag's value that is not allowed) are typer's: its
usage message naming the option, and exit code 2; they are found before any data is read. Bad
input found while working (a malformed file, a setting out of range in a --config file or a
--set, a model directory that is incomplete) is one `error: …` line on stderr and exit code 1.

Results (tables, predictions, "model saved to …") go to stdout; progress, logs, warnings and
errors to stderr. Neither stream is ever hard-wrapped: piped output keeps one line per line."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from ..config import Config, make_config, preset_names, set_value
from ..errors import ConfigError, TextLSTMError
from ..training import distributed


def _console(stderr: bool) -> Console:
    """Lines are never wrapped (soft wrap), and without a terminal tables are as wide as their
    content (rich would otherwise fit them, and cut paths, to 80 columns)."""
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal:
        console.width = 1000
    return console


out = _console(stderr=False)
err = _console(stderr=True)
STATE = {"verbose": False}


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


def setup_logging(verbose: bool) -> None:
    """Logs go to stderr: rich's handler on a terminal, one plain line per record otherwise."""
    from rich.logging import RichHandler

    if err.is_terminal:
        handler: logging.Handler = RichHandler(console=err, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, force=True, handlers=[handler])

# Options shared by the commands that read data files.
FormatOpt = typer.Option(None, "--format", help="Data format: auto (the default: from the file name), csv, tsv, jsonl, fasttext, folder, text.")
TextFieldOpt = typer.Option(None, "--text-field", help="Column/key holding the text (detected when omitted).")
LabelFieldOpt = typer.Option(None, "--label-field", help="Column/key holding the label (detected when omitted).")
LabelSepOpt = typer.Option(None, "--label-sep", help="CSV/TSV: the label column holds several labels separated by this string (e.g. ',' or '|'): multi-label data. eval/predict default to the model's.")
ThresholdOpt = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Multi-label models: one decision threshold for every label instead of the model's tuned ones.")
EncodingOpt = typer.Option(None, "--encoding", help="Text encoding of the data files (default utf-8), e.g. latin-1.")
BadLinesOpt = typer.Option(None, "--on-bad-lines", help="'error' (the default) stops at the first bad line; 'skip' skips, counts and reports.")


def _check_vectors(values: Optional[list[str]]) -> Optional[list[str]]:
    """Each --vectors is a built-in name or a file that exists (a usage error otherwise)."""
    from ..embeddings.builtin import BUILTINS, builtin

    for value in values or []:
        if builtin(value) is None and not os.path.exists(value):
            raise typer.BadParameter(f"{value!r} does not exist and is not a built-in source "
                                     f"({', '.join(BUILTINS)}; see `textlstm vectors list`).")
    return values or None


VectorsOpt = typer.Option(None, "--vectors", callback=_check_vectors, help=(
    "Pretrained vectors: a built-in name (textlstm vectors list: glove-6b-50d) or a GloVe / word2vec "
    "(text or binary) / fastText .vec/.bin file, .gz ok; repeat to stack sources."))
PresetOpt = typer.Option(None, "--preset", help=f"Settings preset: {', '.join(preset_names()) or 'none shipped'}.")
ConfigOpt = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML file of settings (as for train).")
SetOpt = typer.Option([], "--set", help="Override a setting: section.key=value (repeatable).")


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


Flags = dict[str, tuple[str, Any]]  # flag as typed -> (setting, typed value or None: not given)


def settings(preset: Optional[str] = None, config_file=None, overrides: list[str] | None = None,
             flags: Flags | None = None) -> Config:
    """Defaults, then the preset, the --config file and the --set overrides, then the typed
    values of the flags the user gave; a bad value is reported under the flag's own name."""
    cfg = make_config(preset, config_file, overrides)
    given = {key: flag for flag, (key, value) in (flags or {}).items() if value is not None}
    for key, flag in given.items():
        value = flags[flag][1]
        try:
            set_value(cfg, key, value, flag)
        except ConfigError as exc:  # "data.format = 'xml' in --format is not allowed. ..."
            raise typer.BadParameter(str(exc).replace(f"{key} = {value!r} in {flag} ", f"{value!r} ", 1),
                                     param_hint=flag) from None
    try:
        return cfg.validate()
    except ConfigError as exc:  # "train.batch_size must be positive, got 0."
        for key, flag in given.items():
            if str(exc).startswith(key + " "):
                raise typer.BadParameter(str(exc).removeprefix(key + " "), param_hint=flag) from None
        raise


def train_flags(epochs: Optional[int], lr: Optional[float], seed: Optional[int],
                batch_size: Optional[int]) -> Flags:
    """The shortcuts for the most changed training settings."""
    return {"--epochs": ("train.epochs", epochs), "--lr": ("train.lr", lr), "--seed": ("train.seed", seed),
            "--batch-size": ("train.batch_size", batch_size)}


EpochsOpt = typer.Option(None, "--epochs", help="Passes over the training data; sets train.epochs.")
LrOpt = typer.Option(None, "--lr", help="Peak learning rate; sets train.lr.")
SeedOpt = typer.Option(None, "--seed", help="Random seed (splits, initialisation, batches); sets train.seed.")
BatchSizeOpt = typer.Option(None, "--batch-size", help="Texts per batch (per process under torchrun); sets train.batch_size.")


def data_flags(fmt: Optional[str], text_field: Optional[str], label_field: Optional[str],
               encoding: Optional[str], bad_lines: Optional[str], label_sep: Optional[str] = None) -> Flags:
    """The reader options every data command shares, as settings of `[data]`."""
    return {"--format": ("data.format", fmt), "--text-field": ("data.text_field", text_field),
            "--label-field": ("data.label_field", label_field), "--encoding": ("data.encoding", encoding),
            "--on-bad-lines": ("data.on_bad_lines", bad_lines), "--label-sep": ("data.label_sep", label_sep)}


def model_data(clf, fmt, text_field, label_field, encoding, on_bad_lines, label_sep):
    """The reader settings of a data file for a trained model: the flags, with the model's own
    label separator when --label-sep is not given."""
    sep = clf.config.data.label_sep if label_sep is None else label_sep
    return settings(flags=data_flags(fmt, text_field, label_field, encoding, on_bad_lines, sep)).data
