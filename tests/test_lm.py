"""Language-model pretraining of the encoder (`pretrain-lm`) and classifiers started from it."""
import json
import random

import pytest
import torch
from helpers import ROWS, write_tsv
from safetensors.torch import load_file
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import make_config
from textlstm.errors import ConfigError, ModelFileError, TrainingError
from textlstm.training.lm import BiLM, load_encoder, pretrain_lm

SMALL = ["model.hidden_size=16", "model.embedding_dim=8", "model.attention_dim=8", "train.batch_size=16", "data.val_split=0",
         "train.threads=1", 'tokenizer.kind="regex"', "train.lr=0.01", 'train.schedule="constant"']


def cfg(*extra):
    return make_config(overrides=SMALL + list(extra))


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """Texts that follow a fixed cycle of words: a language model can learn them."""
    path = tmp_path_factory.mktemp("lm") / "unsup.txt"
    cycle = "the film was great and the story was good but the plot was dull".split()
    rng = random.Random(0)
    lines = []
    for _ in range(400):
        start, n = rng.randrange(len(cycle)), rng.randint(4, 14)
        lines.append(" ".join(cycle[(start + i) % len(cycle)] for i in range(n)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def encoder(unlabelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "encoder"
    path, history = pretrain_lm(unlabelled, out, cfg("train.epochs=4"))
    return path, history


def test_pretraining_learns_the_text_and_saves_only_the_encoder(encoder):
    path, history = encoder
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    # 14 words: a model that knows nothing has perplexity ~16; the cycle makes most words certain
    assert history[0]["val_perplexity"] > history[-1]["val_perplexity"]
    assert history[-1]["val_perplexity"] < 4
    tensors = load_file(str(path / "model.safetensors"))
    assert tensors and all(k.startswith(("embedding.", "encoder.")) for k in tensors)
    doc = json.loads((path / "config.json").read_text())
    assert doc["labels"] == [] and doc["meta"]["kind"] == "bilm-encoder"
    # the one training loop keeps the epoch with the best held-out perplexity
    ppl = [h["val_perplexity"] for h in history]
    assert doc["meta"]["best_epoch"] == ppl.index(min(ppl)) + 1
    assert all(h["train_perplexity"] > 1 for h in history)
    assert load_encoder(path).vocab.itos[:2] == ["<pad>", "<unk>"]


def test_a_classifier_starts_from_the_encoder_and_freezes_it_with_the_embeddings(encoder, tmp_path):
    path, _ = encoder
    enc = load_encoder(path)
    texts, labels = [t for t, _ in ROWS] + ["a plot twist"], [lab for _, lab in ROWS] + ["positive"]
    c = cfg(f'embeddings.encoder="{path}"', "train.epochs=1", 'train.freeze="epochs"', "train.freeze_epochs=1",
            "data.val_split=0")
    clf = TextClassifier(c).fit(texts, labels)
    assert clf.vocab_.itos[:len(enc.vocab)] == enc.vocab.itos  # the encoder's words first, same ids
    assert "twist" in clf.vocab_ and "twist" not in enc.vocab  # then the training words it lacks
    fallback = TextClassifier(cfg(f'embeddings.encoder="{path}"', "train.epochs=1", "data.val_split=0",
                                  "vocab.case_fallback=true")).fit(texts, labels)
    assert fallback.vocab_.lookup_indices(["FILM"]) == [enc.vocab["film"]]  # (the tokenizer lowercases anyway)
    capped = TextClassifier(cfg(f'embeddings.encoder="{path}"', "train.epochs=1", "data.val_split=0",
                                f"vocab.max_size={len(enc.vocab) - 2 + 1}")).fit(texts, labels)
    assert len(capped.vocab_) == len(enc.vocab) + 1  # vocab.max_size holds for the added words
    state = clf.model_.state_dict()
    for name, value in enc.tensors.items():  # frozen for the only epoch: unchanged
        if name == "embedding.weight":
            assert torch.equal(state[name][:len(enc.vocab)], value)
        else:
            assert torch.equal(state[name], value), name
    c2 = cfg(f'embeddings.encoder="{path}"', "train.epochs=2", 'train.freeze="epochs"', "train.freeze_epochs=1",
             "data.val_split=0")
    clf2 = TextClassifier(c2).fit(texts, labels)
    moved = [k for k, v in enc.tensors.items() if k.startswith("encoder.")
             and not torch.equal(clf2.model_.state_dict()[k], v)]
    assert moved  # unfrozen in epoch 2: the recurrent layers train too
    # fine_tune (pruning's recovery) freezes the embeddings only: the recurrent layers train
    before = {k: v.clone() for k, v in clf2.model_.state_dict().items()}
    data = tmp_path / "tune.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in zip(texts, labels)))
    after = clf2.fine_tune(data, epochs=1).model_.state_dict()
    assert torch.equal(after["embedding.weight"], before["embedding.weight"])
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("encoder."))


def test_mismatched_settings_vectors_and_classifiers_are_refused(encoder, tmp_path):
    path, _ = encoder
    texts, labels = [t for t, _ in ROWS], [lab for _, lab in ROWS]
    with pytest.raises(ConfigError, match="model.hidden_size: encoder 16, classifier 32"):
        TextClassifier(cfg(f'embeddings.encoder="{path}"', "model.hidden_size=32")).fit(texts, labels)
    with pytest.raises(ConfigError, match="tokenizer.lower"):
        TextClassifier(cfg(f'embeddings.encoder="{path}"', "tokenizer.lower=false")).fit(texts, labels)
    # the encoder's embeddings decide their size, whatever model.embedding_dim says
    sized = TextClassifier(cfg(f'embeddings.encoder="{path}"', "model.embedding_dim=77", "train.epochs=1",
                               "data.val_split=0")).fit(texts, labels)
    assert sized.config.model.embedding_dim == load_encoder(path).tensors["embedding.weight"].shape[1] != 77
    vec = tmp_path / "v.txt"
    vec.write_text("film " + " ".join(["0.1"] * 8) + "\n")
    with pytest.raises(ConfigError, match="pretrain-lm"):
        TextClassifier(cfg(f'embeddings.encoder="{path}"')).fit(texts, labels, vectors=vec)
    model_dir = TextClassifier(cfg("train.epochs=1")).fit(texts, labels).save(tmp_path / "clf")
    with pytest.raises(ModelFileError, match="not a pretrained encoder") as info:
        load_encoder(model_dir)
    assert str(info.value).startswith(str(model_dir)) and "ValueError" not in str(info.value)


def test_stacked_encoders_are_not_pretrained():
    with pytest.raises(ConfigError, match=r"num_layers = 1 .*\(got 2 and true\)"):
        BiLM(cfg("model.num_layers=2").model, vocab_size=10)


def test_settings_pretraining_cannot_honour_are_refused(unlabelled, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="runs on the CPU"):
        pretrain_lm(unlabelled, tmp_path / "enc", cfg('train.device="cuda"'))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one process"):
        pretrain_lm(unlabelled, tmp_path / "enc", cfg())
    assert not (tmp_path / "enc").exists()


def test_a_non_finite_loss_stops_pretraining_and_saves_nothing(unlabelled, tmp_path):
    with pytest.raises(TrainingError, match=r"Non-finite loss .* at epoch 1, step \d+ .*Nothing was saved"):
        pretrain_lm(unlabelled, tmp_path / "enc", cfg("train.lr=1e30", "train.clip_norm=0", "train.epochs=2"))
    assert not (tmp_path / "enc").exists()


def test_each_direction_predicts_a_word_it_has_not_read():
    """The forward state after token t predicts token t+1; the backward state at t (which has
    read the text from its end back to t) predicts token t-1; padding predicts nothing."""
    torch.manual_seed(0)
    model = BiLM(cfg("model.dropout=0", "model.embedding_dropout=0").model, vocab_size=12).eval()
    ids, lengths = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]]), torch.tensor([4, 2])
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, inputs, targets):
            seen["inputs"], seen["targets"] = inputs, targets
            return type("Out", (), {"loss": inputs.sum() * 0})()
    model.softmax = Recorder()
    _, n = model(ids, lengths)
    assert n == 8  # 3 + 1 next words, 3 + 1 previous words
    with torch.no_grad():
        states, _ = model.net.encoder(model.net.embedding(ids), lengths)
    H = 16
    expected_inputs = torch.stack([states[0, 0, :H], states[0, 1, :H], states[0, 2, :H], states[1, 0, :H],
                                   states[0, 1, H:], states[0, 2, H:], states[0, 3, H:], states[1, 1, H:]])
    assert seen["targets"].tolist() == [3, 4, 5, 7, 2, 3, 4, 6]
    torch.testing.assert_close(seen["inputs"], expected_inputs)


def test_cli_pretrain_lm_then_train_with_encoder(unlabelled, tmp_path):
    runner = CliRunner()
    sets = [a for s in SMALL + ["train.epochs=1", "train.amp=true"] for a in ("--set", s)]
    res = runner.invoke(app, ["pretrain-lm", str(unlabelled), "--out", str(tmp_path / "enc"), "-q", *sets])
    assert res.exit_code == 0, res.output
    assert "perplexity" in res.output and "encoder saved" in res.output
    data = write_tsv(tmp_path / "train.tsv", ROWS * 3)
    res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), "--encoder", str(tmp_path / "enc"),
                              "-q", *sets])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["config"]["embeddings"]["encoder"] == str(tmp_path / "enc")
    res = runner.invoke(app, ["pretrain-lm", str(unlabelled), "--out", str(tmp_path / "enc"), "-q", *sets])
    assert res.exit_code == 1 and "exists" in res.output  # nothing is overwritten unasked
