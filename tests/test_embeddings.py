"""Pretrained vectors: every format written by gensim reads back with gensim's exact values."""
from __future__ import annotations

import gzip
import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors
from gensim.models.fasttext import load_facebook_vectors, save_facebook_model
from hypothesis import given, settings
from hypothesis import strategies as st

from textlstm.data.vocab import Vocab
from textlstm.embeddings import (
    Coverage,
    detect_vectors_format,
    load_vectors,
    read_vector_words,
)
from textlstm.embeddings.word2vec import pretrain_word2vec
from textlstm.errors import VectorsError

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "runs", "fast"]
SENTENCES = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "runs", "fast"],
             ["a", "cat", "and", "a", "dog"], ["the", "mat", "is", "on", "the", "floor"]] * 5


def make_vocab(words) -> Vocab:
    return Vocab(["<pad>", "<unk>", *words])


@pytest.fixture
def kv() -> KeyedVectors:
    rng = np.random.default_rng(3)
    keyed = KeyedVectors(8)
    keyed.add_vectors(WORDS, rng.normal(0, 0.5, (len(WORDS), 8)).astype(np.float32))
    return keyed


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def gensim_text(path: Path, header: bool) -> KeyedVectors:
    return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not header)


def assert_matches(vectors, vocab: Vocab, reference: KeyedVectors, words) -> None:
    for w in words:
        assert vectors.found[vocab[w]], w
        assert np.array_equal(vectors.matrix[vocab[w]], reference[w]), w


# ------------------------------------------------------------------------ formats


@pytest.mark.parametrize("name, header, binary, fmt", [
    ("w2v.txt", True, False, "word2vec"),
    ("glove.txt", False, False, "glove"),
    ("w2v.bin", True, True, "word2vec-bin"),
    ("w2v.txt.gz", True, False, "word2vec"),
    ("glove.txt.gz", False, False, "glove"),
    ("wiki.vec", True, False, "fasttext-vec"),
])
def test_gensim_written_formats_read_back_exactly(tmp_path, kv, name, header, binary, fmt):
    path = tmp_path / name
    kv.save_word2vec_format(str(path), binary=binary, write_header=header)
    assert detect_vectors_format(path) == fmt
    reference = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=not header)
    vocab = make_vocab(WORDS[:5] + ["zebra"])
    vectors = load_vectors(path, vocab)
    assert vectors.matrix.dtype == np.float32 and vectors.matrix.shape == (8, 8)
    assert vectors.dim == 8
    assert_matches(vectors, vocab, reference, WORDS[:5])
    assert not vectors.found[vocab["zebra"]]
    assert read_vector_words(path) == reference.index_to_key  # the file's order


def test_fasttext_bin_gives_subword_vectors(tmp_path):
    model = FastText(vector_size=8, min_count=1, epochs=2, bucket=2000, seed=1, workers=1)
    model.build_vocab(SENTENCES)
    model.train(SENTENCES, total_examples=len(SENTENCES), epochs=2)
    path = tmp_path / "tiny.bin"
    save_facebook_model(model, str(path))
    assert detect_vectors_format(path) == "fasttext-bin"
    reference = load_facebook_vectors(str(path))
    vocab = make_vocab(["cat", "Dog", "cats"])  # exact, lowercase, subwords only
    vectors = load_vectors(path, vocab)
    for w in ["cat", "cats"]:
        assert np.array_equal(vectors.matrix[vocab[w]], reference[w])
    assert np.array_equal(vectors.matrix[vocab["Dog"]], reference["dog"])
    assert vectors.found[2:].all()
    cov = vectors.coverage
    assert (cov.types_covered, cov.lowercase_matches, cov.subword_composed) == (2, 1, 1)
    assert read_vector_words(path) == reference.index_to_key


def test_fast_path_equals_gensim_on_awkward_numbers(tmp_path):
    rng = np.random.default_rng(0)
    lines, words = [], [f"w{i}" for i in range(50)]
    for w in words:
        scale = 10.0 ** rng.integers(-40, 30)  # float32 subnormals to large values
        nums = [f"{x:.{rng.integers(1, 18)}g}" for x in rng.normal(0, 3, 6) * scale]
        lines.append(" ".join([w, *nums]))
    path = write(tmp_path / "awkward.txt", "\n".join(lines) + "\n")
    vocab = make_vocab(words)
    assert_matches(load_vectors(path, vocab), vocab, gensim_text(path, header=False), words)


def test_word2vec_c_style_trailing_space_and_crlf(tmp_path):
    path = write(tmp_path / "c.txt", "2 3\r\nfoo 1 2 3 \r\nbar 4 5 6 \r\n")
    vectors = load_vectors(path, make_vocab(["bar"]))
    assert vectors.matrix[2].tolist() == [4, 5, 6]


# ------------------------------------------------------------------------ matching


def test_lowercase_fallback_and_exact_match_wins_even_later(tmp_path):
    path = write(tmp_path / "v.txt", "paris 1 1\nlondon 2 2\nParis 3 3\nlondon 9 9\n")
    vocab = make_vocab(["Paris", "London", "london", "PARIS", "LONDON"])
    vectors = load_vectors(path, vocab)
    assert vectors.matrix[vocab["Paris"]].tolist() == [3, 3]
    assert vectors.matrix[vocab["PARIS"]].tolist() == [1, 1]
    assert vectors.matrix[vocab["LONDON"]].tolist() == [2, 2]
    assert vectors.matrix[vocab["London"]].tolist() == [2, 2]  # first "london" line
    assert vectors.matrix[vocab["london"]].tolist() == [2, 2]
    assert vectors.coverage.lowercase_matches == 3


def test_words_containing_spaces(tmp_path):
    path = write(tmp_path / "v.txt", "new york 1 2 3\ncat 4 5 6\nsan jose ca 7 8 9\n")
    vectors = load_vectors(path, make_vocab(["new york", "san jose ca", "cat"]))
    assert vectors.matrix[2:].tolist() == [[1, 2, 3], [7, 8, 9], [4, 5, 6]]
    assert read_vector_words(path) == ["new york", "cat", "san jose ca"]


def test_duplicates_keep_first_and_are_logged(tmp_path, caplog):
    path = write(tmp_path / "v.txt", "cat 1 1\ndog 2 2\ncat 3 3\ndog 4 4\n")
    with caplog.at_level(logging.WARNING, logger="textlstm.embeddings"):
        vectors = load_vectors(path, make_vocab(["cat"]))
    assert vectors.matrix[2].tolist() == [1, 1]
    assert len(caplog.records) == 1 and "has 2 duplicate words" in caplog.text


# ------------------------------------------------------------------------ rows without vectors


def test_pad_row_zero_and_oov_init(tmp_path):
    path = write(tmp_path / "v.txt", "<pad> 5 5 5\ncat 1 2 3\ndog -1 0 2\n")
    vocab = make_vocab(["cat", "dog", "zebra", "yak"])
    rand = load_vectors(path, vocab, seed=7)
    assert not rand.matrix[0].any() and not rand.found[0]
    assert rand.found.tolist() == [False, False, True, True, False, False]
    assert np.allclose(rand.matrix[1], [0, 1, 2.5])  # <unk>: mean of the found vectors
    assert np.abs(rand.matrix[4:]).sum() > 0
    assert np.array_equal(rand.matrix, load_vectors(path, vocab, seed=7).matrix)
    assert not np.array_equal(rand.matrix, load_vectors(path, vocab, seed=8).matrix)
    zeros = load_vectors(path, vocab, oov_init="zeros")
    assert not zeros.matrix[[0, 1, 4, 5]].any()
    assert zeros.matrix[2].tolist() == [1, 2, 3]


def test_random_rows_follow_the_spread_of_found_vectors(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(0, [0.1, 2.0], (400, 2))
    path = write(tmp_path / "v.txt", "".join(f"w{i} {a} {b}\n" for i, (a, b) in enumerate(rows)))
    vocab = make_vocab([f"w{i}" for i in range(400)] + [f"x{i}" for i in range(2000)])
    std = load_vectors(path, vocab).matrix[402:].std(axis=0)
    assert np.allclose(std, [0.1, 2.0], rtol=0.15)


# ------------------------------------------------------------------------ coverage


def test_coverage_numbers(tmp_path):
    path = write(tmp_path / "v.txt", "the 1 1\ncat 2 2\nparis 3 3\n")
    vocab = make_vocab(["the", "cat", "Paris", "zorp", "blick"])
    counts = {"the": 50, "cat": 10, "Paris": 5, "zorp": 20, "blick": 15, "notinvocab": 99}
    cov = load_vectors(path, vocab, counts=counts).coverage
    assert (cov.types_covered, cov.types_total) == (3, 5)
    assert (cov.tokens_covered, cov.tokens_total) == (65, 100)
    assert cov.lowercase_matches == 1
    assert cov.top_missing == [("zorp", 20), ("blick", 15)]
    assert cov.type_share == pytest.approx(0.6) and cov.token_share == pytest.approx(0.65)
    assert cov.summary() == ("vectors cover 60.0% of 5 word types and 65.0% of 100 tokens; "
                             "most frequent missing: zorp (20), blick (15)")
    no_counts = load_vectors(path, vocab).coverage
    assert (no_counts.tokens_covered, no_counts.tokens_total) == (3, 5)


def test_coverage_summary_big_numbers():
    cov = Coverage(17_040, 20_000, 1_165_200, 1_200_000, 0, [("foo", 120)])
    assert cov.summary() == ("vectors cover 85.2% of 20,000 word types and 97.1% of 1.2M tokens; "
                             "most frequent missing: foo (120)")


# ------------------------------------------------------------------------ errors


def test_dimension_mismatch_message(tmp_path):
    path = write(tmp_path / "glove.6B.50d.txt", "cat 1 2 3 4\n")
    with pytest.raises(VectorsError) as err:
        load_vectors(path, make_vocab(["cat"]), expected_dim=100)
    assert str(err.value) == ("Vectors in glove.6B.50d.txt have 4 dimensions but the model "
                              "expects 100 (model.embedding_dim).")


def test_too_few_fields_on_any_line(tmp_path):
    path = write(tmp_path / "v.txt", "cat 1 2 3 4\ndog 1 2 3 4\nyak 1 2\n")
    message = f"{path}:3: expected a word and 4 numbers, found 3 fields."
    with pytest.raises(VectorsError, match=re.escape(message)):
        load_vectors(path, make_vocab(["cat"]))


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", "1e999"])
def test_bad_number_on_a_needed_line(tmp_path, bad):
    path = write(tmp_path / "v.txt", f"cat 1 2 3\ndog 1 {bad} 3\n")
    with pytest.raises(VectorsError, match=re.escape(f"{path}:2: ")):
        load_vectors(path, make_vocab(["dog"]))


def test_lines_not_needed_are_not_parsed(tmp_path):
    path = write(tmp_path / "v.txt", "cat 1 2 3\ndog 1 abc 3\n")
    assert load_vectors(path, make_vocab(["cat"])).found[2]


def test_header_count_and_dim_mismatch(tmp_path):
    path = write(tmp_path / "v.txt", "3 2\ncat 1 2\ndog 3 4\n")
    with pytest.raises(VectorsError, match="announces 3 vectors but the file has 2"):
        load_vectors(path, make_vocab(["cat"]))
    path = write(tmp_path / "w.txt", "2 3\ncat 1 2\ndog 3 4\n")
    with pytest.raises(VectorsError, match="announces 3 dimensions but line 2 has 2"):
        load_vectors(path, make_vocab(["cat"]))


def test_truncated_gzip(tmp_path, kv):
    path = tmp_path / "v.txt.gz"
    kv.save_word2vec_format(str(path), binary=False)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(VectorsError, match="truncated or corrupt"):
        load_vectors(path, make_vocab(["cat"]))


def test_missing_file_and_bad_format(tmp_path):
    with pytest.raises(VectorsError, match="does not exist"):
        load_vectors(tmp_path / "nope.txt", make_vocab(["cat"]))
    with pytest.raises(VectorsError, match="Unknown vectors format 'txt'"):
        load_vectors(tmp_path / "nope.txt", make_vocab(["cat"]), format="txt")


def test_word2vec_format_requires_header(tmp_path):
    path = write(tmp_path / "v.txt", "cat 1 2\n")
    with pytest.raises(VectorsError, match="header"):
        load_vectors(path, make_vocab(["cat"]), format="word2vec")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=" ab1.e-\n\tn", max_size=12), max_size=6))
def test_arbitrary_text_raises_only_vectors_error(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.txt"
        path.write_text("\n".join(lines), encoding="utf-8")
        try:
            load_vectors(path, make_vocab(["a", "b", "A"]))
            read_vector_words(path)
        except VectorsError:
            pass


# ------------------------------------------------------------------------ pretraining


def test_pretrain_word2vec_writes_a_readable_file(tmp_path):
    seen = []
    out = pretrain_word2vec(SENTENCES, tmp_path / "own.txt.gz", vector_size=6, min_count=2,
                            epochs=3, workers=1, progress=lambda e, n: seen.append((e, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with gzip.open(out, "rt") as fh:
        assert fh.readline().split()[1] == "6"
    assert [p.name for p in tmp_path.iterdir()] == ["own.txt.gz"]
    vocab = make_vocab(["the", "cat", "unseen"])
    vectors = load_vectors(out, vocab, expected_dim=6)
    assert vectors.found.tolist() == [False, False, True, True, False]
    assert_matches(vectors, vocab, gensim_text(out, header=True), ["the", "cat"])


def test_pretrain_word2vec_rejects_one_shot_iterators_and_empty_vocabularies(tmp_path):
    with pytest.raises(VectorsError, match="re-iterable"):
        pretrain_word2vec((s for s in SENTENCES), tmp_path / "x.txt")
    with pytest.raises(VectorsError, match="min_count"):
        pretrain_word2vec([["a", "b"]], tmp_path / "x.txt", min_count=5)
    assert not list(tmp_path.iterdir())
