import copy
import json

import numpy as np
import pytest
import torch
from helpers import LABELS, TEXTS
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import ModelConfig, make_config
from textlstm.errors import ConfigError, ModelFileError
from textlstm.jobs.compress import CompressOptions, compress
from textlstm.model import TextLSTM
from textlstm.model.prune import make_permanent, prunable, prune_model, zero_share, zero_shares
from textlstm.model.quantize import float_state_dict, is_quantized, quantize_model


def tiny_model(seed=0, cell="lstm"):
    torch.manual_seed(seed)
    cfg = ModelConfig(embedding_dim=6, hidden_size=8, num_layers=2, residual=True, head_hidden=5,
                      attention_dim=4, cell=cell, pooling="attention+max+last")
    return TextLSTM(cfg, vocab_size=30, n_labels=3).eval()


def batch():
    ids = torch.tensor([[5, 6, 7, 8, 9], [3, 4, 0, 0, 0], [2, 0, 0, 0, 0]])
    return ids, torch.tensor([5, 2, 1])


def logits(model):
    with torch.no_grad():
        return model(*batch())[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("compress")
    (d / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(TEXTS, LABELS)))
    cfg = make_config(overrides=[
        "model.hidden_size=16", "model.embedding_dim=8", "model.attention_dim=8", "train.epochs=25",
        "train.lr=0.02", "train.batch_size=4", "train.threads=1", "train.freeze=\"never\"",
        "train.schedule=\"constant\"", "train.patience=0", "data.val_split=0", "tokenizer.kind=\"regex\""])
    TextClassifier(cfg).fit(TEXTS, LABELS).save(d / "model")
    return d


# -- pruning -------------------------------------------------------------------------------

def test_prunable_weights_are_the_recurrent_and_linear_matrices_only():
    names = sorted(f"{type(m).__name__}.{n}" for m, n in prunable(tiny_model()))
    assert names.count("LSTM.weight_ih_l0") == 4 and names.count("LSTM.weight_hh_l0") == 4
    assert names.count("Linear.weight") == 4  # attention proj and score, the head's two layers
    assert not any("Embedding" in n or "bias" in n for n in names)


def test_global_pruning_reaches_the_target_over_all_weights():
    model = tiny_model()
    prune_model(model, 0.5, "global")
    total = sum(getattr(m, n).numel() for m, n in prunable(model))
    assert zero_share(model) == pytest.approx(round(0.5 * total) / total)
    shares = zero_shares(model).values()
    assert max(shares) - min(shares) > 0.05  # one threshold: layers end up with different shares


def test_layer_pruning_reaches_the_target_in_every_tensor():
    model = tiny_model()
    prune_model(model, 0.4, "layer")
    for name, share in zero_shares(model).items():
        assert share == pytest.approx(0.4, abs=0.1), name  # rounding: the score layer has 4 weights
    make_permanent(model)
    assert zero_share(model) == pytest.approx(0.4, abs=0.02)


def test_steps_count_from_the_current_weights_and_keep_earlier_zeros():
    model = tiny_model()
    prune_model(model, 0.25)
    first = {k: v == 0 for k, v in _weights(model).items()}
    prune_model(model, 0.5)
    assert zero_share(model) == pytest.approx(0.5, abs=0.01)
    for name, zeros in _weights(model).items():
        assert bool(((zeros == 0) | ~first[name]).all()), name


def _weights(model):
    return {f"{id(m)}.{n}": getattr(m, n).detach().clone() for m, n in prunable(model)}


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole"])
def test_masks_reach_the_recurrent_kernel(cell):
    """The RNN kernel reads `_flat_weights`: pruning must update it, or the forward pass would
    still use the unpruned weights."""
    model = tiny_model(cell=cell)
    dense = logits(model)
    prune_model(model, 0.6)
    pruned = logits(model)
    assert not torch.allclose(dense, pruned)
    with torch.no_grad():  # what the masks hide must not matter
        for module, name in prunable(model):
            orig, mask = getattr(module, f"{name}_orig"), getattr(module, f"{name}_mask")
            orig.add_((1 - mask) * 100.0)
    torch.testing.assert_close(logits(model), pruned)
    plain = tiny_model(cell=cell)
    make_permanent(model)
    plain.load_state_dict(model.state_dict())  # plain parameters with the zeros written in
    torch.testing.assert_close(logits(plain), pruned)
    assert zero_share(plain) == pytest.approx(0.6, abs=0.01)


# -- quantisation ----------------------------------------------------------------------------

def test_quantized_model_is_close_to_float_and_keeps_its_float_weights():
    model = tiny_model()
    ref, state = logits(model), copy.deepcopy(model.state_dict())
    quantized = quantize_model(model, "dynamic-int8")
    assert is_quantized(quantized)
    assert type(quantized.encoder.layers[0][0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    torch.testing.assert_close(logits(quantized), ref, atol=0.05, rtol=0)
    assert set(float_state_dict(quantized)) == set(state)
    for k, v in float_state_dict(quantized).items():
        torch.testing.assert_close(v, state[k])


def test_unknown_quantization_is_a_config_error():
    with pytest.raises(ConfigError, match="Allowed: none, dynamic-int8"):
        quantize_model(tiny_model(), "int4")


# -- compress: library and CLI -----------------------------------------------------------------

def test_compress_prunes_fine_tunes_quantizes_and_the_load_path_requantizes(model_dir):
    d = model_dir
    opts = CompressOptions(prune=0.5, prune_steps=2, train=d / "train.tsv", finetune_epochs=2,
                           quantize="dynamic-int8", eval=d / "train.tsv", timing_repeats=1)
    result = compress(d / "model", d / "small", opts)
    assert [s.step for s in result.steps] == ["original", "pruned 25%", "pruned 50%", "dynamic-int8"]
    assert [round(s.zero_share, 2) for s in result.steps] == [0.0, 0.25, 0.5, 0.5]
    assert all(s.accuracy is not None and s.docs_per_s > 0 for s in result.steps)
    assert result.steps[1].finetune_seconds > 0
    assert result.steps[-1].file_bytes == (d / "small" / "model.safetensors").stat().st_size
    config = json.loads((d / "small" / "config.json").read_text())
    assert config["config"]["model"]["quantization"] == "dynamic-int8"
    assert config["meta"]["compression"]["steps"][2]["step"] == "pruned 50%"
    loaded = TextClassifier.load(d / "small")
    assert is_quantized(loaded.model_)
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), result.classifier.predict_proba(TEXTS))
    float_model = TextLSTM(loaded.config.model, len(loaded.vocab_), 2)  # the stored float weights
    float_model.load_state_dict(float_state_dict(loaded.model_))
    assert zero_share(float_model) == pytest.approx(0.5, abs=0.01)
    loaded.save(d / "resaved")  # a quantised model saves its float weights
    assert is_quantized(TextClassifier.load(d / "resaved").model_)


def test_compress_refuses_bad_requests(model_dir, tmp_path):
    d = model_dir
    with pytest.raises(ConfigError, match="Nothing to do"):
        compress(d / "model", tmp_path / "a", CompressOptions())
    with pytest.raises(ConfigError, match="needs --prune"):
        compress(d / "model", tmp_path / "a", CompressOptions(quantize="dynamic-int8", train=d / "train.tsv"))
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        compress(d / "model", tmp_path / "a", CompressOptions(prune=1.5))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(ModelFileError, match="--overwrite"):
        compress(d / "model", tmp_path / "taken", CompressOptions(prune=0.3))
    compress(d / "model", tmp_path / "q", CompressOptions(quantize="dynamic-int8"))
    with pytest.raises(ModelFileError, match="already quantised"):
        compress(tmp_path / "q", tmp_path / "qq", CompressOptions(prune=0.3))


def test_cli_compress_prints_the_report_and_writes_json(model_dir, tmp_path):
    d = model_dir
    res = CliRunner().invoke(app, ["compress", str(d / "model"), "--out", str(tmp_path / "m"), "--prune", "0.3",
                                   "--prune-scope", "layer", "--quantize", "dynamic-int8", "--eval",
                                   str(d / "train.tsv"), "--json", str(tmp_path / "r.json"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "pruned 30%" in res.output and "dynamic-int8" in res.output and "model saved" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [s["step"] for s in report["steps"]] == ["original", "pruned 30%", "dynamic-int8"]
    loaded = TextClassifier.load(tmp_path / "m")
    float_model = TextLSTM(loaded.config.model, len(loaded.vocab_), 2)
    float_model.load_state_dict(float_state_dict(loaded.model_))
    for name, share in zero_shares(float_model).items():  # per tensor, as saved
        assert share == pytest.approx(0.3, abs=0.13), name
    res = CliRunner().invoke(app, ["compress", str(d / "model"), "--out", str(tmp_path / "m"), "--prune", "0.3"])
    assert res.exit_code == 1 and "--overwrite" in res.output
