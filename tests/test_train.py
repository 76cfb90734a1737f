import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from textlstm.config import ModelConfig, TrainConfig
from textlstm.data.batching import EncodedDataset, bucket_batches, n_batches, padded_length, padding_share
from textlstm.errors import TrainingError
from textlstm.model import TextLSTM
from textlstm.model.infer import predict_logits
from textlstm.training.checkpoint import load_checkpoint
from textlstm.training.objectives import class_weights_for
from textlstm.training.optim import effective_lr
from textlstm.training.trainer import Callback, Trainer, TrainingInterrupted


def toy_data(n=48, seed=0):
    """Label 1 when token 3 occurs, else 0; random lengths 1..12 over tokens 2..9."""
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for i in range(n):
        seq = rng.integers(4, 10, size=rng.integers(1, 13))
        label = i % 2
        if label:
            seq[rng.integers(len(seq))] = 3
        ids.append(seq.astype(np.int64))
        labels.append(label)
    return EncodedDataset(ids, np.asarray(labels, dtype=np.int64))


def make_model(seed=0, **kw):
    torch.manual_seed(seed)
    return TextLSTM(ModelConfig(hidden_size=16, embedding_dim=8, attention_dim=8, dropout=0.1,
                                embedding_dropout=0.1, **kw), vocab_size=10, n_labels=2)


def tcfg(**kw):
    base = dict(epochs=3, batch_size=8, bucket_chunk=2, lr=1e-2, threads=1, freeze="never",
                patience=0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def accuracy(model, data):
    logits, _ = predict_logits(model, data)
    return float((logits.argmax(1) == data.labels).mean())


def test_overfits_tiny_data_to_full_training_accuracy():
    data = toy_data()
    model = make_model()
    Trainer(model, tcfg(epochs=40, lr=2e-2, schedule="constant"), data, n_labels=2).fit()
    assert accuracy(model, data) == 1.0


def test_bucketing_reduces_padding_and_covers_every_example():
    lengths = np.random.default_rng(0).integers(1, 300, size=1000)
    rng = np.random.default_rng(1)
    buckets = bucket_batches(lengths, 32, 10, rng)
    assert sorted(np.concatenate(buckets).tolist()) == list(range(1000))
    assert len(buckets) == n_batches(1000, 32, 10)
    plain = [np.arange(i, min(i + 32, 1000)) for i in range(0, 1000, 32)]
    assert padding_share(buckets, lengths) < 0.15 < 0.4 < padding_share(plain, lengths)


class Snapshots(Callback):
    def __init__(self, model):
        self.model, self.weights = model, []

    def on_epoch_end(self, record):
        self.weights.append(self.model.embedding.weight.detach().clone())


def test_frozen_epochs_keep_embeddings_then_unfreeze():
    data = toy_data()
    model = make_model()
    before = model.embedding.weight.detach().clone()
    snap = Snapshots(model)
    result = Trainer(model, tcfg(freeze="epochs", freeze_epochs=2, epochs=3), data, toy_data(16, 1),
                     n_labels=2, callbacks=[snap]).fit()
    assert torch.equal(snap.weights[0], before) and torch.equal(snap.weights[1], before)
    assert not torch.equal(snap.weights[2], before)
    assert result.unfrozen_epoch == 3
    assert [h["unfrozen"] for h in result.history] == [False, False, True]


def test_always_frozen_never_changes_embeddings():
    model = make_model()
    before = model.embedding.weight.detach().clone()
    Trainer(model, tcfg(freeze="always"), toy_data(), n_labels=2).fit()
    assert torch.equal(model.embedding.weight.detach(), before)


def test_balanced_class_weights_change_the_loss():
    labels = np.array([0, 0, 0, 1])
    w = class_weights_for(labels, 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 2.0]))
    data = toy_data()
    data.labels[:30] = 0
    losses = []
    for weights in (None, class_weights_for(data.labels, 2)):
        model = make_model()
        r = Trainer(model, tcfg(epochs=1), data, n_labels=2, class_weights=weights).fit()
        losses.append(r.history[0]["train_loss"])
    assert losses[0] != pytest.approx(losses[1])


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "onecycle", "plateau"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimiser_and_schedule_trains(schedule, optimizer):
    model = make_model()
    r = Trainer(model, tcfg(epochs=2, schedule=schedule, optimizer=optimizer, l1=1e-5,
                            label_smoothing=0.1), toy_data(), toy_data(16, 1), n_labels=2).fit()
    assert len(r.history) == 2 and all(math.isfinite(h["train_loss"]) for h in r.history)


def test_same_seed_same_weights():
    runs = []
    for _ in range(2):
        model = make_model()
        Trainer(model, tcfg(), toy_data(), n_labels=2).fit()
        runs.append(model.state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k])


class StopAt(Callback):
    def __init__(self, trainer_ref, step):
        self.ref, self.step = trainer_ref, step

    def on_step(self, epoch, step, loss, tokens, lr):
        if self.ref[0].state.global_step == self.step:
            self.ref[0].request_stop("test")


@pytest.mark.parametrize("stop_step", [6, 7, 13])  # an epoch has 6 batches
def test_resume_reproduces_uninterrupted_weights(tmp_path, stop_step):
    data, val = toy_data(), toy_data(16, 1)
    cfg = tcfg(epochs=3, freeze="epochs", freeze_epochs=1)
    full = make_model()
    Trainer(full, cfg, data, val, n_labels=2).fit()

    ref = [None]
    model = make_model()
    ref[0] = Trainer(model, cfg, data, val, n_labels=2, checkpoint_dir=tmp_path,
                     fingerprint={"labels": ["0", "1"]}, callbacks=[StopAt(ref, stop_step)])
    with pytest.raises(TrainingInterrupted):
        ref[0].fit()
    torch.manual_seed(999)  # the resumed run must not depend on the process's RNG
    resumed = make_model(seed=5)
    result = Trainer(resumed, cfg, data, val, n_labels=2, checkpoint_dir=tmp_path,
                     fingerprint={"labels": ["0", "1"]}).fit(resume=True)
    assert len(result.history) == 3
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_resume_with_different_inputs_is_refused(tmp_path):
    Trainer(make_model(), tcfg(epochs=1), toy_data(), n_labels=2, checkpoint_dir=tmp_path,
            fingerprint={"labels": ["0", "1"]}).fit()
    with pytest.raises(TrainingError, match="labels"):
        Trainer(make_model(), tcfg(epochs=2), toy_data(), n_labels=2, checkpoint_dir=tmp_path,
                fingerprint={"labels": ["a", "b"]}).fit(resume=True)


def test_checkpoint_loads_with_the_safe_loader(tmp_path):
    Trainer(make_model(), tcfg(epochs=1, schedule="onecycle"), toy_data(), n_labels=2,
            checkpoint_dir=tmp_path).fit()
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["state"]["epoch"] == 1
    assert load_checkpoint(tmp_path)["torch_rng"].dtype == torch.uint8


def test_early_stopping_keeps_the_best_weights():
    data, val = toy_data(), toy_data(16, 1)
    model = make_model()
    kept = {}

    class Keep(Callback):
        def on_epoch_end(self, record):
            kept[record["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    r = Trainer(model, tcfg(epochs=30, lr=5e-2, patience=2, schedule="constant"), data, val,
                n_labels=2, callbacks=[Keep()]).fit()
    assert r.stopped_early and len(r.history) < 30
    best = max(r.history, key=lambda h: h["val_macro_f1"])
    assert r.best_epoch == best["epoch"] and r.best_score == best["val_macro_f1"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, kept[r.best_epoch][k])


def test_unfreeze_on_plateau_records_the_epoch():
    model = make_model()
    r = Trainer(model, tcfg(epochs=12, freeze="plateau", lr=5e-2, schedule="constant"), toy_data(),
                toy_data(16, 1), n_labels=2).fit()
    assert r.history[0]["unfrozen"] is False
    assert r.unfrozen_epoch is not None and r.unfrozen_epoch > 1
    assert r.history[r.unfrozen_epoch - 1]["unfrozen"] is True


def test_non_finite_loss_names_epoch_and_step(tmp_path):
    model = make_model()
    with torch.no_grad():
        model.head[-1].weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"epoch 1, step 1"):
        Trainer(model, tcfg(), toy_data(), n_labels=2, checkpoint_dir=tmp_path).fit()


def test_inference_batches_cap_padded_tokens_so_one_huge_text_runs_alone():
    from textlstm.data.batching import INFER_MAX_TOKENS, sorted_batches
    lengths = np.array([5] * 300 + [800] * 100 + [60_000])
    batches = sorted_batches(lengths, 256)
    assert batches[0].tolist() == [400]  # longer than the budget: alone
    assert sorted(np.concatenate(batches).tolist()) == list(range(401))
    assert all(len(b) * lengths[b].max() <= INFER_MAX_TOKENS for b in batches[1:])
    assert [len(b) for b in batches[1:]] == [20] * 5 + [256, 44]  # 16,384 // 800 = 20 long texts


@pytest.mark.parametrize("rule, batch, world, expected", [
    ("none", 256, 1, 1e-3), ("linear", 256, 1, 4e-3), ("sqrt", 256, 1, 2e-3),
    ("linear", 64, 4, 4e-3), ("sqrt", 16, 1, 5e-4)])
def test_lr_scales_with_the_global_batch(rule, batch, world, expected):
    cfg = TrainConfig(lr=1e-3, batch_size=batch, base_batch_size=64, lr_scaling=rule)
    assert effective_lr(cfg, world) == pytest.approx(expected)


def test_trainer_uses_the_scaled_lr_in_both_parameter_groups():
    data = EncodedDataset([np.array([2, 3, 4])] * 8, np.array([0, 1] * 4))
    model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=8, attention_dim=8), 5, 2)
    cfg = TrainConfig(lr=1e-3, batch_size=128, lr_scaling="linear", embedding_lr_mult=0.5,
                      schedule="constant", warmup=0.0)
    trainer = Trainer(model, cfg, data, n_labels=2)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([2e-3, 1e-3])


def test_resume_accepts_a_checkpoint_written_before_a_model_setting_existed(tmp_path):
    from dataclasses import asdict

    from textlstm.training.checkpoint import check_fingerprint
    current = {"labels": ["a", "b"], "model": asdict(ModelConfig())}
    older = {"labels": ["a", "b"], "model": {k: v for k, v in current["model"].items() if k != "quantization"}}
    check_fingerprint(older, current, tmp_path)  # the missing key had its default
    changed = {**current, "model": {**current["model"], "hidden_size": 7}}
    with pytest.raises(TrainingError, match="Cannot resume"):
        check_fingerprint(older, changed, tmp_path)


class StepWeights(Callback):
    """The raw weights after every step."""

    def __init__(self, model):
        self.model, self.steps = model, []

    def on_step(self, epoch, step, loss, tokens, lr):
        self.steps.append({k: v.detach().clone() for k, v in self.model.named_parameters()})


def test_ema_keeps_the_warm_moving_average_of_every_step_without_validation():
    model, decay = make_model(), 0.9
    snaps = StepWeights(model)
    r = Trainer(model, tcfg(epochs=2, ema_decay=decay), toy_data(), n_labels=2, callbacks=[snaps]).fit()
    assert r.best_score is None and len(snaps.steps) == 12
    expected = {k: v.clone() for k, v in snaps.steps[0].items()}  # the first update copies
    for n, weights in enumerate(snaps.steps[1:], 1):
        d = min(decay, (1 + n) / (10 + n))
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * weights[k]
    final = dict(model.named_parameters())
    for k, v in expected.items():
        torch.testing.assert_close(final[k].detach(), v, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(final["head.1.weight"], snaps.steps[-1]["head.1.weight"])


def test_ema_is_what_validation_scores_and_early_stopping_keeps():
    data, val = toy_data(), toy_data(16, 1)
    model = make_model()
    kept, scored = {}, {}
    ref = [None]

    class Keep(Callback):
        def on_epoch_end(self, record):
            averaged = ref[0].average.module
            kept[record["epoch"]] = {k: v.clone() for k, v in averaged.state_dict().items()}
            scored[record["epoch"]] = accuracy(averaged, val)

    ref[0] = Trainer(model, tcfg(epochs=8, lr=5e-2, schedule="constant", ema_decay=0.8), data, val,
                     n_labels=2, callbacks=[Keep()])
    r = ref[0].fit()
    for h in r.history:
        assert h["val_accuracy"] == pytest.approx(scored[h["epoch"]])
    for k, v in model.state_dict().items():
        assert torch.equal(v, kept[r.best_epoch][k])


@pytest.mark.parametrize("stop_step", [1, 7])
def test_resume_with_ema_reproduces_uninterrupted_weights(tmp_path, stop_step):
    data, val = toy_data(), toy_data(16, 1)
    cfg = tcfg(epochs=3, ema_decay=0.95)
    full = make_model()
    Trainer(full, cfg, data, val, n_labels=2).fit()
    ref = [None]
    ref[0] = Trainer(make_model(), cfg, data, val, n_labels=2, checkpoint_dir=tmp_path,
                     callbacks=[StopAt(ref, stop_step)])
    with pytest.raises(TrainingInterrupted):
        ref[0].fit()
    resumed = make_model(seed=5)
    Trainer(resumed, cfg, data, val, n_labels=2, checkpoint_dir=tmp_path).fit(resume=True)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    with pytest.raises(TrainingError, match="ema_decay"):
        Trainer(make_model(), tcfg(epochs=3), data, val, n_labels=2, checkpoint_dir=tmp_path).fit(resume=True)


@given(st.integers(min_value=1, max_value=100_000))
def test_padded_lengths_add_at_most_a_sixteenth_and_few_shapes(n):
    assert n <= padded_length(n) <= n * 1.0625 and padded_length(padded_length(n)) == padded_length(n)
    assert len({padded_length(k) for k in range(1, 801)}) < 120  # instead of 800 batch shapes


def test_rounded_padding_does_not_change_the_scores():
    from textlstm.data.batching import collate

    torch.manual_seed(0)
    model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4, pooling="attention+max+mean+last"), 50, 3).eval()
    seqs = [np.arange(2, 35) % 48 + 2, np.arange(5, 20)]
    ids, lengths = collate(seqs)
    assert ids.shape[1] == 34  # 33 rounded up
    with torch.no_grad():
        rounded = model(ids, lengths)[0]
        exact = model(ids[:, :33], lengths)[0]
    torch.testing.assert_close(rounded, exact, rtol=1e-5, atol=1e-6)


def test_a_stop_without_a_checkpoint_directory_says_nothing_was_saved():
    ref = [None]
    ref[0] = Trainer(make_model(), tcfg(epochs=2), toy_data(), None, n_labels=2, callbacks=[StopAt(ref, 2)])
    with pytest.raises(TrainingInterrupted, match="nothing was saved"):
        ref[0].fit()
