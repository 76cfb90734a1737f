"""An HTML page that shades each token by its attention weight (`predict --explain`).

The fragment inside it is `textlstm.notebook.explanations_html`, which `Explanations` (the list
`TextClassifier.explain` returns) also shows in a notebook; both are re-exported here."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from ..atomic import atomic_write_text
from ..notebook import Explanations, explanations_html

__all__ = ["Explanations", "explanations_html", "render_html", "write_html"]

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>textlstm explanations</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; line-height: 2; }}
</style></head><body>
<h1>Attention over tokens</h1>
<p>Each token is shaded by the share of attention the model gave it (darker: more).</p>
{docs}
</body></html>
"""


def render_html(explanations: Iterable[Mapping[str, Any]]) -> str:
    """Render `TextClassifier.explain()` output as a standalone HTML page."""
    return _PAGE.format(docs=explanations_html(explanations))


def write_html(explanations: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Write the page of `render_html` to `path` atomically."""
    atomic_write_text(path, render_html(explanations))
