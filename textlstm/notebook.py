"""HTML for Jupyter's rich display (`_repr_html_`): a classifier, an evaluation report and
attention explanations. Standard library only (no torch at import), inline styles only (a
notebook may drop `<style>` blocks), and everything that comes from data is escaped.

>>> "&lt;b&gt;" in report_html({"accuracy": 1.0, "labels": ["<b>"], "n": 1,
...                             "per_class": {"<b>": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}},
...                             "confusion_matrix": [[1]]})
True
"""
from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

MAX_MATRIX_LABELS = 20  # a wider confusion matrix no longer fits a notebook cell
MAX_TABLE_ROWS = 200  # per-class rows shown; the report itself holds them all
MAX_LABELS_LISTED = 30

_TABLE = 'style="border-collapse: collapse; margin: .3em 0; font-size: .9em"'
_CELL = "border: 1px solid #ccc; padding: .15em .5em"
_NUM = f'style="{_CELL}; text-align: right; font-variant-numeric: tabular-nums"'


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], caption: str = "") -> str:
    """Cells are HTML already (escaped by the caller); the header is escaped here."""
    head = "".join(f'<th style="{_CELL}">{_e(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    cap = f'<caption style="text-align: left; font-weight: bold">{_e(caption)}</caption>' if caption else ""
    return f"<table {_TABLE}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(items: Iterable[tuple[str, str]], caption: str = "") -> str:
    """A two-column table of (escaped name, HTML value)."""
    rows = ([f'<th style="{_CELL}; text-align: left">{_e(k)}</th>', f'<td style="{_CELL}">{v}</td>']
            for k, v in items)
    cap = f'<caption style="text-align: left; font-weight: bold">{_e(caption)}</caption>' if caption else ""
    return f"<table {_TABLE}>{cap}<tbody>" + "".join("<tr>" + "".join(r) + "</tr>" for r in rows) + "</tbody></table>"


def _listing(values: Sequence[Any], most: int = MAX_LABELS_LISTED) -> str:
    shown = ", ".join(_e(v) for v in values[:most])
    return shown + (f", … ({len(values) - most:,} more)" if len(values) > most else "")


# -- classifier -------------------------------------------------------------------------------
def classifier_html(clf: Any) -> str:
    """A `TextClassifier`: its main settings and, once fitted, labels, vocabulary size, number
    of parameters and the best validation score."""
    cfg = clf.config
    m, tok = cfg.model, cfg.tokenizer
    fitted = hasattr(clf, "model_")
    state = "fitted" if fitted else "not fitted: call fit() or train() first"
    rows: list[tuple[str, str]] = []
    if fitted:
        labels = list(clf.classes_)
        n_params = sum(p.numel() for p in clf.model_.parameters())
        rows += [("labels", f"{len(labels):,}: {_listing(labels)}"), ("vocabulary", _num(len(clf.vocab_))),
                 ("parameters", _num(n_params))]
        meta = getattr(clf, "meta_", None) or {}
        if meta.get("best_val_macro_f1") is not None:
            rows.append(("best validation macro-F1", f"{_num(float(meta['best_val_macro_f1']))} "
                                                     f"(epoch {_e(meta.get('best_epoch'))})"))
    direction = "bidirectional " if m.bidirectional else ""
    rows += [("model", _e(f"{m.num_layers} × {direction}{m.cell}, hidden size {m.hidden_size}")),
             ("pooling", _e(m.pooling)),
             ("vectors", _listing(list(cfg.embeddings.vectors)) or "none"),
             ("tokenizer", _e(f"{tok.kind}" + (f" ({tok.lang})" if tok.kind == "spacy" else ""))),
             ("max_tokens", _e(f"{tok.max_tokens:,} ({tok.truncation})" if tok.max_tokens else "no limit"))]
    if cfg.preset:
        rows.append(("preset", _e(cfg.preset)))
    return (f'<div><strong>{_e(type(clf).__name__)}</strong> <span style="color: #555">({_e(state)})</span>'
            f"{_pairs(rows)}</div>")


# -- evaluation report ------------------------------------------------------------------------
_SUMMARY = (("examples", "n"), ("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("micro F1", "micro_f1"),
            ("weighted F1", "weighted_f1"), ("macro precision", "macro_precision"),
            ("macro recall", "macro_recall"))


def _per_class(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    items = list(per_class.items())
    rows = ([f'<th style="{_CELL}; text-align: left">{_e(label)}</th>']
            + [f"<td {_NUM}>{_num(s.get(k))}</td>" for k in ("precision", "recall", "f1", "support")]
            for label, s in items[:MAX_TABLE_ROWS])
    table = _table(("label", "precision", "recall", "F1", "support"), rows, "per class")
    if len(items) > MAX_TABLE_ROWS:
        table += f"<p>… {len(items) - MAX_TABLE_ROWS:,} more labels (all are in the report dict).</p>"
    return table


def _confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Rows true, columns predicted; each cell shaded by its share of the true class."""
    rows = []
    for label, counts in zip(labels, matrix):
        total = sum(counts)
        cells = [f'<th style="{_CELL}; text-align: left">{_e(label)}</th>']
        for count in counts:
            alpha = count / total if total else 0.0
            cells.append(f'<td style="{_CELL}; text-align: right; background: rgba(31, 119, 180, {alpha * 0.8:.3f})'
                         f'{"; color: white" if alpha > 0.5 else ""}">{_num(count)}</td>')
        rows.append(cells)
    return _table(["true \\ predicted", *map(str, labels)], rows, "confusion matrix")


def report_html(report: Mapping[str, Any]) -> str:
    """An evaluation report (`textlstm.metrics.evaluate`, `TextClassifier.evaluate`): a summary,
    a per-class table and, for at most `MAX_MATRIX_LABELS` labels, the confusion matrix."""
    summary = [(name, _num(report[key])) for name, key in _SUMMARY if key in report]
    skipped = report.get("skipped_unknown_labels") or {}
    if skipped:
        summary.append(("skipped (unknown labels)",
                        _listing([f"{label}: {count:,}" for label, count in skipped.items()])))
    parts = ["<div>", _pairs(summary, "evaluation"), _per_class(report.get("per_class") or {})]
    labels, matrix = list(report.get("labels") or []), report.get("confusion_matrix")
    if matrix is not None and len(labels) <= MAX_MATRIX_LABELS:
        parts.append(_confusion(labels, matrix))
    elif labels:
        why = "not computed" if matrix is None else "not shown"
        parts.append(f"<p>Confusion matrix {why} for {len(labels):,} labels.</p>")
    return "".join(parts) + "</div>"


# -- explanations -----------------------------------------------------------------------------
def _token(token: str, weight: float, top: float) -> str:
    alpha = 0.0 if top <= 0 else min(1.0, weight / top)
    return (f'<span style="padding: .1em .15em; border-radius: .2em; '
            f'background: rgba(230, 80, 30, {alpha:.3f})" title="{weight:.4f}">{html.escape(str(token))}</span>')


def explanations_html(items: Iterable[Mapping[str, Any]]) -> str:
    """`TextClassifier.explain()` output as an HTML fragment: per text, the predicted label, the
    probabilities, and each token shaded by its attention weight (darker: more)."""
    docs = []
    for ex in items:
        top = max((w for _, w in ex["tokens"]), default=0.0)
        tokens = " ".join(_token(t, w, top) for t, w in ex["tokens"])
        proba = ", ".join(f"{_e(k)} {v:.2f}" for k, v in ex["proba"].items())
        docs.append('<div style="border-bottom: 1px solid #ddd; padding: .8em 0; line-height: 2">'
                    f'<span style="font-weight: bold; margin-right: .6em">{_e(ex["label"])}</span>'
                    f'<span style="color: #555; font-size: .85em">{proba}</span><br>{tokens}</div>')
    return "\n".join(docs)


class Explanations(list):
    """The list `TextClassifier.explain()` returns (dicts with text, label, proba, tokens), shown
    in a notebook with each token shaded by its attention weight."""

    def _repr_html_(self) -> str:
        return f"<div>{explanations_html(self)}</div>"
