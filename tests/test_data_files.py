"""Whole-file oddities the readers meet: lone-\\r line ends, repeated column or key names, and
files with no records at all."""
import gzip
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textlstm.data import ReadReport, read_dataset, read_examples, read_texts
from textlstm.errors import DataError


def write(path, text):
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def rows(examples):
    return [(e.text, e.label, e.line) for e in examples]


# -- lone \r line ends (classic Mac OS, old spreadsheet exports) ------------------------------

CR_FILES = {
    "d.tsv": "sentence\tlabel\rgood\t1\rbad\t0\r",
    "d.csv": "text,label\rgood,1\rbad,0\r",
    "d.jsonl": '{"text": "good", "label": 1}\r\r{"text": "bad", "label": 0}\r',
    "d.ft": "__label__1 good\r__label__0 bad",
}
CR_LINES = {"d.tsv": [2, 3], "d.csv": [2, 3], "d.jsonl": [1, 3], "d.ft": [1, 2]}


@pytest.mark.parametrize("gz", ["", ".gz"])
@pytest.mark.parametrize("name", list(CR_FILES))
def test_cr_only_line_ends_are_line_ends(tmp_path, name, gz):
    p = write(tmp_path / (name + gz), CR_FILES[name])
    examples, rep = read_dataset(p)
    assert rows(examples) == [("good", "1", CR_LINES[name][0]), ("bad", "0", CR_LINES[name][1])]
    assert rep.n_records == 2


@pytest.mark.parametrize("name", ["d.txt", "d.txt.gz"])
def test_cr_only_plain_text(tmp_path, name):
    p = write(tmp_path / name, "one doc\rtwo doc\r\rthree")
    assert [(e.text, e.line) for e in read_texts(p)] == [("one doc", 1), ("two doc", 2), ("three", 4)]


def test_cr_only_csv_keeps_a_quoted_line_break(tmp_path):
    p = write(tmp_path / "d.csv", 'text,label\r"good\rfun",pos\rbad,neg\r')
    assert rows(read_examples(p)) == [("good\rfun", "pos", 2), ("bad", "neg", 4)]


def test_cr_only_bad_line_names_its_line(tmp_path):
    p = write(tmp_path / "d.tsv", "sentence\tlabel\rgood\t1\rtoo\tmany\tfields\r")
    with pytest.raises(DataError, match=r"d\.tsv:3: wrong number of fields"):
        list(read_examples(p))


def test_cr_lines_across_read_blocks(tmp_path):
    # 64 KiB blocks: a \r ends one and its \n starts the next; a later line spans several blocks
    head = "a" * 99 + "\r"
    body = head * 655 + "b" * 35 + "\r\n" + "c\r" + "d" * 200_000 + "\r" + "e"
    assert body.index("\r\n") == 65535
    p = write(tmp_path / "d.txt", body)
    got = [(e.text[:1], len(e.text), e.line) for e in read_texts(p)]
    assert got[-4:] == [("b", 35, 656), ("c", 1, 657), ("d", 200_000, 658), ("e", 1, 659)]
    assert len(got) == 659


def test_crlf_and_lf_files_are_unchanged(tmp_path):
    crlf = write(tmp_path / "a.tsv", "sentence\tlabel\r\ngood\t1\r\nbad\t0")
    assert rows(read_examples(crlf)) == [("good", "1", 2), ("bad", "0", 3)]
    quoted = write(tmp_path / "b.csv", 'text,label\n"a\rb",pos\n"c\r\nd",neg\ne,pos\n')
    assert rows(read_examples(quoted)) == [("a\rb", "pos", 2), ("c\r\nd", "neg", 3), ("e", "pos", 5)]


def test_last_line_ending_in_lone_cr_loses_it(tmp_path):
    p = write(tmp_path / "d.tsv", "sentence\tlabel\ngood\t1\nbad\t0\r")
    assert rows(read_examples(p))[-1] == ("bad", "0", 3)


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
plain = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\t\r\n\x0b\x0c\x1c"
                              "\x1d\x1e\x85\u2028\u2029"), max_size=30)


@SETTINGS
@given(items=st.lists(st.tuples(plain, plain), max_size=6))
def test_cr_and_lf_files_read_alike(tmp_path, items):
    body = "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in items)
    lf = write(tmp_path / "lf.tsv", body)
    cr = write(tmp_path / "cr.tsv", body.replace("\n", "\r"))
    assert rows(read_examples(cr, on_bad_lines="skip")) == rows(read_examples(lf, on_bad_lines="skip"))


# -- repeated names -----------------------------------------------------------------------------

def test_repeated_label_column_is_an_error(tmp_path):
    p = write(tmp_path / "d.csv", "text,label,label\nx,a,b\n")
    with pytest.raises(DataError) as err:
        list(read_examples(p))
    assert str(err.value) == (f"{p}:1: columns 2 and 3 of the header are both named 'label', so the "
                              "label column is ambiguous. Rename one of them, or choose another "
                              "column with --label-field.")


def test_repeated_text_column_up_to_case_and_spaces(tmp_path):
    p = write(tmp_path / "d.tsv", "\nText\tlabel\ttext \nx\ta\tb\n")
    with pytest.raises(DataError, match=r"d\.tsv:2: columns 1 and 3 of the header \('Text', 'text '\) "
                                        r"both match 'text'.*--text-field with the exact name"):
        list(read_examples(p))
    assert rows(read_examples(p, text_field="Text")) == [("x", "a", 3)]


def test_repeated_explicit_column(tmp_path):
    p = write(tmp_path / "d.csv", "review,review,label\nx,y,a\n")
    with pytest.raises(DataError, match=r"d\.csv:1: columns 1 and 2 .*'review'.*--text-field"):
        list(read_examples(p, text_field="review"))


def test_repeated_unused_columns_are_allowed(tmp_path):
    p = write(tmp_path / "d.csv", ",text,,label,id,id\n,x,,a,1,2\n")
    assert rows(read_examples(p)) == [("x", "a", 2)]


def test_jsonl_repeated_label_key_is_a_bad_line(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "ok", "label": "a"}\n'
              '{"text": "x", "label": "a", "label": "b"}\n{"text": "y", "text": "z", "label": "a"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: repeated field \('label' appears 2 times"):
        list(read_examples(p))
    report = ReadReport()
    assert rows(read_examples(p, on_bad_lines="skip", report=report)) == [("ok", "a", 1)]
    assert report.skipped == {"repeated field": 2}
    errors = [e.error for e in read_examples(p, on_bad_lines="report")]
    assert errors[1:] == ["repeated field ('label' appears 2 times; keep one)",
                          "repeated field ('text' appears 2 times; keep one)"]


def test_jsonl_repeated_keys_when_unlabelled_and_elsewhere(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "x", "label": "a", "label": "b", "id": 1, "id": 2}\n'
              '{"text": "y", "meta": {"k": 1, "k": 2}, "label": "c"}\n')
    assert rows(read_texts(p)) == [("x", None, 1), ("y", "c", 2)]  # labels are optional here
    with pytest.raises(DataError, match=r"d\.jsonl:1: repeated field"):
        list(read_examples(p))


def test_jsonl_keys_differing_in_case_are_ambiguous(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "Text": "b", "label": "x"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: fields 1 and 2 .*\('text', 'Text'\) both match"):
        list(read_examples(p))
    assert rows(read_examples(p, text_field="Text")) == [("b", "x", 1)]


# -- files without records ----------------------------------------------------------------------

@pytest.mark.parametrize("name,body,reason", [
    ("d.csv", "", "the file is empty"),
    ("d.jsonl.gz", "", "the file is empty"),
    ("d.tsv", "sentence\tlabel\n", "the file has only a header row"),
    ("d.csv", "\ntext,label\r\n\r\n", "the file has only a header row"),
    ("d.tsv", "\n  \n\t\n", "every line is blank"),
    ("d.jsonl", "\n \r\n", "every line is blank"),
    ("d.ft", "\n\n", "every line is blank"),
])
def test_files_without_records_say_why(tmp_path, caplog, name, body, reason):
    p = write(tmp_path / name, body)
    with caplog.at_level(logging.WARNING, logger="textlstm.data"):
        examples, rep = read_dataset(p)
    assert [r.getMessage() for r in caplog.records] == [rep.summary()]
    assert examples == [] and rep.empty_reason() == reason
    fields = " (text='sentence', label='label')" if "sentence" in body else (
        " (text='text', label='label')" if "text" in body else "")
    assert rep.summary() == f"read 0 examples from {p}{fields}: {reason}"


def test_empty_reason_is_none_once_a_record_was_read(tmp_path):
    p = write(tmp_path / "d.tsv", "text\tlabel\n\ta\n")
    examples, rep = read_dataset(p)
    assert examples == [] and rep.empty_reason() is None
    assert rep.summary().startswith(f"read 0 examples from {p} (text='text', label='label'); skipped 1")
    q = write(tmp_path / "e.tsv", "text\tlabel\nx\ta\n")
    assert read_dataset(q)[1].empty_reason() is None
