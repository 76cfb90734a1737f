"""Every Python example in the documentation runs, against tiny files and models named as the
examples name them (train.csv, glove.6B.100d.txt, model/, m1, ...), so the docs cannot rot."""
import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import LABELS, TEXTS
from test_multilabel import emotions

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["library.md", "training.md", "multilabel.md", "tuning.md", "serving.md", "compress.md"]


def blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(encoding="utf-8"), flags=re.S)


def test_every_page_with_python_examples_is_run_here():
    with_python = {p.name for p in (ROOT / "docs").glob("*.md") if "```python" in p.read_text(encoding="utf-8")}
    assert with_python - {"index.md"} == set(PAGES)  # index.md: tests/test_docs.py


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder with the files the examples read, and what they name as variables."""
    root = tmp_path_factory.mktemp("docs")
    rng = np.random.default_rng(0)
    words = sorted({w.strip(",.").lower() for t in TEXTS for w in t.split()})
    rows = "".join(f"{w} {' '.join(f'{x:.3f}' for x in rng.normal(size=100))}\n" for w in words)
    (root / "glove.6B.100d.txt").write_text(rows)
    with gzip.open(root / "imdb-w2v-100d.txt.gz", "wt") as fh:
        fh.write(rows)
    labels = ["positive" if lab == "pos" else "negative" for lab in LABELS]
    for name in ("train.csv", "dev.csv"):
        (root / name).write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in zip(TEXTS, labels)))
    return root, labels


def run_page(page, namespace, monkeypatch, root):
    monkeypatch.chdir(root)
    for block in blocks(page):
        exec(compile(block, f"docs/{page}", "exec"), namespace)
    return namespace


def test_library_tuning_and_training_examples(sandbox, monkeypatch):
    root, labels = sandbox
    ns = {"texts": TEXTS, "labels": labels, "test_texts": TEXTS, "test_labels": labels}
    run_page("library.md", ns, monkeypatch, root)
    assert (root / "model" / "manifest.json").is_file()
    ns = run_page("tuning.md", {"texts": TEXTS, "labels": labels}, monkeypatch, root)
    assert set(ns["best"].predict(TEXTS)) <= set(labels)
    from textlstm import TextClassifier
    from textlstm.config import make_config

    for seed in (1, 2):
        TextClassifier(make_config(preset="small-sentiment", overrides=[f"train.seed={seed}", "train.epochs=2"])
                       ).fit(TEXTS, labels, vectors=root / "glove.6B.100d.txt").save(root / f"m{seed}")
    ns = run_page("training.md", {}, monkeypatch, root)
    assert (root / "m12" / "ensemble.json").is_file()


def test_compress_and_export_examples(sandbox, monkeypatch):
    pytest.importorskip("onnxruntime")
    root, labels = sandbox
    from textlstm import TextClassifier
    from textlstm.config import make_config

    TextClassifier(make_config(preset="small-sentiment", overrides=["train.epochs=2"])).fit(
        TEXTS, labels, vectors=root / "glove.6B.100d.txt").save(root / "model")
    ns = run_page("compress.md", {"texts": TEXTS}, monkeypatch, root)
    assert (root / "model-small" / "manifest.json").is_file() and len(ns["labels"]) == len(TEXTS)


def test_multilabel_example(sandbox, monkeypatch):
    root, _ = sandbox
    texts, label_lists = emotions(60)
    ns = run_page("multilabel.md", {"texts": texts, "label_lists": label_lists, "test_texts": texts,
                                    "test_labels": label_lists, "dev_texts": texts, "dev_labels": label_lists},
                  monkeypatch, root)
    assert ns["est"].predict(texts).shape[0] == len(texts) and (root / "emo" / "manifest.json").is_file()


def test_serving_example(sandbox, monkeypatch):
    root, labels = sandbox
    import textlstm.serve

    started = []
    monkeypatch.setattr(textlstm.serve, "serve", lambda settings: started.append(settings))  # it would block
    from textlstm import TextClassifier
    from textlstm.config import make_config

    if not (root / "model").exists():
        TextClassifier(make_config(overrides=["train.epochs=1", 'tokenizer.kind="regex"'])).fit(TEXTS, labels).save(root / "model")
    ns = run_page("serving.md", {}, monkeypatch, root)
    assert started[0].port == 8000 and ns["app"] is not None
