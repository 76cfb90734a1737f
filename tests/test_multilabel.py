"""Multi-label classification: reading several labels per text, training with a sigmoid per
label, tuned thresholds, multi-label metrics, prediction, `find-threshold` and the CLI."""
import json
import random

import numpy as np
import pytest
import torch
from test_train import StopAt
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import DataConfig, ModelConfig, make_config
from textlstm.data import multilabel
from textlstm.data.batching import EncodedDataset
from textlstm.data.readers import read_dataset
from textlstm.data.tokencache import load_corpus
from textlstm.data.tokenize import Tokenizer
from textlstm.errors import DataError
from textlstm.model import TextLSTM
from textlstm.thresholds import MIN_POSITIVES, decide, f1_score, tune
from textlstm.training.objectives import MultiLabelClassification
from textlstm.training.trainer import Trainer, TrainingInterrupted

CUES = {"joy": ["happy", "glad", "cheerful"], "anger": ["angry", "mad", "furious"],
        "fear": ["scared", "afraid", "worried"]}
FILLER = ["the", "a", "day", "it", "was", "then", "we", "all"]


def emotions(n=240, seed=0):
    """Texts with the cue words of 0-3 labels (each label with probability 0.4), and their labels."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        labs = [lab for lab in CUES if rng.random() < 0.4]
        words = [rng.choice(CUES[lab]) for lab in labs for _ in range(2)] + rng.choices(FILLER, k=4)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(labs)
    return texts, labels


def tiny(*overrides):
    return make_config(overrides=["model.hidden_size=16", "model.embedding_dim=16", "model.attention_dim=8",
                                  "train.epochs=8", "train.batch_size=16", "train.threads=1", "train.lr=0.01",
                                  'tokenizer.kind="regex"', *overrides])


@pytest.fixture(scope="module")
def fitted():
    texts, labels = emotions()
    return TextClassifier(tiny()).fit(texts, labels)


# -- reading -----------------------------------------------------------------------------------

def test_fasttext_lines_with_several_labels_and_none(tmp_path):
    path = tmp_path / "d.ft"
    path.write_text("__label__joy __label__fear a happy scary day\n__label__anger so mad\nnothing here\n")
    examples, report = read_dataset(path)
    assert [e.label for e in examples] == [("joy", "fear"), "anger", ()]
    assert (report.n_multi, report.n_no_label, report.first_no_label) == (1, 1, (str(path), 3))
    assert "1 with no label (first at" in report.summary() and "d.ft:3" in report.summary()


def test_json_lists_and_csv_with_a_label_separator(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "labels": ["x", "y", "x"]}\n{"text": "b", "labels": []}\n'
                     '{"text": "c", "labels": ["z"]}\n{"text": "d", "labels": [3, "q"]}\n')
    assert [e.label for e in read_dataset(jsonl)[0]] == [("x", "y"), (), "z", ("3", "q")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "labels": ["x", {"y": 1}]}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: label must be a string or integer"):
        read_dataset(bad)
    csv = tmp_path / "d.csv"
    csv.write_text('text,labels\none,"x| y"\ntwo,\nthree,z\n')
    assert [e.label for e in read_dataset(csv, label_sep="|")[0]] == [("x", "y"), (), "z"]
    # without the separator the cell is one label and an empty one is a missing label
    with pytest.raises(DataError, match=r"d\.csv:3: missing label"):
        read_dataset(csv)


def test_multiclass_task_refuses_several_labels_at_the_line(tmp_path):
    path = tmp_path / "d.ft"
    path.write_text("__label__a one\n__label__a __label__b two\n")
    with pytest.raises(DataError, match=r"d\.ft:2: several labels .*model\.task"):
        load_corpus(path, DataConfig(), Tokenizer(tiny().tokenizer), use_cache=False, task="multiclass")


def test_a_folder_cannot_be_multilabel(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "1.txt").write_text("good")
    from textlstm.data.readers import read_data
    with pytest.raises(DataError, match="folder per class.*one label"):
        read_data(tmp_path, DataConfig(), task="multilabel")


def test_single_label_rows_stay_multiclass_and_an_unlabelled_one_is_located(tmp_path):
    path = tmp_path / "d.ft"
    path.write_text("__label__pos good film\n__label__neg bad film\nno label at all\n__label__pos fine\n")
    clf = TextClassifier(tiny("train.epochs=1", "data.val_split=0"))
    with pytest.raises(DataError, match=r"1 texts of the training data have no label \(first at .*d\.ft:3\)"):
        clf.train(path)
    ok = tmp_path / "ok.csv"
    ok.write_text("text,label\ngood film,pos\nbad film,neg\nfine,pos\nawful,neg\n")
    clf = TextClassifier(tiny("train.epochs=1", "data.val_split=0", 'data.label_sep="|"')).train(ok)
    assert not clf.multilabel and clf.classes_ == ["neg", "pos"]


def test_multilabel_tokens_round_trip_through_the_cache(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a b", "labels": ["x", "y"]}\n{"text": "c", "labels": []}\n{"text": "d", "labels": "z"}\n')
    tok = Tokenizer(make_config(overrides=['tokenizer.kind="regex"']).tokenizer)
    first = load_corpus(path, DataConfig(), tok, cache_dir=tmp_path / "cache")
    again = load_corpus(path, DataConfig(), tok, cache_dir=tmp_path / "cache")
    assert again.from_cache and again.labels == first.labels == [("x", "y"), (), "z"]
    assert again.report.n_no_label == 1 and again.report.first_no_label == (str(path), 2)


# -- labels, splits, weights -------------------------------------------------------------------

def test_task_resolution_and_label_forms():
    assert multilabel.resolve_task(["a", ("b",), ()], "auto") == "multiclass"
    assert multilabel.resolve_task(["a", ("b", "c")], "auto") == "multilabel"
    assert multilabel.resolve_task(["a"], "multilabel") == "multilabel"
    assert multilabel.as_strings(["a", ("b",)], "x") == ["a", "b"]
    with pytest.raises(DataError, match="Text 2 of the x has 2 labels"):
        multilabel.as_strings(["a", ("b", "c")], "x")
    y = multilabel.multi_hot([("a", "c"), (), ("b",)], {"a": 0, "b": 1, "c": 2})
    assert y.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]] and y.dtype == np.float32
    assert multilabel.describe([("a", "c"), (), ("b",)], ["a", "b", "c"]) == \
        "multi-label: 3 labels, 1.00 labels per text; 1 texts with no label"


def test_strata_use_the_rarest_label_and_pool_tiny_strata():
    labels = [("common", "rare")] * 2 + [("common",)] * 5 + [()] * 3 + [("single",)]
    strata = multilabel.strata(labels)
    assert strata[:2] == ["rare", "rare"] and strata[2] == "common" and strata[7] == ""
    assert strata[-1] == "\0rare"  # one text: pooled


def test_positive_weights_are_negatives_over_positives():
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)
    assert multilabel.positive_weights(y).tolist() == pytest.approx([1 / 3, 3.0, 1.0])


# -- thresholds --------------------------------------------------------------------------------

def test_global_threshold_maximises_micro_f1():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 4)) < 0.3).astype(np.float32)
    proba = np.clip(0.25 * y + rng.random((400, 4)) * 0.6, 0, 1).astype(np.float32)
    t = tune(y, proba, "global", "micro_f1")
    assert len(set(t.tolist())) == 1
    best = f1_score(y, decide(proba, t), "micro_f1")
    for other in (0.2, 0.4, 0.5, 0.6):
        assert best >= f1_score(y, proba >= np.float32(other), "micro_f1")


def test_per_label_thresholds_follow_each_label_and_rare_labels_keep_the_global_one():
    rng = np.random.default_rng(1)
    n = 600
    y = np.zeros((n, 3), dtype=np.float32)
    y[:, 0] = rng.random(n) < 0.5
    y[:, 1] = rng.random(n) < 0.5
    y[:3, 2] = 1  # fewer positives than MIN_POSITIVES
    proba = np.empty_like(y)
    proba[:, 0] = np.where(y[:, 0] > 0, 0.85, 0.65)  # separable at about 0.7..0.85
    proba[:, 1] = np.where(y[:, 1] > 0, 0.25, 0.05)  # separable at about 0.06..0.25
    proba[:, 2] = rng.random(n)
    glob = tune(y, proba, "global", "macro_f1")
    for score in ("macro_f1", "micro_f1"):
        t = tune(y, proba, "per-label", score)
        assert 0.65 < t[0] <= 0.85 and 0.05 < t[1] <= 0.25, (score, t)
        assert t[2] == pytest.approx(glob[2] if score == "macro_f1" else t[2])
        assert f1_score(y[:, :2], decide(proba, t)[:, :2], "macro_f1") == 1.0
    assert y[:, 2].sum() < MIN_POSITIVES


def test_at_least_one_gives_the_top_label_to_an_empty_row():
    proba = np.array([[0.1, 0.3], [0.9, 0.2]], dtype=np.float32)
    assert decide(proba, np.array([0.5, 0.5])).tolist() == [[False, False], [True, False]]
    assert decide(proba, np.array([0.5, 0.5]), at_least_one=True).tolist() == [[False, True], [True, False]]


# -- training, prediction, evaluation ---------------------------------------------------------

def test_fit_with_lists_trains_a_multilabel_model(fitted, tmp_path):
    clf = fitted
    assert clf.multilabel and clf.config.model.task == "multilabel" and clf.classes_ == ["anger", "fear", "joy"]
    assert set(clf.meta_["thresholds"]) == set(clf.classes_)
    assert clf.meta_["threshold_tuning"] == {"mode": "global", "score": "micro_f1", "on": "validation split"}
    assert "best_val_micro_f1" in clf.meta_ and clf.meta_["history"][-1]["val_micro_f1"] > 0.8
    proba = clf.predict_proba(["happy and furious", "the day"])
    assert proba.shape == (2, 3) and not np.allclose(proba.sum(axis=1), 1.0)  # a sigmoid per label
    assert [sorted(x) for x in clf.predict(["so happy and so angry", "scared scared"])] == [["anger", "joy"], ["fear"]]
    assert clf.predict(["we all then"], threshold=0.99) == [[]]
    assert clf.predict(["we all then"], threshold=0.99, at_least_one=True)[0] != []
    clf.save(tmp_path / "m")
    back = TextClassifier.load(tmp_path / "m")
    assert back.multilabel and back.thresholds_.tolist() == clf.thresholds_.tolist()
    assert np.allclose(back.predict_proba(["happy and furious"]), clf.predict_proba(["happy and furious"]))
    assert back.explain(["so happy"])[0]["labels"] == ["joy"]


def test_multilabel_evaluation_report(fitted):
    texts, labels = emotions(120, seed=5)
    report = fitted.evaluate(texts, labels)
    for key in ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "weighted_f1", "samples_f1",
                "micro_precision", "samples_recall", "macro_roc_auc"):
        assert 0 <= report[key] <= 1, key
    assert report["task"] == "multilabel" and report["accuracy"] == report["subset_accuracy"]
    assert report["micro_f1"] > 0.8 and report["per_class"]["joy"]["roc_auc"] > 0.9
    assert report["per_class"]["joy"]["support"] == sum("joy" in labs for labs in labels)
    json.dumps(report)  # plain JSON
    with pytest.raises(DataError, match="'surprise'"):
        fitted.evaluate(texts[:2], [["surprise"], ["joy"]])
    skipped = fitted.evaluate(texts[:2], [["surprise", "joy"], ["joy"]], skip_unknown=True)
    assert skipped["skipped_unknown_labels"] == {"surprise": 1} and skipped["n"] == 2


def test_find_threshold_retunes_and_keeps_the_thresholds(fitted):
    texts, labels = emotions(120, seed=7)
    before = dict(fitted.meta_["thresholds"])
    found = fitted.find_threshold(texts, labels, mode="per-label", score="macro_f1", source="t.jsonl")
    assert set(found) == set(before) and fitted.meta_["threshold_tuning"]["mode"] == "per-label"
    assert fitted.evaluate(texts, labels)["macro_f1"] >= fitted.evaluate(texts, labels, threshold=0.5)["macro_f1"]
    fitted.meta_["thresholds"] = before


def test_balanced_class_weights_become_bce_pos_weights():
    texts, labels = emotions(120)
    clf = TextClassifier(tiny("train.epochs=1", 'train.class_weights="balanced"')).fit(texts, labels)
    counts = clf.meta_["label_counts"]["train"]
    n = clf.meta_["n_train"]
    expected = [(n - counts[c]) / counts[c] for c in clf.classes_]
    assert clf.class_weights_ == pytest.approx(expected, rel=1e-5)


def test_multilabel_training_resumes_to_the_same_weights(tmp_path):
    rng = np.random.default_rng(0)
    ids = [rng.integers(2, 10, size=rng.integers(2, 9)).astype(np.int64) for _ in range(40)]
    y = np.stack([[float(3 in s), float(5 in s)] for s in ids]).astype(np.float32)
    data, val = EncodedDataset(ids[:32], y[:32]), EncodedDataset(ids[32:], y[32:])
    from textlstm.config import TrainConfig
    cfg = TrainConfig(epochs=2, batch_size=8, bucket_chunk=2, lr=1e-2, threads=1, freeze="never", patience=0)

    def model(seed=0):
        torch.manual_seed(seed)
        return TextLSTM(ModelConfig(hidden_size=8, embedding_dim=8, attention_dim=8), 10, 2)

    def objective():
        return MultiLabelClassification(2)
    full = model()
    Trainer(full, cfg, data, val, objective=objective()).fit()
    ref = [None]
    ref[0] = Trainer(model(), cfg, data, val, objective=objective(), checkpoint_dir=tmp_path,
                     callbacks=[StopAt(ref, 5)])
    with pytest.raises(TrainingInterrupted):
        ref[0].fit()
    resumed = model(seed=4)
    Trainer(resumed, cfg, data, val, objective=objective(), checkpoint_dir=tmp_path).fit(resume=True)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


# -- the command line --------------------------------------------------------------------------

SMALL = ["--set", "model.hidden_size=16", "--set", "model.embedding_dim=16", "--set", "model.attention_dim=8",
         "--set", "tokenizer.kind=regex", "--set", "train.threads=1", "--epochs", "8", "--batch-size", "16", "--lr", "0.01", "-q"]


def test_cli_trains_predicts_evaluates_and_retunes(tmp_path):
    texts, labels = emotions()
    csv = tmp_path / "train.csv"
    csv.write_text("text,labels\n" + "".join(f'{t},"{"|".join(labs)}"\n' for t, labs in zip(texts, labels)))
    runner = CliRunner()
    model = tmp_path / "m"
    r = runner.invoke(app, ["train", str(csv), "--label-sep", "|", "--out", str(model), *SMALL])
    assert r.exit_code == 0, r.output
    assert json.loads((model / "config.json").read_text())["config"]["model"]["task"] == "multilabel"

    r = runner.invoke(app, ["predict", str(model), "so happy and so angry", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    assert r.stdout.split("\t")[0] in ("joy,anger", "anger,joy")
    r = runner.invoke(app, ["predict", str(model), "--input", str(csv), "--output-format", "jsonl"])
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(texts) and all(isinstance(row["labels"], list) for row in rows)
    assert rows[0]["gold"] == labels[0] and set(rows[0]["proba"]) == {"anger", "fear", "joy"}

    r = runner.invoke(app, ["eval", str(model), str(csv), "--json", str(tmp_path / "e.json"),
                            "--plots", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    assert "Hamming loss" in r.stdout and "samples avg" in r.stdout
    assert json.loads((tmp_path / "e.json").read_text())["micro_f1"] > 0.8
    assert (tmp_path / "plots" / "label_f1.png").stat().st_size > 0

    r = runner.invoke(app, ["find-threshold", str(model), str(csv), "--mode", "per-label", "--score", "macro_f1"])
    assert r.exit_code == 0, r.output
    assert "threshold was" in r.stdout
    meta = json.loads((model / "config.json").read_text())["meta"]
    assert meta["threshold_tuning"] == {"mode": "per-label", "score": "macro_f1", "on": str(csv)}

    r = runner.invoke(app, ["find-threshold", str(model), str(csv), "--mode", "sideways"])
    assert r.exit_code == 2 and "--mode" in r.output


def test_find_threshold_refuses_a_multiclass_model(tmp_path):
    clf = TextClassifier(tiny("train.epochs=1", "data.val_split=0")).fit(["good", "bad", "fine", "awful"],
                                                                         ["p", "n", "p", "n"])
    clf.save(tmp_path / "m")
    data = tmp_path / "d.csv"
    data.write_text("text,label\ngood,p\n")
    r = CliRunner().invoke(app, ["find-threshold", str(tmp_path / "m"), str(data)])
    assert r.exit_code == 1 and "multi-class model" in r.output


# -- the estimator, the server and the ONNX export take multi-label models ---------------------

def test_sklearn_estimator_takes_lists_of_labels_and_indicator_matrices():
    from textlstm.sklearn import TextLSTMClassifier
    texts, labels = emotions()
    params = {"overrides": {"model.hidden_size": 16, "model.embedding_dim": 16, "model.attention_dim": 8,
                            "tokenizer.kind": "regex", "train.threads": 1, "train.lr": 0.01,
                            "train.batch_size": 16}, "epochs": 8}
    est = TextLSTMClassifier(**params).fit(texts, labels)
    assert list(est.classes_) == ["anger", "fear", "joy"]
    pred = est.predict(["so happy and so angry", "scared scared"])
    assert pred.tolist() == [[1, 0, 1], [0, 1, 0]]
    assert est.predict_proba(texts[:3]).shape == (3, 3) and est.score(texts, labels) > 0.6
    matrix = np.array([[lab in labs for lab in ("joy", "fear")] for labs in labels], dtype=int)
    est2 = TextLSTMClassifier(**params).fit(texts, matrix)
    assert list(est2.classes_) == [0, 1] and est2.predict(texts[:4]).shape == (4, 2)
    assert est2.score(texts, matrix) > 0.6


def test_serve_answers_the_labels_above_the_thresholds(fitted, tmp_path):
    from fastapi.testclient import TestClient
    from textlstm.serve import ServeSettings, create_app
    fitted.save(tmp_path / "m")
    with TestClient(create_app(ServeSettings(model=str(tmp_path / "m")))) as client:
        while client.get("/ready").status_code != 200:
            pass
        res = client.post("/predict", json={"texts": ["so happy and so angry", "we all then"], "explain": True})
        assert res.status_code == 200, res.text
        first, second = res.json()["predictions"]
        expected = fitted.predict(["so happy and so angry", "we all then"])
        assert sorted(first["labels"]) == ["anger", "joy"] == sorted(expected[0])
        assert sorted(second["labels"]) == sorted(expected[1])
        assert first["tokens"] and set(first["probabilities"]) == {"anger", "fear", "joy"}
        doc = client.get("/model").json()
        assert doc["task"] == "multilabel" and set(doc["thresholds"]) == {"anger", "fear", "joy"}


def test_onnx_export_of_a_multilabel_model_gives_sigmoids_and_labels(fitted, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'textlstm[onnx]')")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install 'textlstm[onnx]')")
    from textlstm.jobs.export import OnnxClassifier, export_onnx, read_sidecar
    path = tmp_path / "m.onnx"
    export_onnx(fitted, path)
    meta = read_sidecar(path)
    assert meta["task"] == "multilabel" and len(meta["thresholds"]) == 3
    onnx = OnnxClassifier(path)
    texts = ["so happy and so angry", "scared", "we all then"]
    assert np.allclose(onnx.predict_proba(texts), fitted.predict_proba(texts), atol=1e-4)
    assert onnx.predict(texts) == fitted.predict(texts)


def test_search_and_compress_take_multilabel_data(tmp_path):
    from textlstm.jobs.compress import CompressOptions, compress
    from textlstm.jobs.search import SearchJob, run_search
    texts, labels = emotions(120)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "labels": labs}) + "\n" for t, labs in zip(texts, labels)))
    grid = tmp_path / "grid.toml"
    grid.write_text('"model.hidden_size" = [8, 16]\n')
    result = run_search(tiny("train.epochs=4"), SearchJob(data, grid, tmp_path / "out", cv=2, refit=True))
    assert len(result.trials) == 2 and all(0 < t.mean <= 1 for t in result.trials)
    model = TextClassifier.load(result.model_dir)
    assert model.multilabel and model.classes_ == ["anger", "fear", "joy"]
    out = compress(result.model_dir, tmp_path / "small", CompressOptions(quantize="dynamic-int8", eval=data))
    small = TextClassifier.load(out.model_dir)
    assert small.multilabel and small.thresholds_.tolist() == model.thresholds_.tolist()
    assert all(step.macro_f1 is not None for step in out.steps)
