"""ONNX export: one export per module (it takes seconds), checked with onnxruntime."""
import json

import numpy as np
import pytest
import torch
from helpers import NEG, POS
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import make_config
from textlstm.errors import ConfigError, ModelFileError
from textlstm.jobs.export import export_onnx, read_sidecar, sidecar_path

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'textlstm[onnx]')")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install 'textlstm[onnx]')")

# lengths from 1 to 17 tokens, words the model never saw, an empty text (one <unk>)
QUERIES = ["great", "", "awful acting", "what a wonderful, warm and moving story it was from start to end",
           "zzz unseen words", "I hated every single minute of this tedious, flat and boring mess", "brilliant",
           "Wonderful ACTING"]  # read lowercased (vocab.case_fallback)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    cfg = make_config(overrides=[
        "model.hidden_size=8", "model.embedding_dim=6", "model.attention_dim=4", "model.num_layers=2",
        "model.residual=true", "model.pooling=\"attention+max+mean+last\"", "train.epochs=3",
        "train.batch_size=4", "train.threads=1", "data.val_split=0", "tokenizer.kind=\"regex\"",
        "tokenizer.lower=false", "vocab.case_fallback=true"])
    TextClassifier(cfg).fit(POS + NEG, ["pos"] * 6 + ["neg"] * 6).save(d / "model")
    res = CliRunner().invoke(app, ["export", str(d / "model"), "--format", "onnx", "--out", str(d / "m.onnx")])
    assert res.exit_code == 0, res.output
    return d, res


def test_export_writes_the_graph_and_its_sidecar(exported):
    d, res = exported
    assert "onnxruntime matches textlstm's probabilities" in " ".join(res.output.split())  # rich wraps lines
    meta = read_sidecar(d / "m.onnx")
    clf = TextClassifier.load(d / "model")
    assert meta["labels"] == clf.classes_ and meta["vocab"] == clf.vocab_.itos
    assert meta["tokenizer"] == clf.tokenizer.to_dict() and meta["vocab_case_fallback"] is True
    session = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert set(inputs) == {"ids", "lengths"} and all(isinstance(x, str) for x in inputs["ids"])
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    assert not list(d.glob("*.data")) and not list(d.glob(".*tmp*"))  # one file, no leftovers


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_onnx_probabilities_equal_textlstm_within_1e4(exported, batch_size):
    from textlstm.jobs.export import OnnxClassifier

    d, _ = exported
    want = TextClassifier.load(d / "model").predict_proba(QUERIES, batch_size=batch_size)
    got = OnnxClassifier(d / "m.onnx").predict_proba(QUERIES, batch_size=batch_size)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_a_sidecar_from_a_newer_textlstm_is_refused(exported, tmp_path):
    d, _ = exported
    meta = read_sidecar(d / "m.onnx")
    (tmp_path / "m.onnx").write_bytes(b"")
    sidecar_path(tmp_path / "m.onnx").write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(ModelFileError, match="format_version 99"):
        read_sidecar(tmp_path / "m.onnx")


def test_one_padded_batch_matches_row_by_row(exported):
    """The graph with padding (texts of different lengths in one batch) against each text alone."""
    d, _ = exported
    clf = TextClassifier.load(d / "model")
    session = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"])
    seqs = clf.encode(QUERIES).ids
    ids = np.zeros((len(seqs), max(map(len, seqs))), dtype=np.int64)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = seq
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    padded = session.run(["probabilities"], {"ids": ids, "lengths": lengths})[0]
    alone = np.concatenate([session.run(["probabilities"], {"ids": s[None, :], "lengths": np.array([len(s)])})[0]
                            for s in seqs])
    np.testing.assert_allclose(padded, alone, atol=1e-5, rtol=0)
    with torch.no_grad():
        logits, _ = clf.model_(torch.from_numpy(ids), torch.from_numpy(lengths))
    np.testing.assert_allclose(padded, torch.softmax(logits, -1).numpy(), atol=1e-4, rtol=0)


def test_export_refuses_to_overwrite_and_quantised_models(exported, tmp_path):
    d, _ = exported
    res = CliRunner().invoke(app, ["export", str(d / "model"), "--out", str(d / "m.onnx")])
    assert res.exit_code == 1 and "--overwrite" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["export", str(d / "model"), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "onnx" in res.output
    config = json.loads((d / "model" / "config.json").read_text())
    clf = TextClassifier.load(d / "model")
    clf.config.model.quantization = "dynamic-int8"
    clf.save(tmp_path / "q")
    with pytest.raises(ModelFileError, match="quantised"):
        export_onnx(TextClassifier.load(tmp_path / "q"), tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists() and not sidecar_path(tmp_path / "q.onnx").exists()
    assert config["config"]["model"]["quantization"] == "none"
    clf = TextClassifier.load(d / "model")
    clf.config.model.cell = "peephole"
    with pytest.raises(ConfigError, match="lstm and gru"):
        export_onnx(clf, tmp_path / "p.onnx")


def test_int8_export_uses_onnxruntimes_fused_int8_lstm(exported, tmp_path):
    import onnx

    d, _ = exported
    clf = TextClassifier.load(d / "model")
    result = export_onnx(clf, tmp_path / "q.onnx", quantize="dynamic-int8")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops and "LSTM" not in ops
    assert read_sidecar(tmp_path / "q.onnx")["quantization"] == "dynamic-int8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx", "q.textlstm.json"]
    from textlstm.jobs.export import OnnxClassifier

    got = OnnxClassifier(tmp_path / "q.onnx").predict_proba(QUERIES)
    np.testing.assert_allclose(got, clf.predict_proba(QUERIES), atol=0.05, rtol=0)
    assert result.max_abs_diff is not None and result.max_abs_diff < 0.05


def test_export_with_two_threads_traces_both_directions(exported, tmp_path, monkeypatch):
    """Prediction runs the directions on two threads; the exporter must still see both."""
    from textlstm.model import directions

    monkeypatch.setattr(directions, "MIN_STEPS", 1)
    monkeypatch.setattr(directions, "SCHEDULE", "side-by-side")
    d, _ = exported
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        clf = TextClassifier.load(d / "model")
        result = export_onnx(clf, tmp_path / "two.onnx")
    finally:
        torch.set_num_threads(before)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
