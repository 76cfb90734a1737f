"""The model card: a README.md for a model directory, written from its config.json document.

It says what the model was trained on (files, checksums, label counts), the settings that
matter, the results measured, the versions used, and what the model is for and not for. The
Markdown stays readable as plain text: tables are padded, nothing is hidden in HTML. Any part
of `meta` may be missing (older models, the language-model encoder); its section then says so
or is left out. It needs the standard library only (and one constant of `data.tokenize`), so
that writing a card never fails for want of a package.

>>> doc = json.loads(Path("runs/imdb/config.json").read_text())  # doctest: +SKIP
>>> Path("runs/imdb/README.md").write_text(model_card(doc, name="imdb"))  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import PurePath
from typing import Any

from ..data.tokenize import MAX_TEXT_TOKENS

SPLITS = (("train", "Training"), ("val", "Validation"), ("test", "Test"))
REPORTS = (("validation", "Validation"), ("test", "Test"))
SUMMARY_METRICS = (("accuracy", "Accuracy"), ("macro_f1", "Macro-F1"), ("micro_f1", "Micro-F1"),
                   ("weighted_f1", "Weighted F1"), ("macro_precision", "Macro precision"),
                   ("macro_recall", "Macro recall"))
HISTORY_COLUMNS = (("epoch", "Epoch"), ("train_loss", "Train loss"), ("val_loss", "Val loss"),
                   ("val_accuracy", "Val accuracy"), ("val_macro_f1", "Val macro-F1"), ("lr", "LR"),
                   ("seconds", "Seconds"))
SCORE_KEYS = {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"}
COUNTS = (("n_train", "training examples"), ("n_val", "validation examples"), ("n_texts", "texts"),
          ("n_val_texts", "held-out texts"))
MAX_HISTORY_ROWS = 50
SHORT_SHA = 12


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _value(value: Any) -> str:
    """A setting or count as text: floats to 4 significant digits, ints with separators."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_value, value)) or "-"
    return str(value)


def _metric(value: Any) -> str:
    """A score in [0, 1] as text, always with four decimals so that columns line up."""
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _value(value)


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _value(value)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else _value(value)
    return " ".join(text.split()).replace("|", "\\|") or "-"


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return text == "-"
    return True


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table padded to its widest cells, so that it also reads well as plain text;
    columns of numbers are right-aligned."""
    cells = [[_cell(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(headers))]
    right = [i > 0 and all(_is_number(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right)) + "|"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def _section(title: str, *parts: str) -> str:
    return "\n\n".join([f"## {title}", *(p for p in parts if p)])


def _title(doc: dict, name: str | None) -> str:
    labels, meta, config = _list(doc.get("labels")), _dict(doc.get("meta")), _dict(doc.get("config"))
    heading = f"# Model card: {name}" if name else "# Model card"
    model = _dict(config.get("model"))
    network = ("bidirectional " if model.get("bidirectional") else "") + (
        str(model["cell"]).upper() if model.get("cell") else "recurrent")
    made = "trained with textlstm" + (f" {doc['textlstm_version']}" if doc.get("textlstm_version") else "")
    if labels:
        what = (f"A text classifier, a {network} network over word embeddings {made}, that puts each text "
                f"into one of {len(labels)} labels: " + ", ".join(map(str, labels)) + ".")
    else:
        kind = f" ({meta['kind']})" if meta.get("kind") else ""
        what = (f"A pretrained encoder{kind}, a {network} network {made}. It predicts no labels; "
                "classifiers start from it (`embeddings.encoder`).")
    names = _list(meta.get("label_names")) or _list(_dict(config.get("data")).get("label_names"))
    renamed = f"Labels in the data were renamed (raw=name): {', '.join(map(str, names))}." if names else ""
    return "\n\n".join(p for p in (heading, what, renamed) if p)


def _data_files(meta: dict) -> list[tuple[str, str, dict]]:
    files = _dict(meta.get("data_files"))
    return [(key, title, files[key]) for key, title in SPLITS if isinstance(files.get(key), dict)]


def _label_counts(labels: list, files: list[tuple[str, str, dict]]) -> str:
    counts = [(title, _dict(record.get("label_counts"))) for _, title, record in files]
    if not any(c for _, c in counts):
        return ""
    names = list(dict.fromkeys([*map(str, labels), *(label for _, c in counts for label in c)]))
    rows = [[label, *(c.get(label, 0) if c else "-" for _, c in counts)] for label in names]
    return "Examples per label:\n\n" + _table(["Label", *(title for title, _ in counts)], rows)


def _training_data(doc: dict) -> str:
    meta = _dict(doc.get("meta"))
    files = _data_files(meta)
    rows, details = [], []
    for key, title, record in files:
        path, sha = record.get("path"), record.get("sha256")
        short = sha[:SHORT_SHA] if isinstance(sha, str) else None
        rows.append([title, PurePath(str(path)).name if path else None, short, record.get("examples"),
                     record.get("bytes")])
        details.append(f"- {title}: `{path if path else '-'}`, SHA-256 `{sha if sha else '-'}`")
    if not files:  # only paths, or nothing, were recorded
        paths = _dict(meta.get("data"))
        details = [f"- {title}: `{paths[key]}` (no checksum recorded)" for key, title in SPLITS if paths.get(key)]
    counts = [f"{_value(meta[k]) if meta[k] else 'no'} {what}" for k, what in COUNTS if isinstance(meta.get(k), int)]
    used = f"Training used {' and '.join(counts)}." if counts else ""
    if not rows and not details and not used:
        return _section("Training data", "No record of the training data was saved with this model.")
    table = _table(["Split", "File", "SHA-256", "Examples", "Bytes"], rows) if rows else ""
    return _section("Training data", table, "\n".join(details), used,
                    _label_counts(_list(doc.get("labels")), files))


def _vectors(config: dict, meta: dict) -> tuple[str, str]:
    """The vectors setting in a word or two, and a list of the sources as meta recorded them."""
    vectors = config["embeddings"].get("vectors")
    vectors = [vectors] if isinstance(vectors, str) else _list(vectors)
    encoder = config["embeddings"].get("encoder")
    if encoder:
        short = f"encoder {encoder}"
    elif vectors:
        short = ", ".join(map(str, vectors))
    else:
        dim = config["model"].get("embedding_dim")
        short = f"none (embeddings of {_value(dim)} dimensions learnt from scratch)" if dim else "none"
    lines = []
    for src in _list(meta.get("vector_sources")):
        src = _dict(src)
        label = src.get("name") or src.get("source") or "?"
        rest = "; ".join(f"{k} {_value(v)}" for k, v in src.items() if k not in ("name", "source") and v is not None)
        lines.append(f"- {label}" + (f": {rest}" if rest else ""))
    if meta.get("coverage"):
        lines.append(f"- Coverage: {meta['coverage']}")
    return short, ("Vector sources:\n\n" + "\n".join(lines)) if lines else ""


def _settings(doc: dict) -> str:
    config = {s: _dict(_dict(doc.get("config")).get(s)) for s in ("tokenizer", "embeddings", "model", "train")}
    meta = _dict(doc.get("meta"))
    tok, model, train = config["tokenizer"], config["model"], config["train"]
    max_tokens = tok.get("max_tokens")
    vectors, sources = _vectors(config, meta)
    freeze = train.get("freeze")
    if freeze == "epochs" and train.get("freeze_epochs") is not None:
        freeze = f"epochs (frozen for {train['freeze_epochs']})"
    lr = _value(train.get("lr"))
    if isinstance(meta.get("effective_lr"), float) and meta["effective_lr"] != train.get("lr"):
        lr += f" (effective {_value(meta['effective_lr'])})"
    rows = [("Preset", _dict(doc.get("config")).get("preset") or "none"),
            ("Tokenizer", f"{_value(tok.get('kind'))} ({_value(tok.get('lang'))})" if tok else None),
            ("Lowercased", tok.get("lower")),
            ("Max tokens per text", f"no limit but the ceiling of {MAX_TEXT_TOKENS:,}" if max_tokens == 0 else
             f"{_value(max_tokens)} (truncation: {_value(tok.get('truncation'))})" if max_tokens else None),
            ("Vocabulary size", meta.get("vocab_size")), ("Vectors", vectors),
            ("Cell", model.get("cell")), ("Layers", model.get("num_layers")),
            ("Hidden size (per direction)", model.get("hidden_size")), ("Bidirectional", model.get("bidirectional")),
            ("Pooling", model.get("pooling")), ("Epochs", train.get("epochs")),
            ("Batch size", train.get("batch_size")),
            ("Learning rate", lr if train.get("lr") is not None else None), ("Optimizer", train.get("optimizer")),
            ("Schedule", train.get("schedule")), ("Freeze policy", freeze),
            ("Class weights", train.get("class_weights")), ("Seed", train.get("seed"))]
    table = _table(["Setting", "Value"], [[k, v] for k, v in rows if v is not None])
    return _section("Settings that matter", table, sources,
                    "Every setting is in `config.json`, under `config`.")


def _report(title: str, report: dict) -> str:
    n = f" ({_value(report['n'])} examples)" if isinstance(report.get("n"), int) else ""
    summary = _table(["Metric", "Value"], [[label, _metric(report.get(key))] for key, label in SUMMARY_METRICS
                                           if key in report])
    per_class = _dict(report.get("per_class"))
    rows = [[label, *(_metric(_dict(s).get(k)) for k in ("precision", "recall", "f1")), _dict(s).get("support")]
            for label, s in per_class.items()]
    classes = _table(["Label", "Precision", "Recall", "F1", "Support"], rows) if rows else ""
    return "\n\n".join(p for p in (f"### {title}{n}", summary, classes) if p)


def _history(meta: dict) -> str:
    history = [h for h in _list(meta.get("history")) if isinstance(h, dict)]
    columns = [(k, t) for k, t in HISTORY_COLUMNS if any(h.get(k) is not None for h in history)]
    if not history or not columns:
        return ""
    shown = history[-MAX_HISTORY_ROWS:]
    rows = [[_metric(h.get(k)) if k in SCORE_KEYS else _seconds(h.get(k)) if k == "seconds" else h.get(k)
             for k, _ in columns] for h in shown]
    more = f" (the last {len(shown)} of {len(history)})" if len(shown) < len(history) else ""
    return f"### Training history{more}\n\n" + _table([t for _, t in columns], rows)


def _results(doc: dict) -> str:
    meta = _dict(doc.get("meta"))
    facts = []
    if meta.get("best_epoch") is not None:
        of = f" of {len(_list(meta.get('history')))}" if _list(meta.get("history")) else ""
        facts.append(f"Best epoch: {_value(meta['best_epoch'])}{of}"
                     + (f" (validation macro-F1 {_metric(meta['best_val_macro_f1'])})"
                        if isinstance(meta.get("best_val_macro_f1"), (int, float)) else "") + ".")
    if meta.get("stopped_early"):
        facts.append("Training stopped early: validation macro-F1 stopped improving.")
    if meta.get("train_seconds") is not None:
        facts.append(f"Training time: {_duration(meta['train_seconds'])}.")
    evaluations = _dict(meta.get("evaluations"))
    reports = [_report(title, evaluations[key]) for key, title in REPORTS if isinstance(evaluations.get(key), dict)]
    if not reports:
        history = _list(meta.get("history"))
        validated = any(isinstance(h, dict) and h.get("val_macro_f1") is not None for h in history)
        reports = ["No evaluation report was saved with this model" + (
            "; the validation scores of each epoch are in the training history below." if validated else ".")]
    return _section("Results", " ".join(facts), *reports, _history(meta))


def _versions(doc: dict) -> str:
    libraries = _dict(doc.get("library_versions"))
    rows = [["textlstm", doc.get("textlstm_version")], ["model format", doc.get("format_version")],
            *([name, version or "not installed"] for name, version in libraries.items())]
    return _section("Versions", _table(["Package", "Version"], rows))


def _intended_use(doc: dict) -> str:
    config, meta = _dict(doc.get("config")), _dict(doc.get("meta"))
    tok, labels = _dict(config.get("tokenizer")), _list(doc.get("labels"))
    lang = f"in one language (tokenizer language: {tok['lang']})" if tok.get("lang") else "in its language"
    files = [PurePath(str(r["path"])).name for _, _, r in _data_files(meta) if r.get("path")]
    files = files or [PurePath(str(p)).name for p in _dict(meta.get("data")).values() if p]
    listed = f" ({', '.join(files)})" if files else ""
    measured = (f"- Accuracy was measured only on the data listed above{listed}; on other data it is "
                "unknown and may be much lower. Check it on a sample of your own texts first."
                if _dict(meta.get("evaluations")) or meta.get("best_val_macro_f1") is not None else
                "- No accuracy on held-out data was recorded with this model: measure it on texts of your own "
                "before relying on it; on other domains it is unknown.")
    limit = tok.get("max_tokens") if isinstance(tok.get("max_tokens"), int) and tok["max_tokens"] > 0 else None
    does = (f"puts each text into one of its {len(labels)} labels ({', '.join(map(str, labels))}); it cannot "
            "answer with any other label, nor say that none fits" if labels else
            "turns texts into vectors for a classifier to start from; it predicts no labels itself")
    points = [
        f"- What it does: it {does}.",
        (f"- It learnt from the training data above: texts of that domain, {lang}. Expect it to work on "
         "texts like those, not on other domains, styles or languages."),
        (f"- Texts longer than {limit or MAX_TEXT_TOKENS:,} tokens are truncated (`tokenizer.truncation`: "
         f"{tok.get('truncation') or 'head'}); the model never sees the rest."),
        measured,
        ("- Not for decisions about people (hiring, credit, health, law, moderation of individuals) without "
         "human review: it can be wrong with high confidence and can repeat the biases of its data."),
    ]
    return _section("Intended use and limits", "\n".join(points))


def model_card(doc: dict, name: str | None = None) -> str:
    """The model card (Markdown) of the model whose config.json holds `doc`; `name` (the model
    directory's name, which the document does not hold) titles it.

    >>> card = model_card({"labels": ["neg", "pos"], "config": {}, "meta": {}}, name="demo")
    >>> card.splitlines()[0]
    '# Model card: demo'
    """
    doc = _dict(doc)
    parts = [_title(doc, name), _training_data(doc), _settings(doc), _results(doc), _versions(doc),
             _intended_use(doc)]
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"
