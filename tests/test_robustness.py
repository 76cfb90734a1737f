"""Hostile text never crashes training or prediction: texts that are empty once cleaned, texts of
a few million characters, and texts full of control, zero-width, bidi or invalid (lone
surrogate) characters. Predictions are finite probability rows summing to 1 whatever the batch
size."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import TRAIN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textlstm import TextClassifier
from textlstm.config import make_config

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# characters the cleaner has to deal with: controls, zero-width and bidi marks, BOM, soft
# hyphen, lone surrogates, odd whitespace, combining marks, HTML
STRANGE = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f", "\t", "\r", "\n", "\x0b", "\x0c",
           "\u200b", "\u200c", "\u200d", "\u200e", "\u202e", "\u2066", "\u2060", "\ufeff",
           "\u00ad", "\ud800", "\udfff", "\udc80", "\u2028", "\u3000", "\u00a0", "\u0301",
           "\ufffd", "\U0001f600", "<br />", "<p>", "&amp;", "&nbsp;", "&#0;", "&#xd800;", " "]
# what is left of these once cleaned is nothing at all
VANISHING = ["", " ", "\t", "\n", "\r\n", "\x00", "\x1f", "\u200b", "\ufeff", "\u00ad", "\ud800",
             "<br />", "<p class=x>", "</i>", "&nbsp;", "\u2028", "\u3000", "\x85"]

strange_texts = st.lists(st.one_of(st.sampled_from(STRANGE), st.characters(codec=None)),
                         max_size=60).map("".join)
vanishing_texts = st.lists(st.sampled_from(VANISHING), max_size=12).map("".join)
# a few million characters that clean or split to a few tokens. Millions of tokens are not
# tried: a 600,000-token text takes ~20 s through even this tiny network (and, batched with
# short texts, is padded alongside them); `long_texts` has up to 5,000.
enormous_texts = st.builds(lambda unit, n: unit * n,
                           st.sampled_from([" ", "x", "\x00", "\u200b", "<br />", "\ud800", "é",
                                            "great", "\r\n", "x\u200b"]),
                           st.integers(1_000_000, 3_000_000))
long_texts = st.builds(lambda word, n: (word + " ") * n,
                       st.sampled_from(["great", "awful", "zzz", "\x00x"]), st.integers(500, 5000))
hostile_texts = st.one_of(strange_texts, vanishing_texts, long_texts)


@pytest.fixture(scope="module")
def clf():
    return TextClassifier(tiny_config()).fit(TRAIN, ["pos"] * 3 + ["neg"] * 3)


def tiny_config(epochs=2):
    return make_config(overrides=[
        "model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8",
        f"train.epochs={epochs}", "train.batch_size=4", "train.threads=1", "data.val_split=0",
        'tokenizer.kind="regex"'])


def check_proba(clf, texts):
    p1 = clf.predict_proba(texts, batch_size=1)
    p64 = clf.predict_proba(texts, batch_size=64)
    for p in (p1, p64):
        assert p.shape == (len(texts), len(clf.classes_))
        assert np.isfinite(p).all() and (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p1, p64, atol=1e-5)


@SETTINGS
@given(texts=st.lists(hostile_texts, min_size=1, max_size=8))
def test_prediction_of_hostile_texts_is_finite_and_normalised(clf, texts):
    check_proba(clf, texts + ["a great film"])


@settings(SETTINGS, max_examples=6)
@given(text=enormous_texts)
def test_prediction_of_enormous_texts(clf, text):
    check_proba(clf, [text, "awful", ""])


@SETTINGS
@given(extra=st.lists(st.one_of(strange_texts, vanishing_texts), min_size=1, max_size=6),
       labels=st.lists(st.sampled_from(["pos", "neg"]), min_size=6, max_size=6))
def test_training_on_hostile_texts_then_save_and_load(extra, labels):
    labels = labels[:len(extra)]
    clf = TextClassifier(tiny_config(epochs=1)).fit(TRAIN + extra, ["pos"] * 3 + ["neg"] * 3 + labels)
    check_proba(clf, extra + ["a great film"])
    with tempfile.TemporaryDirectory() as tmp:  # the vocabulary file holds one token per line
        loaded = TextClassifier.load(clf.save(Path(tmp) / "m"))
    assert loaded.vocab_.itos == clf.vocab_.itos
    np.testing.assert_array_equal(loaded.predict_proba(extra), clf.predict_proba(extra))


def test_training_with_enormous_and_vanishing_texts():
    big = ["x" * 3_000_000, "\u200b" * 2_000_000, "<br />" * 500_000, "great " * 5_000]
    clf = TextClassifier(tiny_config(epochs=1)).fit(TRAIN + big, ["pos"] * 3 + ["neg"] * 5 + ["pos"] * 2)
    check_proba(clf, big)
