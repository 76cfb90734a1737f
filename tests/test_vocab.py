import pytest

from textlstm.data.vocab import PAD_ID, UNK_ID, Vocab
from textlstm.errors import ModelFileError


def test_build_orders_by_frequency_then_alphabet_with_specials_first():
    v = Vocab.build([["b", "a", "c", "a"], ["b", "d"]])
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert v["<pad>"] == PAD_ID and v["zzz"] == UNK_ID
    assert v.lookup_indices(["a", "zzz"]) == [2, UNK_ID]
    assert v.lookup_tokens([2, 3]) == ["a", "b"] and len(v) == 6 and "a" in v


def test_min_freq_max_size_and_extra_words():
    streams = [["a", "a", "b", "b", "c", "d"]]
    assert Vocab.build(streams, min_freq=2).itos[2:] == ["a", "b"]
    assert Vocab.build(streams, min_freq=2, extra_words={"d"}).itos[2:] == ["a", "b", "d"]
    assert Vocab.build(streams, max_size=1).itos[2:] == ["a"]


def test_save_load_round_trip(tmp_path):
    v = Vocab.build([["x", "ÿ", "naïve", "'s", "<br>"]])
    v.save(tmp_path / "vocab.txt")
    assert Vocab.load(tmp_path / "vocab.txt") == v


def test_corrupt_vocab_file_is_a_clear_error(tmp_path):
    (tmp_path / "v.txt").write_text("hello\nworld\n")
    with pytest.raises(ModelFileError, match="corrupt"):
        Vocab.load(tmp_path / "v.txt")
    with pytest.raises(ModelFileError, match="Cannot read"):
        Vocab.load(tmp_path / "missing.txt")
