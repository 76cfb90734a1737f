"""MkDocs hook: pages that are generated from the code at build time, so they cannot drift.

`<!-- settings-reference -->` in a page becomes a table per `[section]` of every setting, its
default and its description, read from the configuration dataclasses (`textlstm.config`);
`<!-- presets-reference -->` a table of the presets and what each sets."""
from __future__ import annotations

import dataclasses
import json


def _cell(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return "`" + text.replace("|", "\\|") + "`"


def settings_reference() -> str:
    from textlstm.config import SECTIONS

    out = []
    for section, cls in SECTIONS.items():
        out += [f"### `[{section}]`", "", (cls.__doc__ or "").strip().split("\n\n")[0], "",
                "| setting | default | what it does |", "| --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            help_text = f.metadata.get("help", "").replace("|", "\\|")
            out.append(f"| `{section}.{f.name}` | {_cell(default)} | {help_text} |")
        out.append("")
    return "\n".join(out)


def presets_reference() -> str:
    from textlstm.config import PRESETS_DIR, load_toml, preset_names

    out = ["| preset | settings it changes |", "| --- | --- |"]
    for name in preset_names():
        doc = load_toml(PRESETS_DIR / f"{name}.toml")
        items = [f"`{sec}.{k} = {json.dumps(v)}`" for sec, values in doc.items() if isinstance(values, dict)
                 for k, v in values.items()]
        out.append(f"| `{name}` | {', '.join(items)} |")
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- settings-reference -->" in markdown:
        markdown = markdown.replace("<!-- settings-reference -->", settings_reference())
    if "<!-- presets-reference -->" in markdown:
        markdown = markdown.replace("<!-- presets-reference -->", presets_reference())
    return markdown
