import csv
import gzip
import json
import logging

import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textlstm.data import Example, ReadReport, detect_format, label_order, read_dataset, read_examples, read_texts
from textlstm.errors import ConfigError, DataError
from textlstm.config import DataConfig
from textlstm.data.readers import read_data


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def pairs(examples):
    return [(e.text, e.label) for e in examples]


# -- formats ----------------------------------------------------------------------------------

def test_csv_with_quoted_multiline_field(tmp_path):
    p = write(tmp_path / "d.csv", 'text,label\n"good, ""very""\nfun",pos\nbad,neg\n\nok,pos\n')
    examples, rep = read_dataset(p)
    assert pairs(examples) == [('good, "very"\nfun', "pos"), ("bad", "neg"), ("ok", "pos")]
    assert [e.line for e in examples] == [2, 4, 6]
    assert examples[0] == Example('good, "very"\nfun', "pos", 2, str(p))
    assert (rep.n_records, rep.n_kept, rep.format) == (3, 3, "csv")


def test_tsv_stray_quote_never_merges_lines(tmp_path):
    p = write(tmp_path / "d.tsv", 'sentence\tlabel\n"it \'s a mess\t0\nfine "quote\t1\nx\t1\n')
    examples, rep = read_dataset(p)
    assert pairs(examples) == [('"it \'s a mess', "0"), ('fine "quote', "1"), ("x", "1")]
    assert [e.line for e in examples] == [2, 3, 4]
    assert rep.n_records == 3


def test_jsonl_blank_lines_int_labels_and_crlf(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\r\n\r\n{"text": "b", "label": 0}\r\n'
              '{"text": "c", "label": "x", "extra": [1]}\n')
    examples, _ = read_dataset(p)
    assert pairs(examples) == [("a", "1"), ("b", "0"), ("c", "x")]
    assert [e.line for e in examples] == [1, 3, 4]


def test_fasttext(tmp_path):
    p = write(tmp_path / "d.ft", "__label__pos great movie\n__label__neg\tawful  \n")
    assert pairs(read_dataset(p)[0]) == [("great movie", "pos"), ("awful  ", "neg")]


def test_txt_with_fasttext_labels_is_sniffed(tmp_path):
    p = write(tmp_path / "d.txt", "\ufeff__label__1 text\n")
    assert detect_format(p) == "fasttext"
    assert pairs(read_dataset(p)[0]) == [("text", "1")]


def test_plain_text_is_unlabelled(tmp_path):
    p = write(tmp_path / "d.txt", "one doc\n\ntwo doc \n")
    assert pairs(read_texts(p)) == [("one doc", None), ("two doc ", None)]


def test_folder_per_class(tmp_path):
    for label, name, text in [("pos", "b.txt", "nice\n"), ("pos", "a.txt", "good"), ("neg", "c.txt", "bad")]:
        (tmp_path / label).mkdir(exist_ok=True)
        write(tmp_path / label / name, text)
    (tmp_path / "neg" / "notes.md").write_text("ignored")
    examples, rep = read_dataset(tmp_path)
    assert pairs(examples) == [("bad", "neg"), ("good", "pos"), ("nice", "pos")]
    assert examples[0].source == str(tmp_path / "neg" / "c.txt") and examples[0].line is None
    assert rep.format == "folder"


def test_folder_without_class_subfolders(tmp_path):
    write(tmp_path / "a.txt", "loose file")
    with pytest.raises(DataError, match=r"no class folders.*pos.*1\.txt") as err:
        list(read_examples(tmp_path))
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("name,body", [
    ("d.csv.gz", "text,label\nhi,a\n"), ("d.tsv.gz", "text\tlabel\nhi\ta\n"),
    ("d.jsonl.gz", '{"text": "hi", "label": "a"}\n'), ("d.ft.gz", "__label__a hi\n"),
])
def test_gzip(tmp_path, name, body):
    p = tmp_path / name
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(body)
    assert pairs(read_examples(p)) == [("hi", "a")]


def test_truncated_gzip(tmp_path):
    p = tmp_path / "d.txt.gz"
    p.write_bytes(gzip.compress(b"x\n" * 1000)[:30])
    with pytest.raises(DataError, match="gzip"):
        list(read_texts(p))


def test_bom_and_utf16(tmp_path):
    p = write(tmp_path / "d.tsv", "\ufefftext\tlabel\r\nhé\tpos\r\n")
    assert pairs(read_examples(p)) == [("hé", "pos")]
    p16 = write(tmp_path / "e.tsv", "text\tlabel\r\nhé\tpos\r\n", encoding="utf-16")
    assert pairs(read_examples(p16, encoding="utf-16")) == [("hé", "pos")]


# -- detection and choice of fields -----------------------------------------------------------

@pytest.mark.parametrize("name,fmt", [("a.CSV", "csv"), ("a.tsv.gz", "tsv"), ("a.json", "jsonl"),
                                      ("a.ndjson", "jsonl"), ("a.fasttext", "fasttext"),
                                      ("a.txt", "text")])
def test_detect_format(name, fmt, tmp_path):
    assert detect_format(tmp_path / name) == fmt


def test_unknown_format_lists_formats(tmp_path):
    p = write(tmp_path / "data.dat", "x")
    with pytest.raises(DataError, match=r"data\.dat.*csv, tsv, jsonl.*--format"):
        read_examples(p)
    assert pairs(read_texts(p, format="text")) == [("x", None)]
    with pytest.raises(DataError, match="no labels"):
        read_examples(p, format="text")


def test_fields_detected_case_insensitively_and_reported(tmp_path):
    p = write(tmp_path / "d.csv", "id,Review,Sentiment\n1,fine,positive\n")
    report = ReadReport()
    assert pairs(read_examples(p, report=report)) == [("fine", "positive")]
    assert (report.text_field, report.label_field, report.fields_detected) == ("Review", "Sentiment", True)
    assert report.summary() == f"read 1 examples from {p} (text='Review', label='Sentiment')"


def test_explicit_fields(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"q": "why?", "coarse": "DESC", "label": "x"}\n')
    examples, rep = read_dataset(p, text_field="q", label_field="coarse")
    assert pairs(examples) == [("why?", "DESC")] and not rep.fields_detected


def test_missing_explicit_column(tmp_path):
    p = write(tmp_path / "train.tsv", "text\tsentiment\nhi\tpos\n")
    with pytest.raises(DataError) as err:
        list(read_examples(p, label_field="label"))
    assert str(err.value) == f"Column 'label' not found in {p}. Columns: text, sentiment. Use --label-field."


def test_undetectable_columns(tmp_path):
    p = write(tmp_path / "d.csv", "tweet,polarity\nhi,1\n")
    with pytest.raises(DataError, match=r"d\.csv.*Columns: tweet, polarity.*--text-field"):
        list(read_examples(p))


def test_unlabelled_reading_needs_no_label_column(tmp_path):
    p = write(tmp_path / "d.csv", "text,label\nhi,\nho,b\n")
    assert pairs(read_texts(p)) == [("hi", None), ("ho", "b")]
    q = write(tmp_path / "e.csv", "comment\nhi\n")
    assert pairs(read_texts(q)) == [("hi", None)]


# -- bad lines --------------------------------------------------------------------------------

def test_malformed_json_names_file_and_line(tmp_path):
    p = write(tmp_path / "x.jsonl", '{"text": "a", "label": "b"}\n{"text": "a" "label": "b"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: malformed JSON \(Expecting ',' delimiter.*"
                                        r"expected one JSON object per line"):
        list(read_examples(p))


def test_fasttext_line_without_label(tmp_path):
    p = write(tmp_path / "d.ft", "__label__a fine\nno label here\n")
    with pytest.raises(DataError, match=r"d\.ft:2: fastText line without a label"):
        list(read_data(p, DataConfig(), task="multiclass"))
    # read for either task, it is a text with no label (an error later if the data is multi-class)
    assert pairs(read_examples(p)) == [("fine", "a"), ("no label here", ())]
    assert pairs(read_texts(p)) == [("fine", "a"), ("no label here", None)]


def test_multi_label_fasttext_line(tmp_path):
    p = write(tmp_path / "d.ft", "__label__a __label__b text\n")
    assert pairs(read_examples(p)) == [("text", ("a", "b"))]
    with pytest.raises(DataError, match=r"d\.ft:1: several labels \(a b; set model\.task"):
        list(read_data(p, DataConfig(), task="multiclass"))


def test_tsv_wrong_number_of_fields(tmp_path):
    p = write(tmp_path / "d.tsv", "sentence\tlabel\na\tb\tc\n")
    with pytest.raises(DataError, match=r"d\.tsv:2: wrong number of fields"):
        list(read_examples(p))


@pytest.mark.parametrize("label", ["1.0", "null", '""', "[1, [2]]", '["a", ""]', "{}"])
def test_bad_json_labels(tmp_path, label):
    p = write(tmp_path / "d.jsonl", f'{{"text": "a", "label": {label}}}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: (label must be|missing label|label list holds an empty label)"):
        list(read_examples(p))
    assert pairs(read_texts(p)) == [("a", None)]


def test_skip_mode_counts_by_reason(tmp_path, caplog):
    p = write(tmp_path / "x.jsonl", "\n".join([
        '{"text": "ok", "label": "a"}', '{"text": "", "label": "a"}', "not json",
        '{"text": "   ", "label": "a"}', '{"label": "a"}', '{"text": "no label"}',
        '[1]', '{"text": "ok2", "label": 2}']) + "\n")
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger="textlstm.data"):
        examples = list(read_examples(p, on_bad_lines="skip", report=report))
    assert pairs(examples) == [("ok", "a"), ("ok2", "2")]
    assert report.skipped == {"empty text": 2, "malformed JSON": 1, "missing text": 1,
                              "missing label": 1, "not a JSON object": 1}
    assert report.n_records == report.n_kept + sum(report.skipped.values()) == 8
    assert report.examples_of_skips[0] == (str(p), 2, "empty text")
    assert "skipped 6: 2 empty text" in report.summary() and f"first at {p}:2" in report.summary()
    assert len(caplog.records) == 1


def test_empty_texts_skipped_even_in_strict_mode(tmp_path):
    p = write(tmp_path / "d.tsv", "text\tlabel\n\ta\n  \tb\nok\tc\n")
    examples, rep = read_dataset(p)
    assert pairs(examples) == [("ok", "c")] and rep.skipped == {"empty text": 2}


def test_null_like_values_kept_verbatim(tmp_path):
    values = ["NA", "null", "None", "nan", "N/A", "NaN", ""]
    rows = "".join(f"{v}\t{v or 'x'}\n" for v in values)
    p = write(tmp_path / "d.tsv", "text\tlabel\n" + rows)
    assert pairs(read_examples(p)) == [(v, v) for v in values[:-1]]
    q = write(tmp_path / "d.csv", "text,label\n" + rows.replace("\t", ","))
    assert pairs(read_examples(q)) == [(v, v) for v in values[:-1]]
    r = write(tmp_path / "d.jsonl", "".join(json.dumps({"text": v, "label": v}) + "\n" for v in values[:-1]))
    assert pairs(read_examples(r)) == [(v, v) for v in values[:-1]]


def test_invalid_utf8_names_line_and_byte_offset(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_bytes(b"text\tlabel\ncaf\xc3\xa9\tpos\nna\xefve\tneg\n")
    with pytest.raises(DataError, match=r"d\.tsv:3: .*byte offset 23 .*--encoding latin-1"):
        list(read_examples(p))
    assert pairs(read_examples(p, encoding="latin-1"))[1] == ("na\xefve", "neg")


def test_invalid_utf8_in_folder_document(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "1.txt").write_bytes(b"ok\nbad \xff")
    with pytest.raises(DataError, match=r"1\.txt:2: .*byte offset 7.*--encoding"):
        list(read_examples(tmp_path))


def test_huge_csv_field(tmp_path):
    big = "w " * 2_500_000
    p = write(tmp_path / "d.csv", f'text,label\n"{big}",a\n')
    assert [len(e.text) for e in read_examples(p)] == [len(big)]


def test_options_checked_on_call(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_examples(tmp_path / "missing.csv")
    p = write(tmp_path / "d.csv", "text\n")
    with pytest.raises(ConfigError, match="on_bad_lines"):
        read_examples(p, on_bad_lines="warn")
    with pytest.raises(ConfigError, match="encoding"):
        read_examples(p, encoding="utf-9")


def test_label_order():
    assert label_order(["10", "2", "-1", "2"]) == ["-1", "2", "10"]
    assert label_order(["b", "a", "10", "2"]) == ["10", "2", "a", "b"]
    assert label_order(["positive", "negative"]) == ["negative", "positive"]


# -- properties -------------------------------------------------------------------------------

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@SETTINGS
@given(items=st.lists(texts, max_size=6), ascii_only=st.booleans())
def test_jsonl_round_trip(tmp_path, items, ascii_only):
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"text": t, "label": "a"}, ensure_ascii=ascii_only) + "\n"
                         for t in items), encoding="utf-8")
    examples, rep = read_dataset(p)
    assert [e.text for e in examples] == [t for t in items if t.strip()]
    assert rep.skipped.get("empty text", 0) == sum(1 for t in items if not t.strip())


@SETTINGS
@given(items=st.lists(texts, max_size=6))
def test_tsv_round_trip(tmp_path, items):
    clean = [t.replace("\t", " ").replace("\n", " ").replace("\r", " ") for t in items]
    p = tmp_path / "p.tsv"
    p.write_text("label\ttext\n" + "".join(f"x\t{t}\n" for t in clean), encoding="utf-8")
    examples, rep = read_dataset(p)
    assert [e.text for e in examples] == [t for t in clean if t.strip()]
    assert rep.n_records == len(clean)


@SETTINGS
@given(items=st.lists(texts, max_size=6), newline=st.sampled_from(["\n", "\r\n"]),
       quote_all=st.booleans())
def test_csv_round_trip(tmp_path, items, newline, quote_all):
    if not quote_all:  # minimal quoting leaves a lone \r unquoted: ambiguous to any reader
        items = [t.replace("\r", " ") for t in items]
    p = tmp_path / "p.csv"
    with open(p, "w", encoding="utf-8", newline="") as fh:
        quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
        writer = csv.writer(fh, lineterminator=newline, quoting=quoting)
        writer.writerow(["text", "label"])
        writer.writerows([t, "a"] for t in items)
    examples, rep = read_dataset(p)
    assert [e.text for e in examples] == [t for t in items if t.strip()]
    assert rep.n_records == len(items)


@SETTINGS
@given(data=st.binary(max_size=80))
def test_arbitrary_bytes_never_crash(tmp_path, data):
    for name in ("p.csv", "p.tsv", "p.jsonl", "p.ft", "p.txt"):
        (tmp_path / name).write_bytes(data)
        try:
            list(read_examples(tmp_path / name, on_bad_lines="skip", labelled=name != "p.txt"))
        except DataError:
            pass


# -- real data (opt in with --runslow) --------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("rel,n,labels", [
    ("sst2/train.tsv", 6920, ["0", "1"]), ("imdb/train.csv.gz", 25000, ["negative", "positive"]),
    ("trec/train.jsonl", 5452, ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]),
])
def test_shared_data(rel, n, labels):
    examples, rep = read_dataset(SHARED_DATA / rel)
    assert len(examples) == n == rep.n_records and not rep.skipped
    assert label_order(e.label for e in examples) == labels
