"""Adversarial training, virtual adversarial training and entropy minimisation
(`train.adversarial`, `train.vat`, `train.entropy_min`) with and without unlabelled texts."""
import json

import numpy as np
import pytest
import torch
from helpers import NEG, POS
from test_train import StopAt, make_model, tcfg, toy_data
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import make_config
from textlstm.errors import ConfigError
from textlstm.training.adversarial import Regularised, _forward_all, _unit
from textlstm.training.objectives import Classification
from textlstm.training.trainer import Trainer, TrainingInterrupted


def unlabelled(n=64, seed=2):
    data = toy_data(n, seed)
    data.labels = None
    return data


def test_off_by_default_and_settings_are_checked():
    trainer = Trainer(make_model(), tcfg(), toy_data(), n_labels=2)
    assert isinstance(trainer.objective, Classification)
    trainer = Trainer(make_model(), tcfg(adversarial=0.5), toy_data(), n_labels=2)
    assert isinstance(trainer.objective, Regularised)
    for bad in ("train.adversarial=-1", "train.vat=-0.5", "train.vat_iterations=0", "train.entropy_min=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            make_config(overrides=[bad]).validate()


def test_the_perturbation_has_the_asked_norm_and_follows_the_loss_gradient():
    model = make_model()
    data = toy_data(8)
    cfg = tcfg(adversarial=2.0)
    trainer = Trainer(model, cfg, data, n_labels=2)
    obj = trainer.objective
    from textlstm.data.batching import collate
    ids, lengths = collate(data.ids)
    y = torch.from_numpy(data.labels)
    model.eval()  # no dropout: the loss is a function of the embeddings alone
    grad = obj._loss_gradient(model, ids, lengths, y, np.arange(8))
    r = _unit(grad)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5)
    base = obj.base.loss_from_logits(model(ids, lengths)[0], y, np.arange(8), 1.0)
    moved = obj.base.loss_from_logits(model(ids, lengths, perturb=0.5 * r)[0], y, np.arange(8), 1.0)
    away = obj.base.loss_from_logits(model(ids, lengths, perturb=-0.5 * r)[0], y, np.arange(8), 1.0)
    assert moved > base > away  # along the gradient the loss rises
    assert float(grad[0, int(lengths[0]):].abs().sum()) == 0.0  # padding gets no perturbation


def test_one_stacked_forward_equals_separate_forwards():
    model = make_model().eval()
    a, b = toy_data(4, 0), toy_data(3, 5)
    from textlstm.data.batching import collate
    ia, la = collate(a.ids)
    ib, lb = collate(b.ids)
    r = torch.randn(*ib.shape, 8)
    stacked = _forward_all(model, [(ia, la, None), (ib, lb, r)])
    assert torch.allclose(stacked[0], model(ia, la)[0], atol=1e-5)
    assert torch.allclose(stacked[1], model(ib, lb, perturb=r)[0], atol=1e-5)


@pytest.mark.parametrize("settings", [{"adversarial": 1.0}, {"vat": 1.0}, {"entropy_min": 0.5},
                                      {"adversarial": 1.0, "vat": 1.0, "entropy_min": 1.0}])
def test_each_loss_trains_and_adds_to_the_plain_loss(settings):
    data, val = toy_data(), toy_data(16, 1)
    plain, regular = make_model(), make_model()
    first = Trainer(plain, tcfg(epochs=1), data, val, n_labels=2).fit().history[0]["train_loss"]
    result = Trainer(regular, tcfg(epochs=10, **settings), data, val, n_labels=2).fit()
    assert result.history[0]["train_loss"] > first  # the added terms are in the loss
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    assert result.history[-1]["val_accuracy"] >= 0.8


def test_unlabelled_batches_are_drawn_per_step_and_resume_exactly(tmp_path):
    data, val, unl = toy_data(), toy_data(16, 1), unlabelled()
    cfg = tcfg(epochs=3, vat=1.0, entropy_min=0.5)
    full = make_model()
    Trainer(full, cfg, data, val, n_labels=2, unlabelled=unl).fit()
    ref = [None]
    ref[0] = Trainer(make_model(), cfg, data, val, n_labels=2, unlabelled=unl, checkpoint_dir=tmp_path,
                     callbacks=[StopAt(ref, 7)])
    with pytest.raises(TrainingInterrupted):
        ref[0].fit()
    resumed = make_model(seed=5)
    Trainer(resumed, cfg, data, val, n_labels=2, unlabelled=unl, checkpoint_dir=tmp_path).fit(resume=True)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    # and the unlabelled texts change the result
    other = make_model()
    Trainer(other, cfg, data, val, n_labels=2).fit()
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in full.state_dict().items())


def test_multilabel_models_take_the_losses_too():
    rng = np.random.default_rng(0)
    ids = [rng.integers(2, 10, size=rng.integers(2, 9)).astype(np.int64) for _ in range(40)]
    y = np.stack([[float(3 in s), float(5 in s)] for s in ids]).astype(np.float32)
    from textlstm.data.batching import EncodedDataset
    from textlstm.training.objectives import MultiLabelClassification
    data = EncodedDataset(ids, y)
    result = Trainer(make_model(), tcfg(epochs=2, adversarial=1.0, vat=1.0, entropy_min=1.0), data, data,
                     objective=MultiLabelClassification(2), unlabelled=unlabelled()).fit()
    assert all(np.isfinite(h["train_loss"]) for h in result.history)


def tiny(*overrides):
    return make_config(overrides=["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8",
                                  "train.epochs=2", "train.batch_size=4", "train.threads=1",
                                  'tokenizer.kind="regex"', "data.val_split=0", *overrides])


def test_library_cli_and_estimator_take_unlabelled_texts(tmp_path):
    clf = TextClassifier(tiny("train.vat=1", "train.entropy_min=0.5")).fit(
        POS + NEG, ["pos"] * 6 + ["neg"] * 6, unlabelled_texts=["a warm story", "a flat bore", "fine"])
    assert clf.meta_["n_unlabelled"] == 3 and clf.config.train.vat == 1.0
    clf.save(tmp_path / "lib")
    assert TextClassifier.load(tmp_path / "lib").config.train.entropy_min == 0.5

    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\tpos\n" for t in POS) + "".join(f"{t}\tneg\n" for t in NEG))
    unl = tmp_path / "unsup.txt"
    unl.write_text("a warm story\n\nsuperb and moving\na flat bore\n")
    args = ["train", str(data), "--out", str(tmp_path / "m"), "--unlabelled", str(unl), "-q",
            *[x for s in ("model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8",
                          "tokenizer.kind=regex", "train.vat=1", "train.adversarial=0.5", "data.val_split=0")
              for x in ("--set", s)], "--epochs", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["meta"]["n_unlabelled"] == 3 and meta["meta"]["data"]["unlabelled"] == str(unl)
    assert meta["config"]["train"]["adversarial"] == 0.5

    from textlstm.sklearn import TextLSTMClassifier
    est = TextLSTMClassifier(overrides={"model.hidden_size": 8, "model.embedding_dim": 8,
                                        "model.attention_dim": 8, "tokenizer.kind": "regex"},
                             epochs=2, val_split=0, vat=1.0, unlabelled=str(unl)).fit(POS + NEG, ["p"] * 6 + ["n"] * 6)
    assert est.classifier_.meta_["n_unlabelled"] == 3
