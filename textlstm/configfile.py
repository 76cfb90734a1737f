"""Every setting of a `Config` as a commented TOML file (`textlstm init-config`, as spaCy's
`init config`): one table per section, each key with its value, a line saying what it is (and
what a choice allows), and the default where the value differs. Reading the file back with
`make_config(config_file=...)` gives the same settings.

>>> from textlstm.config import make_config
>>> text = config_toml(make_config())
>>> "[model]" in text and 'cell = "lstm"' in text
True
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .config import SECTIONS, Config
from .errors import ConfigError

PRESET_HELP = "The preset these settings started from (a record: the values below are what apply)"

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """`text` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise ConfigError(f"The setting value {text!r} holds a lone surrogate (an undecodable "
                              "byte?), which a TOML file cannot hold. Rename the file or fix the value.")
        out.append(_ESCAPES.get(ch) or (f"\\u{code:04x}" if code < 0x20 or code == 0x7F else ch))
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """A setting's value as a TOML literal (bool, int, float, string, or a list of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # repr of a finite float reads back exactly (validate refuses the rest)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return toml_string(os.fspath(value))


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "").rstrip(".")
    choices = f.metadata.get("choices")
    if choices:
        text += f". Allowed: {', '.join(map(str, choices))}"
    return f"# {text}."


def _key_lines(f: dataclasses.Field, value: Any, default: Any) -> list[str]:
    """The help line, then `key = value` (and its default when it differs); a None value, which
    TOML cannot write, is a commented-out key, so that reading the file back leaves it None."""
    if value is None and default is None:
        return [_help(f), f'# {f.name} = "..."  # unset (None) by default']
    if value is None:  # a None the default does not give: "none" reads back as None
        return [_help(f), f'{f.name} = "none"  # None; default: {toml_value(default)}']
    line = f"{f.name} = {toml_value(value)}"
    if value != default:
        line += f"  # default: {'unset (None)' if default is None else toml_value(default)}"
    return [_help(f), line]


def _section_lines(name: str, settings: Any) -> list[str]:
    defaults = type(settings)()
    lines = [f"[{name}]"]
    for f in dataclasses.fields(settings):
        lines += _key_lines(f, getattr(settings, f.name), getattr(defaults, f.name))
    return lines


def _header(preset: str | None, file_name: str) -> list[str]:
    source = f"the preset {preset!r}" if preset else "the defaults"
    file_name = shlex.quote(file_name) if file_name.isprintable() else "FILE.toml"
    return [
        f"# textlstm settings: every key of every section, with the values of {source}.",
        f"# Train with:  textlstm train DATA --config {file_name}",
        "# On the command line, `--set section.key=value` and the flags (--vectors, --epochs, ...)",
        "# override this file. Every key is set here, so a --preset given with it changes no value.",
        "# Delete a key or comment it out to get its default (keys shown commented out are unset).",
    ]


def config_toml(cfg: Config, *, preset: str | None = None, file_name: str = "FILE.toml") -> str:
    """Every setting of `cfg` as commented TOML, one table per section.

    `preset` names the preset in the header (default: `cfg.preset`); the top-level `preset`
    key always records `cfg.preset`. `file_name` is what the header's train command shows.
    `make_config(config_file=...)` on the result gives `cfg` again (its `to_dict()`)."""
    cfg.validate()  # a file that would not load again is no use
    lines = _header(preset or cfg.preset, file_name) + ["", f"# {PRESET_HELP}."]
    lines.append(f"preset = {toml_value(cfg.preset)}" if cfg.preset is not None else '# preset = "..."')
    for name in SECTIONS:
        lines += [""] + _section_lines(name, getattr(cfg, name))
    return "\n".join(lines) + "\n"


def write_config_toml(path: str | os.PathLike, cfg: Config, preset: str | None = None,
                      overwrite: bool = False) -> Path:
    """Write `config_toml(cfg)` to `path` atomically; an existing file is a `ConfigError`
    unless `overwrite`. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give the name of a .toml file to write.")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists. Replace it with --overwrite (overwrite=True) "
                          "or choose another file name.")
    text = config_toml(cfg, preset=preset, file_name=os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
