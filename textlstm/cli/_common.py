"""What every `textlstm` command shares: the consoles, the options that read data files, the
error handling that turns a `TextLSTMError` into one line on stderr, and settings from options.

Two kinds of errors reach the user. Usage errors (an unknown option, a missing argument, a path
given to an option that does not exist) are typer's: its usage message and exit code 2. Bad
input found while working (a malformed file, a setting out of range, a model directory that is
incomplete) is one `error: …` line on stderr and exit code 1."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from ..config import Config, make_config, preset_names, set_value
from ..errors import TextLSTMError
from ..training import distributed

out = Console()
err = Console(stderr=True)
STATE = {"verbose": False}

# Options shared by the commands that read data files.
FormatOpt = typer.Option(None, "--format", help="Data format: auto (the default: from the file name), csv, tsv, jsonl, fasttext, folder, text.")
TextFieldOpt = typer.Option(None, "--text-field", help="Column/key holding the text (detected when omitted).")
LabelFieldOpt = typer.Option(None, "--label-field", help="Column/key holding the label (detected when omitted).")
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
    for flag, (key, value) in (flags or {}).items():
        if value is not None:
            set_value(cfg, key, value, flag)
    return cfg.validate()


def data_flags(fmt: Optional[str], text_field: Optional[str], label_field: Optional[str],
               encoding: Optional[str], bad_lines: Optional[str]) -> Flags:
    """The reader options every data command shares, as settings of `[data]`."""
    return {"--format": ("data.format", fmt), "--text-field": ("data.text_field", text_field),
            "--label-field": ("data.label_field", label_field), "--encoding": ("data.encoding", encoding),
            "--on-bad-lines": ("data.on_bad_lines", bad_lines)}
