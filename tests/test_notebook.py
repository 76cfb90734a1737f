"""Jupyter display: classifiers, evaluation reports and explanations render as escaped HTML, and
`Report` stays a plain dict for every other use."""
import ast
import copy
import json
import pickle
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import TRAIN

from textlstm import TextClassifier
from textlstm.config import make_config
from textlstm.jobs import explain as explain_job
from textlstm.metrics import Report, evaluate, write_json
from textlstm.notebook import Explanations, classifier_html, explanations_html, report_html

LABELS = ["pos"] * 3 + ["neg"] * 3
TINY = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.epochs=1",
        "train.batch_size=4", "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"']
EVIL = "<b>x</b>"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(fragment: str) -> _Tags:
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def fitted():
    clf = TextClassifier(make_config(overrides=TINY))
    return clf.fit(TRAIN, LABELS, val_texts=TRAIN, val_labels=LABELS)


def test_fitted_classifier_shows_labels_vocabulary_parameters_and_best_score(fitted):
    page = classifier_html(fitted)
    text = " ".join(parse(page).text)
    n_params = sum(p.numel() for p in fitted.model_.parameters())
    assert "fitted" in text and "not fitted" not in text
    assert "neg, pos" in text and f"{len(fitted.vocab_):,}" in text and f"{n_params:,}" in text
    assert "lstm" in text and "hidden size 8" in text and "attention+max" in text and "regex" in text
    assert f"{fitted.meta_['best_val_macro_f1']:.4f}" in text and f"epoch {fitted.meta_['best_epoch']}" in text


def test_unfitted_classifier_shows_its_settings_and_what_to_call():
    page = classifier_html(TextClassifier(make_config(preset="short-topics")))
    text = " ".join(parse(page).text)
    assert "not fitted" in text and "fit()" in text
    assert "glove-6b-50d" in text and "short-topics" in text and "no limit" in text
    assert "parameters" not in text


def test_classifier_settings_from_data_are_escaped():
    cfg = make_config(overrides=[f'embeddings.vectors=["{EVIL}"]'])
    page = classifier_html(TextClassifier(cfg))
    assert EVIL not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def report():
    return evaluate([EVIL, "b", "b", "c"], [EVIL, "b", "c", "c"], labels=[EVIL, "b", "c"])


def test_report_html_has_summary_per_class_and_escapes_labels():
    page = report_html(report())
    assert EVIL not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    parsed = parse(page)
    assert "b" not in parsed.tags  # the label never became a tag
    assert parsed.tags.count("table") == 3  # summary, per class, confusion matrix
    text = " ".join(parsed.text)
    assert "0.7500" in text and "per class" in text and "confusion matrix" in text


def test_report_html_leaves_out_a_wide_confusion_matrix_and_lists_skipped_labels():
    labels = [f"l{i}" for i in range(25)]
    r = evaluate(labels, labels, labels=labels)
    r["skipped_unknown_labels"] = {"<i>new</i>": 2}
    page = report_html(r)
    assert parse(page).tags.count("table") == 2 and "not shown for 25 labels" in page
    assert "&lt;i&gt;new&lt;/i&gt;: 2" in page
    r["confusion_matrix"] = None
    assert "not computed for 25 labels" in report_html(r)


def test_report_stays_a_dict():
    r = report()
    assert isinstance(r, Report) and isinstance(r, dict)
    plain = json.loads(json.dumps(r))
    assert r == plain and plain == r and r["accuracy"] == 0.75
    again = pickle.loads(pickle.dumps(r))
    assert type(again) is Report and again == r
    assert copy.copy(r) == r and copy.deepcopy(r) == r and type(copy.deepcopy(r)) is Report
    assert r._repr_html_() == report_html(r)


def test_report_json_file_is_unchanged(tmp_path):
    r = report()
    write_json(r, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == dict(r)


def test_classifier_evaluate_returns_a_report(fitted):
    r = fitted.evaluate(TRAIN, LABELS)
    assert isinstance(r, Report) and "skipped_unknown_labels" in r
    assert "per class" in r._repr_html_()


def items():
    return [{"text": "t", "label": EVIL, "proba": {EVIL: 0.75, "neg": 0.25},
             "tokens": [("<script>", 0.7), ("&amp;", 0.3)]}]


def test_explanations_render_and_escape_tokens():
    ex = Explanations(items())
    assert ex == items() and isinstance(ex, list)
    page = ex._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp;amp;" in page
    assert EVIL not in page and "0.75" in page
    assert parse(page).tags.count("span") == 2 + 2  # label and proba, then one per token
    assert explanations_html(items()) in page


def test_explain_page_uses_the_same_fragment(tmp_path):
    explain_job.write_html(items(), tmp_path / "e.html")
    page = (tmp_path / "e.html").read_text()
    assert page.startswith("<!doctype html>") and explanations_html(items()) in page
    assert explain_job.Explanations is Explanations


def test_fitted_explain_output_renders(fitted):
    page = Explanations(fitted.explain(["a wonderful film"]))._repr_html_()
    assert "wonderful" in page and page.count('title="') == 3


def test_notebook_module_imports_only_the_standard_library():
    import textlstm.notebook as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
