"""Ensembles: several models' probabilities averaged, saved as a directory that loads as safely
as one model and that every command, the library and the estimator take."""
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import LABELS, TEXTS
from test_multilabel import emotions
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import make_config
from textlstm.data.vocab import Vocab
from textlstm.errors import ConfigError, ModelFileError, NotFittedError
from textlstm.hashing import file_sha256
from textlstm.model.ensemble import EnsembleModule, union_vocab
from textlstm.model.network import TextLSTM
from textlstm.sklearn import TextLSTMClassifier

runner = CliRunner()
QUERIES = ["a wonderful warm film", "boring zebra mess", "", "great story, truly awful acting"]


def tiny(*overrides):
    return make_config(overrides=["model.hidden_size=12", "model.embedding_dim=12", "model.attention_dim=8",
                                  "train.epochs=6", "train.batch_size=4", "train.threads=1", "train.lr=0.01",
                                  'tokenizer.kind="regex"', "data.val_split=0", *overrides])


@pytest.fixture(scope="module")
def members():
    a = TextClassifier(tiny("train.seed=1")).fit(TEXTS, LABELS)
    # another cell, another seed and a word ("zebra") that only this member knows
    b = TextClassifier(tiny("train.seed=2", 'model.cell="gru"')).fit(TEXTS + ["a zebra, awful"], LABELS + ["neg"])
    return a, b


@pytest.fixture(scope="module")
def saved(members, tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    paths = [members[0].save(root / "a"), members[1].save(root / "b")]
    ens = TextClassifier.ensemble(members, [2, 1], sources=[str(p) for p in paths])
    return ens.save(root / "ab"), paths


def copy_of(path, tmp_path):
    return shutil.copytree(path, tmp_path / "copy")


def edit_members(path, change):
    """Rewrite ensemble.json with `change(doc["members"])` applied (its checksum left stale)."""
    doc = json.loads((path / "ensemble.json").read_text())
    change(doc["members"])
    (path / "ensemble.json").write_text(json.dumps(doc))


# -- averaging ----------------------------------------------------------------------------------

def test_probabilities_are_the_weighted_mean_of_the_members(members):
    a, b = members
    ens = TextClassifier.ensemble(members, [2, 1])
    want = (2 * a.predict_proba(QUERIES) + b.predict_proba(QUERIES)) / 3
    np.testing.assert_allclose(ens.predict_proba(QUERIES), want, atol=1e-6)
    assert ens.predict(QUERIES) == [ens.classes_[i] for i in want.argmax(1)]
    assert "zebra" in ens.vocab_.stoi and "zebra" not in a.vocab_.stoi  # the union of the vocabularies
    assert ens.evaluate(TEXTS, LABELS)["n"] == len(TEXTS)


def test_members_label_orders_are_aligned_and_confidence_never_gives_minus_infinity():
    v = Vocab(["<pad>", "<unk>", "x"])
    nets = [TextLSTM(tiny().model, 3, 2) for _ in range(2)]
    with torch.no_grad():
        for net, bias in zip(nets, ([200.0, -200.0], [-200.0, 200.0])):
            net.head[-1].bias.copy_(torch.tensor(bias))
    # member 1 orders its labels the other way round: its first column is member 0's second
    ens = EnsembleModule(nets, [v, v], [["a", "b"], ["b", "a"]], weights=[1, 1], multilabel=False).eval()
    out, _ = ens(torch.tensor([[2]]), torch.tensor([1]))
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.softmax(1).detach().numpy(), [[1.0, 0.0]], atol=1e-6)


def test_the_union_vocabulary_keeps_the_first_order_and_adds_new_tokens():
    u = union_vocab([Vocab(["<pad>", "<unk>", "b", "a"]), Vocab(["<pad>", "<unk>", "c", "a"])])
    assert u.itos == ["<pad>", "<unk>", "b", "a", "c"]


def test_multilabel_ensembles_average_each_label_and_their_thresholds(tmp_path):
    texts, labels = emotions(160)
    cfg = ["model.hidden_size=12", "model.embedding_dim=12", "train.epochs=3", "train.threads=1", 'tokenizer.kind="regex"']
    a = TextClassifier(make_config(overrides=cfg + ["train.seed=1"])).fit(texts, labels)
    b = TextClassifier(make_config(overrides=cfg + ["train.seed=2"])).fit(texts, labels)
    ens = TextClassifier.ensemble([a, b])
    np.testing.assert_allclose(ens.predict_proba(texts[:5]), (a.predict_proba(texts[:5]) + b.predict_proba(texts[:5])) / 2,
                               atol=1e-5)
    np.testing.assert_allclose(ens.thresholds_, np.round((a.thresholds_ + b.thresholds_) / 2, 2), atol=1e-6)
    ens.find_threshold(texts, labels, mode="global")
    tuned = dict(ens.meta_["thresholds"])
    again = TextClassifier.load(ens.save(tmp_path / "e"))
    assert again.meta_["thresholds"] == tuned and again.predict(texts[:8]) == ens.predict(texts[:8])


# -- the directory ------------------------------------------------------------------------------

def test_save_and_load_give_the_same_predictions_and_explanations(members, saved):
    path, _ = saved
    ens = TextClassifier.ensemble(members, [2, 1])
    loaded = TextClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(QUERIES), ens.predict_proba(QUERIES), atol=1e-6)
    doc = loaded.explain(QUERIES[:1])[0]
    assert [t for t, _ in doc["tokens"]] == ["a", "wonderful", "warm", "film"]
    assert sum(w for _, w in doc["tokens"]) == pytest.approx(1.0, abs=1e-5)
    assert sorted(p.name for p in (path / "members").iterdir()) == ["0", "1"]
    assert "| 1 |" in (path / "README.md").read_text()  # the card lists the members


def test_an_edited_ensemble_file_fails_its_checksum(saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    edit_members(path, lambda members: members[0].update(weight=100))
    with pytest.raises(ModelFileError, match="ensemble.json failed its checksum"):
        TextClassifier.load(path)


def test_a_swapped_member_is_caught_even_when_it_is_a_valid_model(saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    shutil.rmtree(path / "members" / "1")
    shutil.copytree(path / "members" / "0", path / "members" / "1")
    with pytest.raises(ModelFileError, match="the member was replaced or modified"):
        TextClassifier.load(path)


def test_a_tampered_member_file_fails_the_members_own_checksum(saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    weights = path / "members" / "0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="failed its checksum"):
        TextClassifier.load(path)


def test_member_folders_outside_members_are_refused_even_with_a_forged_manifest(saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    edit_members(path, lambda members: members[1].update(dir="../b"))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["ensemble.json"] = {"sha256": file_sha256(path / "ensemble.json"),
                                          "size": (path / "ensemble.json").stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="must be the folder members/1"):
        TextClassifier.load(path)


def test_a_missing_member_says_the_ensemble_is_incomplete(saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    shutil.rmtree(path / "members" / "1")
    with pytest.raises(ModelFileError, match="not a complete ensemble"):
        TextClassifier.load(path)


def test_user_files_survive_a_resave_and_members_never_leak_into_a_single_model(members, saved, tmp_path):
    path = copy_of(saved[0], tmp_path)
    (path / "notes.txt").write_text("mine")
    TextClassifier.ensemble(members).save(path)
    assert (path / "notes.txt").read_text() == "mine"
    members[0].save(path)  # a single model replaces the ensemble
    assert not (path / "members").exists() and not (path / "ensemble.json").exists()
    assert (path / "notes.txt").exists() and TextClassifier.load(path).predict(["great"])


# -- what cannot be combined or done ---------------------------------------------------------------

def test_members_must_share_labels_task_and_tokenizer(members):
    a, _ = members
    other = TextClassifier(tiny()).fit(TEXTS, ["x" if l == "pos" else "y" for l in LABELS])
    with pytest.raises(ConfigError, match="same labels"):
        TextClassifier.ensemble([a, other])
    lower = TextClassifier(tiny("tokenizer.max_tokens=5")).fit(TEXTS, LABELS)
    with pytest.raises(ConfigError, match="tokenizer settings max_tokens"):
        TextClassifier.ensemble([a, lower], sources=["a", "lower"])
    with pytest.raises(ConfigError, match="2 to 64"):
        TextClassifier.ensemble([a])
    with pytest.raises(ConfigError, match="positive finite"):
        TextClassifier.ensemble(members, [1, 0])
    with pytest.raises(ConfigError, match="itself an ensemble"):
        TextClassifier.ensemble([TextClassifier.ensemble(members), a])


def test_an_ensemble_cannot_be_trained_further(members, tmp_path):
    with pytest.raises(NotFittedError, match="ensemble cannot be trained"):
        TextClassifier.ensemble(members).fine_tune(tmp_path / "unused.tsv")


# -- the CLI and the estimator ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def eval_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "val.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in zip(TEXTS, LABELS)))
    return path


def test_the_ensemble_command_scores_members_and_ensemble_then_saves(saved, eval_file, tmp_path):
    _, (a, b) = saved
    out = tmp_path / "e"
    res = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(out), "--eval", str(eval_file), "--weights", "2,1"])
    assert res.exit_code == 0, res.output
    assert "ensemble of 2 models saved" in res.output and "│ ensemble" in res.output
    assert json.loads((out / "ensemble.json").read_text())["meta"]["ensemble"]["weights"] == [2.0, 1.0]
    again = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(tmp_path / "f"), "--weights", "1"])
    assert bad.exit_code == 2 and "1 weights for 2 models" in bad.output
    same = runner.invoke(app, ["ensemble", str(a), str(b), "--out", str(a), "--overwrite"])
    assert same.exit_code == 1 and "one of the members" in same.output


def test_info_eval_predict_and_compress_take_an_ensemble(saved, eval_file, tmp_path):
    path, _ = saved
    info = runner.invoke(app, ["info", str(path)])
    assert info.exit_code == 0 and "Ensemble members" in info.output and "gru" in info.output
    res = runner.invoke(app, ["eval", str(path), str(eval_file), "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m.json").read_text())["n"] == len(TEXTS)
    res = runner.invoke(app, ["predict", str(path), "a wonderful film", "--explain", str(tmp_path / "x.html")])
    assert res.exit_code == 0, res.output
    assert "wonderful" in (tmp_path / "x.html").read_text()
    res = runner.invoke(app, ["compress", str(path), "--out", str(tmp_path / "c"), "--quantize", "dynamic-int8"])
    assert res.exit_code == 1 and "compress each member" in res.output


def test_export_writes_one_graph_that_averages_the_members(saved, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from textlstm.jobs.export import export_onnx, read_sidecar

    clf = TextClassifier.load(saved[0])
    result = export_onnx(clf, tmp_path / "e.onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    side = read_sidecar(tmp_path / "e.onnx")
    assert side["vocab"] == clf.vocab_.itos and side["labels"] == clf.classes_
    assert ort.InferenceSession(str(tmp_path / "e.onnx")).get_inputs()[0].name == "ids"


def test_the_estimator_takes_an_ensemble_directory(saved):
    est = TextLSTMClassifier.from_model(saved[0])
    proba = est.predict_proba(QUERIES)
    np.testing.assert_allclose(proba, TextClassifier.load(saved[0]).predict_proba(QUERIES)[:, est._columns], atol=1e-6)
    assert list(est.classes_) == ["neg", "pos"] and 0.0 <= est.score(TEXTS, LABELS) <= 1.0


def test_the_server_serves_an_ensemble_with_explanations(saved):
    from textlstm.serve.predictor import TorchPredictor

    served = TorchPredictor(saved[0])
    np.testing.assert_allclose(served.predict_proba(QUERIES), TextClassifier.load(saved[0]).predict_proba(QUERIES),
                               atol=1e-6)
    assert served.can_explain and served.explain_tokens(["a wonderful film"])[0][1][0] == "wonderful"
    assert [m["cell"] for m in served.describe()["settings"]["ensemble_members"]] == ["lstm", "gru"]
