"""An HTML page that shades each token by its attention weight."""
from __future__ import annotations

import html
import os
from typing import Any

from ..atomic import atomic_write_text

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>textlstm explanations</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; line-height: 2; }}
.doc {{ border-bottom: 1px solid #ddd; padding: .8em 0; }}
.label {{ font-weight: bold; margin-right: .6em; }}
.proba {{ color: #555; font-size: .85em; }}
.tok {{ padding: .1em .15em; border-radius: .2em; }}
</style></head><body>
<h1>Attention over tokens</h1>
<p>Each token is shaded by the share of attention the model gave it (darker: more).</p>
{docs}
</body></html>
"""


def _token(token: str, weight: float, top: float) -> str:
    alpha = 0.0 if top <= 0 else min(1.0, weight / top)
    return (f'<span class="tok" style="background: rgba(230, 80, 30, {alpha:.3f})" '
            f'title="{weight:.4f}">{html.escape(token)}</span>')


def render_html(explanations: list[dict[str, Any]]) -> str:
    """Render `TextClassifier.explain()` output as a standalone HTML page."""
    docs = []
    for ex in explanations:
        top = max((w for _, w in ex["tokens"]), default=0.0)
        tokens = " ".join(_token(t, w, top) for t, w in ex["tokens"])
        proba = ", ".join(f"{html.escape(k)} {v:.2f}" for k, v in ex["proba"].items())
        docs.append(f'<div class="doc"><span class="label">{html.escape(ex["label"])}</span>'
                    f'<span class="proba">{proba}</span><br>{tokens}</div>')
    return _PAGE.format(docs="\n".join(docs))


def write_html(explanations: list[dict[str, Any]], path: str | os.PathLike) -> None:
    atomic_write_text(path, render_html(explanations))
