"""What every `textlstm` command shares: the consoles, the options that read data files, the
error handling that turns a `TextLSTMError` into one line on stderr, and settings from options."""
from __future__ import annotations

import functools
import json
import os
from typing import Callable

import typer
from rich.console import Console

from ..training import distributed
from ..config import Config, preset_names
from ..errors import TextLSTMError

out = Console()
err = Console(stderr=True)
STATE = {"verbose": False}

# Options shared by the commands that read data files.
FormatOpt = typer.Option("auto", "--format", help="Data format: auto, csv, tsv, jsonl, fasttext, folder, text.")
TextFieldOpt = typer.Option(None, "--text-field", help="Column/key holding the text (detected when omitted).")
LabelFieldOpt = typer.Option(None, "--label-field", help="Column/key holding the label (detected when omitted).")
EncodingOpt = typer.Option("utf-8", "--encoding", help="Text encoding of the data files, e.g. latin-1.")
BadLinesOpt = typer.Option("error", "--on-bad-lines", help="'error' stops at the first bad line; 'skip' skips, counts and reports.")
VectorsOpt = typer.Option(None, "--vectors", help="Pretrained vectors file (as for train).")
PresetOpt = typer.Option(None, "--preset", help=f"Settings preset: {', '.join(preset_names()) or 'none shipped'}.")
ConfigOpt = typer.Option(None, "--config", help="TOML file of settings (as for train).")
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


def data_settings(cfg: Config, fmt: str, text_field, label_field, encoding: str, bad_lines: str) -> Config:
    overrides = [f"data.format={json.dumps(fmt)}", f"data.encoding={json.dumps(encoding)}",
                 f"data.on_bad_lines={json.dumps(bad_lines)}"]
    cfg.override(overrides)
    cfg.data.text_field = text_field or cfg.data.text_field
    cfg.data.label_field = label_field or cfg.data.label_field
    return cfg
