import numpy as np
import pytest
from helpers import NEG, POS

from textlstm import TextClassifier
from textlstm.classifier import prepare_training
from textlstm.config import make_config
from textlstm.errors import DataError, ModelFileError, NotFittedError


def small_config(**extra):
    sets = ["model.hidden_size=16", "model.embedding_dim=8", "model.attention_dim=8",
            "train.epochs=30", "train.lr=0.02", "train.batch_size=4", "train.threads=1",
            "train.freeze=\"never\"", "train.schedule=\"constant\"", "train.patience=0",
            "data.val_split=0", "tokenizer.kind=\"regex\""]
    sets += [f"{k}={v}" for k, v in extra.items()]
    return make_config(overrides=sets)


@pytest.fixture(scope="module")
def fitted():
    texts, labels = POS + NEG, ["pos"] * 6 + ["neg"] * 6
    return TextClassifier(small_config()).fit(texts, labels), texts, labels


def test_overfits_and_predicts_known_labels(fitted):
    clf, texts, labels = fitted
    assert clf.classes_ == ["neg", "pos"]
    assert clf.predict(texts) == labels
    assert clf.evaluate(texts, labels)["accuracy"] == 1.0


def test_proba_columns_follow_classes_and_batch_size_does_not_matter(fitted):
    clf, texts, _ = fitted
    p1 = clf.predict_proba(texts, batch_size=1)
    p512 = clf.predict_proba(texts, batch_size=512)
    np.testing.assert_allclose(p1, p512, atol=1e-6)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-6)
    assert p1.shape == (12, 2)
    assert (p1[:6, clf.classes_.index("pos")] > 0.5).all()


def test_fit_save_load_gives_identical_proba(fitted, tmp_path):
    clf, texts, _ = fitted
    clf.save(tmp_path / "m")
    loaded = TextClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(clf.predict_proba(texts), loaded.predict_proba(texts))
    assert loaded.classes_ == clf.classes_ and loaded.vocab_ == clf.vocab_
    assert loaded.config.to_dict() == clf.config.to_dict()


def test_explain_gives_tokens_with_weights_summing_to_one(fitted):
    clf, _, _ = fitted
    (ex,) = clf.explain(["a great story"])
    assert [t for t, _ in ex["tokens"]] == ["a", "great", "story"]
    assert sum(w for _, w in ex["tokens"]) == pytest.approx(1.0, abs=1e-5)
    assert ex["label"] == "pos"


def test_empty_and_strange_texts_still_predict(fitted):
    clf, _, _ = fitted
    out = clf.predict(["", "   ", "\u200b\u200b", "<br />", "x" * 100_000])
    assert len(out) == 5 and set(out) <= {"pos", "neg"}


def test_unknown_labels_in_evaluation_are_an_error_listing_them(fitted):
    clf, texts, _ = fitted
    with pytest.raises(DataError, match=r"'neutral' \(2\)"):
        clf.evaluate(texts[:3], ["pos", "neutral", "neutral"])


def test_single_class_training_is_refused():
    with pytest.raises(DataError, match="at least two classes"):
        TextClassifier(small_config()).fit(POS, ["pos"] * 6)


def test_unfitted_use_says_what_to_call():
    with pytest.raises(NotFittedError, match="fit"):
        TextClassifier().predict(["x"])


def test_integer_labels_round_trip(tmp_path):
    clf = TextClassifier(small_config(**{"train.epochs": 2})).fit(POS + NEG, [1] * 6 + [0] * 6)
    assert clf.classes_ == ["0", "1"]


def test_fit_with_vectors_reports_coverage(tmp_path):
    vec = tmp_path / "v.txt"
    words = ["great", "bad", "film", "story", "a"]
    rng = np.random.default_rng(0)
    vec.write_text("".join(f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) + "\n" for w in words))
    clf = TextClassifier(small_config(**{"train.epochs": 2})).fit(POS + NEG, ["p"] * 6 + ["n"] * 6, vectors=vec)
    assert clf.coverage_.types_covered == 5
    row = clf.vocab_["great"]
    stored = clf.model_.embedding.weight[row].detach().numpy()
    line = vec.read_text().splitlines()[0].split()[1:]
    assert clf.config.embeddings.vectors == [str(vec)]
    # fine-tuned embeddings move, but frozen=never with 2 epochs stays close to the file's vector
    assert np.allclose(stored, np.array(line, dtype=np.float32), atol=0.2)


def test_load_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError):
        TextClassifier.load(tmp_path / "nope")


def test_unknown_labels_can_be_skipped_and_counted(fitted):
    clf, texts, labels = fitted
    report = clf.evaluate(texts[:3], ["pos", "neutral", "neutral"], skip_unknown=True)
    assert report["n"] == 1 and report["skipped_unknown_labels"] == {"neutral": 2}


def test_resume_with_a_changed_vectors_file_is_refused(tmp_path):
    from textlstm.errors import TrainingError
    vec = tmp_path / "v.txt"
    rng = np.random.default_rng(1)
    write = lambda: vec.write_text("".join(f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) + "\n"
                                           for w in ["great", "bad", "film"]))
    write()
    texts, labels = POS + NEG, ["p"] * 6 + ["n"] * 6
    TextClassifier(small_config(**{"train.epochs": 1})).fit(texts, labels, vectors=vec, checkpoint_dir=tmp_path / "ck")
    vec.write_text(vec.read_text() + "story " + " ".join(["0.5"] * 8) + "\n")
    with pytest.raises(TrainingError, match="vectors"):
        TextClassifier(small_config(**{"train.epochs": 2})).fit(texts, labels, vectors=vec,
                                                                checkpoint_dir=tmp_path / "ck", resume=True)


def test_unseen_vector_words_join_the_vocabulary_with_their_vectors(tmp_path):
    vec = tmp_path / "v.txt"
    words = ["great", "bad", "splendid", "dreadful", "zesty"]  # the last three are not in training
    rng = np.random.default_rng(0)
    vec.write_text("".join(f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) + "\n" for w in words))
    texts, labels = POS + NEG, ["p"] * 6 + ["n"] * 6
    plain = TextClassifier(small_config(**{"train.epochs": 1})).fit(texts, labels, vectors=vec)
    assert "splendid" not in plain.vocab_
    clf = TextClassifier(small_config(**{"train.epochs": 3, "vocab.unseen_vector_words": "true"})).fit(
        texts, labels, vectors=vec)
    assert clf.vocab_.itos[-3:] == ["splendid", "dreadful", "zesty"]  # after the training words, file order
    assert clf.vocab_.itos[:len(plain.vocab_)] == plain.vocab_.itos
    for i, w in enumerate(words):
        if w in ("splendid", "dreadful", "zesty"):  # never in a batch: still exactly the file's vector
            line = vec.read_text().splitlines()[i].split()[1:]
            assert np.array_equal(clf.model_.embedding.weight[clf.vocab_[w]].detach().numpy(),
                                  np.array(line, dtype=np.float32))
    assert clf.encode(["a splendid film"]).ids[0][1] == clf.vocab_["splendid"] != 1  # not <unk>
    # kept with the model
    clf.save(tmp_path / "m")
    assert TextClassifier.load(tmp_path / "m").vocab_.itos == clf.vocab_.itos


def test_unseen_vector_words_respect_max_size(tmp_path):
    vec = tmp_path / "v.txt"
    vec.write_text("".join(f"w{i} " + " ".join(["0.5"] * 8) + "\n" for i in range(50)))
    cfg = small_config(**{"train.epochs": 1, "vocab.unseen_vector_words": "true", "vocab.max_size": 30})
    clf = TextClassifier(cfg).fit(POS + NEG, ["p"] * 6 + ["n"] * 6, vectors=vec)
    assert len(clf.vocab_) == 32  # <pad>, <unk> and 30 words, the training words first
    assert "great" in clf.vocab_
    added = [w for w in clf.vocab_.itos if w.startswith("w") and w[1:].isdigit()]
    assert added == [f"w{i}" for i in range(len(added))]  # the file's first (most frequent) words


def test_case_fallback_reads_unseen_capitalised_words_lowercased(tmp_path):
    """A model that keeps case with lowercase vectors: "Splendid", never seen, is read as
    "splendid" (an unseen vector word) instead of <unk>, and the setting stays with the model."""
    vec = tmp_path / "v.txt"
    vec.write_text("".join(f"{w} " + " ".join(["0.5"] * 8) + "\n" for w in ["great", "splendid"]))
    texts, labels = POS + NEG, ["p"] * 6 + ["n"] * 6
    settings = {"train.epochs": 1, "tokenizer.lower": "false", "vocab.unseen_vector_words": "true"}
    plain = TextClassifier(small_config(**settings)).fit(texts, labels, vectors=vec)
    assert plain.encode(["Splendid"]).ids[0].tolist() == [1]
    clf = TextClassifier(small_config(**settings, **{"vocab.case_fallback": "true"})).fit(texts, labels, vectors=vec)
    ids = clf.encode(["Splendid film", "Zzz"]).ids
    assert ids[0].tolist() == [clf.vocab_["splendid"], clf.vocab_["film"]] and ids[1].tolist() == [1]
    clf.save(tmp_path / "m")
    loaded = TextClassifier.load(tmp_path / "m")
    assert loaded.encode(["Splendid"]).ids[0].tolist() == [clf.vocab_["splendid"]]


def test_case_fallback_applies_to_the_training_data_too():
    """"Great" seen once (below vocab.min_freq) is trained as "great", not as <unk>."""
    tokens = [["great", "film"], ["great", "plot"], ["Great", "film"], ["bad", "film"]]
    for fallback, expected in [("false", 1), ("true", None)]:
        clf = TextClassifier(small_config(**{"tokenizer.lower": "false", "vocab.min_freq": 2,
                                             "vocab.case_fallback": fallback}))
        start = prepare_training(clf.config, tokens, ["p", "p", "p", "n"], ["n", "p"])
        vocab, data = start.vocab, start.train_data
        assert vocab.case_fallback is (fallback == "true")
        assert data.ids[2].tolist()[0] == (expected or vocab["great"])
