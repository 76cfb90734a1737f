"""Extra files in the model directory (written in the same atomic step, checksummed, returned on
load, ours replaced rather than carried over) and the model card written from config.json."""
import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from helpers import TRAIN, write_tsv

from textlstm import TextClassifier
from textlstm.config import Config, make_config
from textlstm.data.vocab import Vocab
from textlstm.errors import ModelFileError
from textlstm.model import artifact as artifact_mod
from textlstm.model.artifact import (
    METRICS_FILE,
    MODEL_CARD,
    Artifact,
    extra_file_problem,
    load_artifact,
    save_artifact,
)
from textlstm.model.card import model_card

ROOT = Path(__file__).resolve().parents[1]
OLD_MODEL = ROOT / "tests/resources/model-v0.1-premove"
LABELS = ["pos"] * 3 + ["neg"] * 3
TINY = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.epochs=2",
        "train.batch_size=4", "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"',
        "tokenizer.max_tokens=64"]
CARD = "# Model card: m\n\nFünf Zeilen — with a CRLF\r\nand a tab\t.\n"
METRICS = '{"epoch": 1, "train_loss": 0.69}\n{"epoch": 2, "train_loss": 0.5}\n'


def make_artifact(files=None, seed=0) -> Artifact:
    g = torch.Generator().manual_seed(seed)
    vocab = Vocab.build([["the", "film", "was", "good"], ["bad", "film"]])
    tensors = {"embedding.weight": torch.randn(len(vocab), 4, generator=g), "head.bias": torch.zeros(2)}
    return Artifact(Config().to_dict(), ["neg", "pos"], vocab, tensors, {"seed": seed}, dict(files or {}))


def manifest(model: Path) -> dict:
    return json.loads((model / "manifest.json").read_text())["files"]


@pytest.fixture
def model(tmp_path) -> Path:
    return save_artifact(tmp_path / "model", make_artifact({MODEL_CARD: CARD, METRICS_FILE: METRICS}))


# -- extra files --------------------------------------------------------------------------------

def test_extra_files_are_written_and_listed_in_the_manifest(model):
    assert sorted(p.name for p in model.iterdir()) == [
        "README.md", "config.json", "manifest.json", "metrics.jsonl", "model.safetensors", "vocab.txt"]
    files = manifest(model)
    assert set(files) == {"config.json", "vocab.txt", "model.safetensors", "README.md", "metrics.jsonl"}
    for name, text in ((MODEL_CARD, CARD), (METRICS_FILE, METRICS)):
        data = (model / name).read_bytes()
        assert data == text.encode("utf-8")  # as given: UTF-8, no newline translation
        assert files[name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert not [p for p in model.parent.iterdir() if ".tmp-" in p.name or p.name.endswith(".backup")]


def test_load_returns_the_extra_files(model):
    art = load_artifact(model)
    assert art.files == {MODEL_CARD: CARD, METRICS_FILE: METRICS}
    assert art.meta == {"seed": 0} and art.labels == ["neg", "pos"]


def test_without_extra_files_the_directory_is_as_before(tmp_path):
    model = save_artifact(tmp_path / "plain", make_artifact())
    assert set(manifest(model)) == {"config.json", "vocab.txt", "model.safetensors"}
    assert load_artifact(model).files == {}


def test_a_model_saved_by_an_older_version_still_loads():
    assert set(manifest(OLD_MODEL)) == {"config.json", "vocab.txt", "model.safetensors"}
    art = load_artifact(OLD_MODEL)
    assert art.files == {} and art.labels == ["negative", "positive"]
    assert TextClassifier.load(OLD_MODEL).predict(["a fine film"])[0] in ("negative", "positive")


@pytest.mark.parametrize("change", ["same size", "longer"])
def test_a_modified_extra_file_fails_its_checksum(model, change):
    data = (model / MODEL_CARD).read_bytes()
    (model / MODEL_CARD).write_bytes(data.replace(b"Model", b"M0del") if change == "same size" else data + b"!")
    with pytest.raises(ModelFileError, match="README.md failed its checksum.*corrupt or was modified"):
        load_artifact(model)


def test_a_listed_extra_file_that_is_missing_fails(model):
    (model / METRICS_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"metrics.jsonl is missing: .* \(manifest.json lists it\)"):
        load_artifact(model)


def test_sizes_and_the_tensors_header_are_checked_before_any_hashing(model, monkeypatch):
    hashed = []
    real = artifact_mod.file_sha256
    monkeypatch.setattr(artifact_mod, "file_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    (model / METRICS_FILE).write_bytes(b"x" * 10)  # the last file listed: its size fails before any hash
    with pytest.raises(ModelFileError, match="metrics.jsonl failed its checksum: it has 10 bytes"):
        load_artifact(model)
    assert hashed == []
    (model / METRICS_FILE).write_text(METRICS)
    load_artifact(model)
    assert hashed == ["config.json", "vocab.txt", "model.safetensors", "README.md", "metrics.jsonl"]


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/passwd", ".hidden", "manifest.json"])
def test_a_manifest_listing_a_file_that_is_not_ours_is_refused(model, name):
    (model.parent / "outside.txt").write_text("x")  # exists, size 1: only the name check refuses it
    doc = json.loads((model / "manifest.json").read_text())
    doc["files"][name] = {"sha256": hashlib.sha256(b"x").hexdigest(), "size": 1}
    (model / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="manifest.json lists a file it must not"):
        load_artifact(model)


@pytest.mark.parametrize("name", ["", ".notes", "a/b.md", "..", "a\\b", "config.json", "vocab.txt",
                                  "model.safetensors", "manifest.json", 3])
def test_invalid_names_are_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(ModelFileError, match="Cannot save the model"):
        save_artifact(tmp_path / "model", make_artifact({name: "text"}))
    assert not (tmp_path / "model").exists() and list(tmp_path.iterdir()) == []
    assert extra_file_problem(name)


def test_an_extra_file_must_be_text(tmp_path):
    with pytest.raises(ModelFileError, match="'metrics.jsonl' must be a str"):
        save_artifact(tmp_path / "model", make_artifact({METRICS_FILE: b"bytes"}))
    assert extra_file_problem("README.md") is None and extra_file_problem("plots.v2.png") is None


def test_user_files_are_carried_over_but_ours_are_replaced(model, caplog):
    (model / "notes.md").write_text("mine")
    (model / "plots").mkdir()
    (model / "plots" / "cm.png").write_bytes(b"png")
    save_artifact(model, make_artifact({MODEL_CARD: "# new card\n"}, seed=1))
    assert (model / "notes.md").read_text() == "mine" and (model / "plots" / "cm.png").read_bytes() == b"png"
    assert (model / MODEL_CARD).read_text() == "# new card\n"  # the new one, not the old one carried over
    assert not (model / METRICS_FILE).exists()  # ours, listed by the old model, not written by the new one
    assert set(manifest(model)) == {"config.json", "vocab.txt", "model.safetensors", "README.md"}
    assert load_artifact(model).files == {MODEL_CARD: "# new card\n"}
    with caplog.at_level(logging.WARNING, logger="textlstm.model.artifact"):
        save_artifact(model, make_artifact(seed=2))  # no extra files now: our README.md goes too
    assert not (model / MODEL_CARD).exists() and (model / "notes.md").read_text() == "mine"
    assert not caplog.records


def test_a_users_file_of_the_same_name_is_replaced_with_a_warning(tmp_path, caplog):
    model = save_artifact(tmp_path / "model", make_artifact())  # an older model: no card
    (model / "README.md").write_text("my own notes")
    with caplog.at_level(logging.WARNING, logger="textlstm.model.artifact"):
        save_artifact(model, make_artifact({MODEL_CARD: CARD}))
    assert load_artifact(model).files == {MODEL_CARD: CARD}
    assert "README.md" in caplog.text and "replaces it" in caplog.text


# -- the model card -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained model's config.json document, with what a train job adds to meta."""
    tmp = tmp_path_factory.mktemp("card")
    clf = TextClassifier(make_config(overrides=TINY)).fit(TRAIN, LABELS, val_texts=TRAIN, val_labels=LABELS)
    doc = json.loads((clf.save(tmp / "m") / "config.json").read_text())
    train = write_tsv(tmp / "train.tsv", zip(TRAIN, LABELS))
    data = train.read_bytes()
    doc["meta"]["evaluations"] = {"validation": clf.evaluate(TRAIN, LABELS),
                                  "test": clf.evaluate(TRAIN[:4], LABELS[:4])}
    doc["meta"]["data"] = {"train": str(train), "val": None, "test": str(train)}
    doc["meta"]["data_files"] = {
        "train": {"path": str(train), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                  "examples": 6, "label_counts": {"pos": 3, "neg": 3}},
        "val": None,
        "test": {"path": str(train), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                 "examples": 4, "label_counts": {"pos": 3, "neg": 1}}}
    return doc


def test_the_card_renders_from_a_trained_models_document(trained):
    card = model_card(trained, name="m")
    assert card.startswith("# Model card: m\n")
    for heading in ("## Training data", "## Settings that matter", "## Results", "## Versions",
                    "## Intended use and limits", "### Validation (6 examples)", "### Test (4 examples)"):
        assert f"\n{heading}\n" in card, heading
    sha = trained["meta"]["data_files"]["train"]["sha256"]
    assert sha in card and f"| {sha[:12]} |" in card and "train.tsv" in card
    for label in ("pos", "neg"):
        assert f"| {label} " in card
    for name in ("validation", "test"):
        report = trained["meta"]["evaluations"][name]
        assert f"{report['accuracy']:.4f}" in card and f"{report['macro_f1']:.4f}" in card
        for label, row in report["per_class"].items():
            assert f"{row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} |" in card, (name, label)
    assert f"Best epoch: {trained['meta']['best_epoch']} of 2" in card
    assert "| Max tokens per text " in card and "Texts longer than 64 tokens are truncated" in card
    assert "tokenizer language: en" in card and "| regex (en) " in card
    assert f"| {trained['textlstm_version']} " in card and f"| {trained['library_versions']['torch']} " in card
    assert "Not for decisions about people" in card
    assert card.endswith("\n") and not card.endswith("\n\n")


def test_the_card_is_saved_and_loaded_with_the_model(tmp_path, trained):
    card = model_card(trained, name="m")
    model = save_artifact(tmp_path / "m", make_artifact({MODEL_CARD: card}))
    assert load_artifact(model).files[MODEL_CARD] == card


def test_the_card_reads_as_plain_text(trained):
    card = model_card(trained)
    assert "<" not in card.replace("<pad>", "").replace("<unk>", "")  # no HTML
    for block in card.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("|"):  # tables are padded: every row as wide as the header
            assert len({len(line) for line in lines}) == 1, block


@pytest.mark.parametrize("meta", [
    {},
    {"history": None, "best_epoch": None, "evaluations": None, "data_files": None, "coverage": None},
    {"kind": "bilm-encoder", "history": [{"epoch": 1, "train_loss": 4.2, "train_perplexity": 66.7}],
     "best_epoch": 1, "n_texts": 90, "n_val_texts": 10, "coverage": None, "vector_sources": [], "vectors": None},
    {"history": "junk", "evaluations": {"validation": {"per_class": {"a|b": {"f1": None}}}, "test": 3},
     "data_files": {"train": {"path": None}}, "vector_sources": [{"source": "glove", "columns": [0, 50],
                                                                   "coverage": "vectors cover 90%"}, "odd"]},
])
def test_the_card_never_crashes_on_a_sparse_meta(trained, meta):
    minimal = {"labels": ["neg", "pos"], "config": {}, "meta": meta}
    for doc in (minimal, {**trained, "meta": meta}, {**minimal, "labels": []}):
        card = model_card(doc)
        assert card.startswith("# Model card\n") and "## Intended use and limits" in card
    assert "No evaluation report was saved with this model." in model_card({**trained, "meta": {}})


def test_the_card_of_an_old_model_and_the_details_it_lists():
    doc = json.loads((OLD_MODEL / "config.json").read_text())
    card = model_card(doc, name="model-v0.1-premove")
    assert "negative, positive" in card and "| 0.1.0 " in card and "No record of" not in card
    assert "Training used 8 training examples" in card
    sources = {"vector_sources": [{"source": "glove-6B-50d", "columns": [0, 50], "coverage": "cover 91%"}],
               "coverage": "vectors cover 91.0% of 1,234 word types", "label_names": ["0=neg", "1=pos"]}
    card = model_card({**doc, "meta": {**doc["meta"], **sources}})
    assert "- glove-6B-50d: columns 0, 50; coverage cover 91%" in card
    assert "vectors cover 91.0% of 1,234 word types" in card and "0=neg, 1=pos" in card
