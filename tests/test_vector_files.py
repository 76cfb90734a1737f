"""Damaged vectors files: each fails fast, with one line naming the file (and the line), and
without the allocations their headers ask for."""
from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors
from gensim.models.fasttext import save_facebook_model
from helpers import TEXTS

from textlstm.data.vocab import Vocab
from textlstm.embeddings import load_vectors, read_vector_words
from textlstm.errors import VectorsError

WORDS = ["the", "cat", "sat", "on", "mat", "dog"]
SENTENCES = [t.lower().replace(",", "").split() for t in TEXTS] * 3  # ~40 distinct words
VOCAB_AT = 64  # fastText .bin: magic, version, 12 int32 + 1 double of arguments, then vocabulary

# Loads every path given and prints one line per path. Damaged fastText files used to make
# gensim loop forever, so the tests that could hang load in a child with a timeout.
CHILD = """
import logging, sys
from textlstm.data.vocab import Vocab
from textlstm.embeddings import load_vectors
from textlstm.errors import VectorsError
logging.disable(logging.CRITICAL)  # gensim logs an error per bad word: millions of lines
for path in sys.argv[1:]:
    try:
        load_vectors(path, Vocab(["<pad>", "<unk>", "film"]), format="fasttext-bin")
        print("loaded")
    except VectorsError as exc:
        print("VectorsError:", exc)
"""


def make_vocab(words) -> Vocab:
    return Vocab(["<pad>", "<unk>", *words])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load_in_child(paths: list[Path], timeout: float = 60) -> list[str]:
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading took over {timeout:.0f} s: gensim looping on a damaged file?")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == len(paths)  # one line per file: messages are single lines
    return lines


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    except VectorsError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.fixture
def w2v_bin(tmp_path) -> bytes:
    """The bytes of a valid 6 x 8 word2vec binary file."""
    keyed = KeyedVectors(8)
    keyed.add_vectors(WORDS, np.random.default_rng(3).normal(0, 0.5, (6, 8)).astype(np.float32))
    keyed.save_word2vec_format(str(tmp_path / "valid.bin"), binary=True)
    return (tmp_path / "valid.bin").read_bytes()


@pytest.fixture(scope="module")
def fasttext_bin(tmp_path_factory) -> bytes:
    """The bytes of a valid fastText .bin (8 dimensions, 100 buckets, ~40 words)."""
    model = FastText(vector_size=8, min_count=1, epochs=1, bucket=100, seed=1, workers=1)
    model.build_vocab(SENTENCES)
    model.train(SENTENCES, total_examples=len(SENTENCES), epochs=1)
    path = tmp_path_factory.mktemp("fasttext") / "tiny.bin"
    save_facebook_model(model, str(path))
    return path.read_bytes()


def words_in(fasttext: bytes) -> int:
    return struct.unpack_from("=i", fasttext, VOCAB_AT + 4)[0]


def vocabulary_end(fasttext: bytes) -> int:
    """Where the quantized flag follows the vocabulary (the pruned index is empty)."""
    rows_cols = struct.pack("=2q", words_in(fasttext) + 100, 8)  # nwords + bucket, dim
    return fasttext.index(rows_cols) - 1


def patched(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


# ------------------------------------------------------------------------ word2vec binary


@pytest.mark.parametrize("count, size", [(10**12, "400 TB"), (200_000_000, "80 GB")])
def test_word2vec_bin_header_announcing_more_than_the_file_holds(tmp_path, w2v_bin, count, size):
    body = w2v_bin[w2v_bin.index(b"\n") + 1:]
    path = tmp_path / "vectors.bin"
    path.write_bytes((f"{count} 100\n".encode() + body).ljust(1024, b"\0"))
    message = (f"{path}: the header announces {count:,} vectors of 100 dimensions ({size}) but "
               "the file has 1,024 bytes; truncated or not a word2vec binary file.")
    for read in (lambda: load_vectors(path, make_vocab(["cat"])), lambda: read_vector_words(path)):
        with pytest.raises(VectorsError) as err:
            read()
        assert str(err.value) == message
        assert peak_bytes(read) < 20e6


def test_word2vec_bin_gz_header_is_bounded_by_the_gzip_ratio(tmp_path, w2v_bin):
    good = tmp_path / "good.bin.gz"
    good.write_bytes(gzip.compress(w2v_bin))
    assert load_vectors(good, make_vocab(["cat"])).found[2]
    body = w2v_bin[w2v_bin.index(b"\n") + 1:]
    bad = tmp_path / "bad.bin.gz"
    bad.write_bytes(gzip.compress(b"200000000 100\n" + body))
    with pytest.raises(VectorsError, match=r"bad\.bin\.gz: .* 200,000,000 vectors .* compressed "
                                           r"bytes \(at most .* uncompressed\)"):
        load_vectors(bad, make_vocab(["cat"]))
    assert peak_bytes(lambda: load_vectors(bad, make_vocab(["cat"]))) < 20e6


@pytest.mark.parametrize("header", [b"0 8\n", b"6 0\n", b"6 200000\n", b"6 -8\n", b"6 8 3\n",
                                    b"\x80\x81garbage"])
def test_word2vec_bin_bad_header(tmp_path, w2v_bin, header):
    path = tmp_path / "vectors.bin"
    path.write_bytes(header + w2v_bin[w2v_bin.index(b"\n") + 1:])
    with pytest.raises(VectorsError, match=re.escape(f"{path}: ")) as err:
        load_vectors(path, make_vocab(["cat"]), format="word2vec-bin")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------ fastText binary


def test_fasttext_bin_truncated_anywhere_fails_fast(tmp_path, fasttext_bin):
    n, end = words_in(fasttext_bin), vocabulary_end(fasttext_bin)
    cuts = [200, end - 10, end - 5]  # in the words, at the last NUL, in the last count
    paths = []
    for cut in [*cuts, *range(0, len(fasttext_bin), 7)]:
        paths.append(tmp_path / f"cut{len(paths)}.bin")
        paths[-1].write_bytes(fasttext_bin[:cut])
    lines = load_in_child(paths)
    assert lines[0] == (f"VectorsError: {paths[0]}: the vocabulary announces {n} words (at least "
                        f"{10 * n} bytes) but at most {200 - VOCAB_AT - 28} bytes follow; "
                        "truncated or corrupt.")
    for path, line in zip(paths[1:3], lines[1:3]):
        assert line == (f"VectorsError: {path}: truncated inside its vocabulary (entry {n} of "
                        f"{n}); re-download or re-save the file.")
    bad = [line for p, line in zip(paths, lines) if not line.startswith(f"VectorsError: {p}: ")]
    assert not bad


def test_fasttext_bin_huge_vocabulary_count(tmp_path, fasttext_bin):
    both = tmp_path / "both.bin"  # entries and words both 2**31 - 1: fits no file this size
    both.write_bytes(patched(fasttext_bin, VOCAB_AT, "=2i", 2**31 - 1, 2**31 - 1))
    size_only = tmp_path / "size.bin"  # entries disagree with words + labels
    size_only.write_bytes(patched(fasttext_bin, VOCAB_AT, "=i", 2**31 - 1))
    rest = (len(fasttext_bin) - VOCAB_AT - 28) / 1000
    assert load_in_child([both, size_only], timeout=60) == [
        f"VectorsError: {both}: the vocabulary announces 2,147,483,647 words (at least 21.5 GB) "
        f"but at most {rest:.3g} kB follow; truncated or corrupt.",
        f"VectorsError: {size_only}: the vocabulary announces 2,147,483,647 entries, "
        f"{words_in(fasttext_bin)} words and -1 pruned ids; corrupt or not a fastText .bin file."]


@pytest.mark.parametrize("offset, fmt, value, message", [
    (8, "=i", 0, "announces 0 dimensions"),  # dim
    (40, "=i", -1, "-1 buckets"),  # bucket
    (44, "=i", -1, "subwords of -1..6 characters"),  # minn: gensim raised OverflowError
    (VOCAB_AT + 8, "=i", 2, "a supervised fastText model (2 labels)"),  # gensim: NotImplementedError
])
def test_fasttext_bin_corrupt_header_fields(tmp_path, fasttext_bin, offset, fmt, value, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(patched(fasttext_bin, offset, fmt, value))
    with pytest.raises(VectorsError, match=re.escape(message)) as err:
        load_vectors(path, make_vocab(["film"]), format="fasttext-bin")
    assert str(err.value).startswith(f"{path}: ")


def test_fasttext_bin_quantized_and_truncated_header(tmp_path, fasttext_bin):
    data, quant = fasttext_bin, vocabulary_end(fasttext_bin)
    path = tmp_path / "model.bin"
    path.write_bytes(data[:quant] + b"\x01" + data[quant + 1:])
    with pytest.raises(VectorsError, match="a quantized fastText model"):
        load_vectors(path, make_vocab(["film"]))
    path.write_bytes(data[:30])  # gensim raised struct.error
    with pytest.raises(VectorsError, match=re.escape(f"{path}: truncated inside its header")):
        read_vector_words(path)
    path.write_bytes(data[:quant + 17 + 400])  # 400 bytes into the input matrix's floats
    with pytest.raises(VectorsError, match="truncated inside its vectors"):
        load_vectors(path, make_vocab(["film"]))


# ------------------------------------------------------------------------ text formats


def test_line_with_one_number_too_many(tmp_path):
    path = write(tmp_path / "v.txt", "cat 1 2 3\nfilm 0.1 0.2 0.3 0.4\n")
    message = f"{path}:2: expected a word and 3 numbers, found 4 numbers after 'film'."
    for words in (["film"], ["cat"]):  # whether or not the line is needed
        with pytest.raises(VectorsError) as err:
            load_vectors(path, make_vocab(words))
        assert str(err.value) == message
    with pytest.raises(VectorsError, match=re.escape(message)):
        read_vector_words(path)
    path = write(tmp_path / "w.txt", "2 3\ncat 1 2 3\n0.5 0.1 0.2 0.3 0.4\n")
    with pytest.raises(VectorsError, match=re.escape(f"{path}:3: expected a word and 3 numbers, "
                                                     "found 4 numbers after '0.5'.")):
        read_vector_words(path)


def test_words_with_spaces_may_not_contain_numbers_after_their_first_part(tmp_path):
    path = write(tmp_path / "v.txt", ". . . 0.1 0.2 0.3\n2 pm 1 2 3\nnew york 4 5 6\n")
    assert read_vector_words(path) == [". . .", "2 pm", "new york"]
    matrix = load_vectors(path, make_vocab([". . .", "2 pm"])).matrix
    assert np.array_equal(matrix[2:], np.float32([[0.1, 0.2, 0.3], [1, 2, 3]]))
    path = write(tmp_path / "w.txt", "cat 1 2 3\nroute 66 east 4 5 6\n")
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:2: the word 'route 66 east' contains a number after its first part")):
        read_vector_words(path)


@pytest.mark.parametrize("bad", ["1_0", "1e1_0", "-0.5_5"])
def test_underscores_in_numbers_are_rejected(tmp_path, bad):
    message = f"'{bad}' is not a plain decimal number"
    path = write(tmp_path / "v.txt", f"cat 1 2 3\ndog 1 {bad} 3\n")
    with pytest.raises(VectorsError, match=re.escape(f"{path}:2: {message}")):
        load_vectors(path, make_vocab(["dog"]))
    path = write(tmp_path / "first.txt", f"dog 1 {bad} 3\ncat 1 2 3\n")  # dimension inference
    with pytest.raises(VectorsError, match=re.escape(f"{path}:1: {message}")):
        read_vector_words(path)
    path = write(tmp_path / "w2v.txt", f"2 3\ndog 1 2 {bad}\ncat 1 2 3\n")
    with pytest.raises(VectorsError, match=re.escape(f"{path}:2: {message}")):
        load_vectors(path, make_vocab(["cat"]))
