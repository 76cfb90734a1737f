import json
import logging
import os

import numpy as np
import pytest

from textlstm.config import DataConfig, TokenizerConfig
from textlstm.data.tokencache import Corpus, cache_dir_default, clear_cache, content_hash, load_corpus
from textlstm.data.tokenize import Tokenizer
from textlstm.errors import DataError

ROWS = [("A <b>great</b> film.<br />Loved it!", "pos"), ("Dull, DULL, dull.", "neg"),
        ("It wasn't bad", "pos"), ("", "neg"), ("Meh &amp; more meh", "neg")]


def write_csv(path, rows=ROWS, header=("review", "sentiment")):
    lines = [",".join(header)] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_file(tmp_path):
    return write_csv(tmp_path / "train.csv")


@pytest.fixture
def tok():
    return Tokenizer(TokenizerConfig(kind="regex"))


def entries(root=None):
    root = root or cache_dir_default()
    return sorted(p for p in root.iterdir() if p.name.startswith("corpus-")) if root.is_dir() else []


def forbid_tokenizing(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the tokenizer ran on a cache hit")
    monkeypatch.setattr(Tokenizer, "pipe", boom)
    monkeypatch.setattr(Tokenizer, "tokenize", boom)


def test_cache_miss_then_hit(data_file, tok, monkeypatch):
    first = load_corpus(data_file, DataConfig(), tok)
    assert not first.from_cache
    assert first.tokens[0] == ["a", "great", "film", ".", "loved", "it", "!"]
    assert first.labels == ["pos", "neg", "pos", "neg"]  # the empty text is skipped
    assert first.report.skipped == {"empty text": 1}
    assert len(entries()) == 1

    forbid_tokenizing(monkeypatch)
    second = load_corpus(data_file, DataConfig(), tok)
    assert second.from_cache
    assert second.tokens == first.tokens
    assert second.labels == first.labels
    assert second.report == first.report
    assert second.report.summary() == first.report.summary()


def test_a_copy_elsewhere_hits_and_reports_its_own_path(data_file, tok, tmp_path, monkeypatch):
    load_corpus(data_file, DataConfig(), tok)
    copy = tmp_path / "other" / "train.csv"
    copy.parent.mkdir()
    copy.write_bytes(data_file.read_bytes())
    forbid_tokenizing(monkeypatch)
    corpus = load_corpus(copy, DataConfig(), tok)
    assert corpus.from_cache
    assert corpus.report.path == str(copy)
    assert corpus.report.examples_of_skips[0][0] == str(copy)


def test_changes_miss_the_cache(data_file, tok):
    base = load_corpus(data_file, DataConfig(), tok)
    assert load_corpus(data_file, DataConfig(), tok).from_cache

    upper = Tokenizer(TokenizerConfig(kind="regex", lower=False))
    assert not load_corpus(data_file, DataConfig(), upper).from_cache  # tokenizer settings

    named = load_corpus(data_file, DataConfig(text_field="review"), tok)  # reader settings
    assert not named.from_cache and named.tokens == base.tokens

    assert not load_corpus(data_file, DataConfig(), tok, labelled=False).from_cache

    write_csv(data_file, ROWS + [("One more", "pos")])  # content
    changed = load_corpus(data_file, DataConfig(), tok)
    assert not changed.from_cache and len(changed.tokens) == len(base.tokens) + 1
    assert len(entries()) == 5


def test_use_cache_false_neither_reads_nor_writes(data_file, tok):
    assert not load_corpus(data_file, DataConfig(), tok, use_cache=False).from_cache
    assert entries() == []


def test_explicit_cache_dir(data_file, tok, tmp_path):
    root = tmp_path / "my-cache"
    load_corpus(data_file, DataConfig(), tok, cache_dir=root)
    assert load_corpus(data_file, DataConfig(), tok, cache_dir=root).from_cache
    assert len(entries(root)) == 1 and entries() == []


@pytest.mark.parametrize("damage", ["marker", "ids", "offsets", "tokens", "labels", "report", "meta", "empty"])
def test_a_broken_cache_entry_is_ignored_and_rebuilt(data_file, tok, caplog, damage):
    first = load_corpus(data_file, DataConfig(), tok)
    [entry] = entries()
    if damage == "marker":
        (entry / "COMPLETE").unlink()
    elif damage == "ids":
        (entry / "ids.npy").write_bytes(b"\x93NUMPY garbage")
    elif damage == "offsets":
        np.save(entry / "offsets.npy", np.array([0, 99], dtype=np.int64))
    elif damage == "tokens":
        (entry / "tokens.json").write_text("[1, 2", encoding="utf-8")
    elif damage == "labels":
        (entry / "labels.json").write_text('["pos"]', encoding="utf-8")
    elif damage == "report":
        (entry / "report.json").unlink()
    elif damage == "meta":
        (entry / "meta.json").write_text('{"cache_version": -1}', encoding="utf-8")
    else:
        for f in entry.iterdir():
            f.unlink()
    with caplog.at_level(logging.WARNING, logger="textlstm.data.tokencache"):
        again = load_corpus(data_file, DataConfig(), tok)
    assert not again.from_cache
    assert (again.tokens, again.labels) == (first.tokens, first.labels)
    assert "ignoring the unusable tokenization cache" in caplog.text
    third = load_corpus(data_file, DataConfig(), tok)
    assert third.from_cache and third.tokens == first.tokens
    assert len(entries()) == 1


def test_leftovers_of_a_killed_writer_are_never_read(data_file, tok):
    load_corpus(data_file, DataConfig(), tok)
    [entry] = entries()
    dead = entry.with_name(f".{entry.name}.tmp-999999999-abcd1234")  # no such process
    dead.mkdir()
    (dead / "ids.npy").write_bytes(b"half")
    for f in entry.iterdir():
        f.unlink()
    entry.rmdir()
    corpus = load_corpus(data_file, DataConfig(), tok)
    assert not corpus.from_cache
    assert not dead.exists()  # cleaned when the new entry was written
    assert load_corpus(data_file, DataConfig(), tok).from_cache


def test_cache_holds_no_pickles(data_file, tok):
    load_corpus(data_file, DataConfig(), tok)
    [entry] = entries()
    names = sorted(p.name for p in entry.iterdir())
    assert names == ["COMPLETE", "ids.npy", "labels.json", "meta.json", "offsets.npy", "report.json",
                     "tokens.json"]
    ids = np.load(entry / "ids.npy", allow_pickle=False)
    offsets = np.load(entry / "offsets.npy", allow_pickle=False)
    vocab = json.loads((entry / "tokens.json").read_text(encoding="utf-8"))
    assert ids.dtype == np.int32 and offsets.dtype == np.int64
    assert [vocab[i] for i in ids[offsets[0]:offsets[1]]] == ["a", "great", "film", ".", "loved", "it", "!"]
    for path in entry.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"


def test_folder_per_class(tmp_path, tok, monkeypatch):
    root = tmp_path / "data"
    for label, texts in {"pos": ["Good film", "Great"], "neg": ["Bad"]}.items():
        (root / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(root, DataConfig(), tok)
    assert sorted(zip(corpus.labels, map(tuple, corpus.tokens))) == [
        ("neg", ("bad",)), ("pos", ("good", "film")), ("pos", ("great",))]
    before = content_hash(root)
    (root / "neg" / "0.txt").write_text("Awful", encoding="utf-8")
    assert content_hash(root) != before
    assert not load_corpus(root, DataConfig(), tok).from_cache
    assert load_corpus(root, DataConfig(), tok).from_cache


def test_content_hash_streams_and_is_fast(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 30)
    import time
    start = time.perf_counter()
    digest = content_hash(big)
    assert time.perf_counter() - start < 1.0
    assert digest == content_hash(big) and len(digest) == 40


def test_read_errors_pass_through(tmp_path, tok):
    with pytest.raises(DataError):
        load_corpus(tmp_path / "missing.csv", DataConfig(), tok)
    assert entries() == []


def test_clear_cache(data_file, tok, tmp_path):
    load_corpus(data_file, DataConfig(), tok)
    other = cache_dir_default() / "not-ours.txt"
    other.write_text("keep me")
    freed = clear_cache()
    assert freed > 0 and entries() == []
    assert other.exists()
    assert clear_cache(tmp_path / "nowhere") == 0


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTLSTM_CACHE", str(tmp_path / "a"))
    assert cache_dir_default() == tmp_path / "a"
    monkeypatch.delenv("TEXTLSTM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir_default() == tmp_path / "xdg" / "textlstm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir_default() == tmp_path / "home" / ".cache" / "textlstm"


def test_unwritable_cache_only_warns(data_file, tok, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="textlstm.data.tokencache"):
        corpus = load_corpus(data_file, DataConfig(), tok, cache_dir=blocker / "cache")
    assert isinstance(corpus, Corpus) and corpus.tokens
    assert "could not cache" in caplog.text


def test_spacy_tokens_round_trip(data_file):
    tok = Tokenizer(TokenizerConfig(kind="spacy", max_tokens=5, truncation="head+tail"))
    first = load_corpus(data_file, DataConfig(), tok)
    second = load_corpus(data_file, DataConfig(), tok)
    assert second.from_cache and second.tokens == first.tokens
    assert all(len(t) <= 5 for t in first.tokens)
    assert second.report.n_kept == 4


def test_a_concurrent_writer_that_finishes_first_wins(data_file, tok, monkeypatch):
    """Another process writes the same entry while this one tokenizes: its entry is kept."""
    original = Tokenizer.pipe

    def pipe_while_another_writes(self, texts, **kwargs):
        monkeypatch.setattr(Tokenizer, "pipe", original)
        other = load_corpus(data_file, DataConfig(), self)  # the "other process"
        assert not other.from_cache
        return original(self, texts, **kwargs)

    monkeypatch.setattr(Tokenizer, "pipe", pipe_while_another_writes)
    mine = load_corpus(data_file, DataConfig(), tok)
    assert not mine.from_cache
    [entry] = entries()
    assert not [p for p in entry.parent.iterdir() if ".tmp-" in p.name]
    again = load_corpus(data_file, DataConfig(), tok)
    assert again.from_cache and again.tokens == mine.tokens
