"""Batch prediction jobs: one row per input record, error rows for bad records, resume after a
kill with output identical to an uninterrupted run, and no result overwritten by accident."""
import csv
import json

import pytest
from helpers import TRAIN

from textlstm import TextClassifier
from textlstm.config import DataConfig, make_config
from textlstm.data import ReadReport, read_examples, read_texts
from textlstm.errors import ConfigError, DataError
from textlstm.jobs.predict import model_fingerprint, partial_paths, predict_file

# 9 records: line 3 is malformed, line 5 has no text field, line 7 has an empty text
LINES = ['{"text": "a great film"}', '{"text": "awful"}', '{"text": "oops" "x"}',
         '{"text": "boring mess"}', '{"body": "no text field here"}', '{"text": "loved it"}',
         '{"text": "   "}', '{"text": "warm and great"}', '{"text": "dull"}']
BAD = {3: "malformed JSON", 5: "missing text", 7: "empty text"}


@pytest.fixture(scope="module")
def clf():
    cfg = make_config(overrides=[
        "model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.epochs=2",
        "train.batch_size=4", "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"'])
    return TextClassifier(cfg).fit(TRAIN, ["pos"] * 3 + ["neg"] * 3)


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- reading bad records for a job -------------------------------------------------------------

def test_report_mode_yields_bad_records_in_place_and_counts_them(jsonl):
    report = ReadReport()
    examples = list(read_texts(jsonl, on_bad_lines="report", report=report))
    assert [e.line for e in examples] == list(range(1, 10))
    assert {e.line: e.error.split(" (")[0] for e in examples if e.error} == BAD
    assert all(e.text == "" and e.label is None for e in examples if e.error)
    assert all(e.error is None for e in examples if e.line not in BAD)
    assert report.reported == {"malformed JSON": 1, "missing text": 1, "empty text": 1}
    assert not report.skipped
    assert report.n_records == report.n_kept + sum(report.reported.values()) == 9
    assert "3 bad records kept as errors" in report.summary() and f"{jsonl}:3" in report.summary()


def test_report_mode_with_labels_reports_missing_labels(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("text\tlabel\nfine\tpos\nno label\t\n\tneg\n", encoding="utf-8")
    examples = list(read_examples(p, on_bad_lines="report"))
    assert [(e.text, e.label, e.error) for e in examples] == [
        ("fine", "pos", None), ("", None, "missing label ('label' is empty)"), ("", None, "empty text")]


def test_unknown_bad_lines_mode_lists_report(jsonl):
    with pytest.raises(ConfigError, match="error, skip, report"):
        read_texts(jsonl, on_bad_lines="warn")


# -- error rows --------------------------------------------------------------------------------

def test_csv_output_has_one_row_per_record_with_errors_in_order(clf, jsonl, tmp_path):
    out = tmp_path / "pred.csv"
    summary = predict_file(clf, jsonl, out, chunk_size=4)
    rows = read_csv(out)
    assert list(rows[0]) == ["line", "text", "label", "p_neg", "p_pos", "error"]
    assert [int(r["line"]) for r in rows] == list(range(1, 10))
    for r in rows:
        line = int(r["line"])
        if line in BAD:
            assert r["error"].startswith(BAD[line]) and r["label"] == r["p_pos"] == ""
        else:
            assert r["error"] == "" and r["label"] in ("pos", "neg")
            assert float(r["p_neg"]) + float(r["p_pos"]) == pytest.approx(1, abs=1e-5)
    assert (summary.rows, summary.errors, summary.resumed_from) == (9, 3, 0)
    assert summary.report.n_records == 9
    assert not any(p.exists() for p in partial_paths(out))


def test_jsonl_output_has_error_key_and_null_label(clf, jsonl, tmp_path):
    out = tmp_path / "pred.jsonl"
    predict_file(clf, jsonl, out, chunk_size=2, data=DataConfig(on_bad_lines="error"))
    rows = read_jsonl(out)
    assert [r["line"] for r in rows] == list(range(1, 10))
    for r in rows:
        if r["line"] in BAD:
            assert r["label"] is None and r["proba"] is None and r["error"].startswith(BAD[r["line"]])
        else:
            assert r["error"] is None and set(r["proba"]) == {"neg", "pos"}


def test_tsv_input_wrong_field_count_and_empty_text(clf, tmp_path):
    p = tmp_path / "in.tsv"
    p.write_text("text\tid\ngood film\t1\ntoo\tmany\tfields\n\t3\nbad film\t4\n", encoding="utf-8")
    rows = read_csv(predict_file(clf, p, tmp_path / "o.csv").output)
    assert [(r["line"], r["error"].split(" (")[0]) for r in rows] == [
        ("2", ""), ("3", "wrong number of fields"), ("4", "empty text"), ("5", "")]


def test_every_record_bad_gives_only_error_rows(clf, tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text("[1]\nnot json\n", encoding="utf-8")
    summary = predict_file(clf, p, tmp_path / "o.jsonl")
    assert (summary.rows, summary.errors) == (2, 2)


# -- kill and resume ---------------------------------------------------------------------------

def kill_after(monkeypatch, clf, calls):
    """Make `predict_proba` die on its (calls+1)-th call, as a killed job would."""
    real, seen = clf.predict_proba, []

    def dying(texts, batch_size=256):
        if len(seen) == calls:
            raise KeyboardInterrupt("killed")
        seen.append(1)
        return real(texts, batch_size)
    monkeypatch.setattr(clf, "predict_proba", dying)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_killed_job_resumes_to_the_same_output(clf, jsonl, tmp_path, monkeypatch, suffix):
    expected = predict_file(clf, jsonl, tmp_path / f"full.{suffix}").output.read_bytes()
    out = tmp_path / f"pred.{suffix}"
    partial, sidecar = partial_paths(out)
    with monkeypatch.context() as m:
        kill_after(m, clf, 2)
        with pytest.raises(KeyboardInterrupt):
            predict_file(clf, jsonl, out, chunk_size=2)
    assert not out.exists()
    assert json.loads(sidecar.read_text())["rows"] == 4  # two chunks of two records
    with open(partial, "ab") as fh:
        fh.write(b'half a row, cut by the kill')  # a kill in the middle of a write
    summary = predict_file(clf, jsonl, out, chunk_size=3, resume=True)
    assert out.read_bytes() == expected
    assert (summary.rows, summary.resumed_from, summary.errors) == (9, 4, 3)
    assert not partial.exists() and not sidecar.exists()


def test_fresh_run_replaces_a_stale_partial(clf, jsonl, tmp_path, monkeypatch):
    out = tmp_path / "pred.csv"
    with monkeypatch.context() as m:
        kill_after(m, clf, 1)
        with pytest.raises(KeyboardInterrupt):
            predict_file(clf, jsonl, out, chunk_size=2)
    summary = predict_file(clf, jsonl, out)
    assert summary.resumed_from == 0 and len(read_csv(out)) == 9


def interrupted(clf, jsonl, out, monkeypatch, **kw):
    with monkeypatch.context() as m:
        kill_after(m, clf, 1)
        with pytest.raises(KeyboardInterrupt):
            predict_file(clf, jsonl, out, chunk_size=2, **kw)


def test_resume_with_changed_input_is_refused(clf, jsonl, tmp_path, monkeypatch):
    out = tmp_path / "pred.csv"
    interrupted(clf, jsonl, out, monkeypatch)
    jsonl.write_text(jsonl.read_text() + '{"text": "one more"}\n')
    with pytest.raises(DataError, match=r"different inputs\. input size: partial run had \d+, "
                                        r"this run has \d+.*without --resume"):
        predict_file(clf, jsonl, out, resume=True)
    assert not out.exists() and partial_paths(out)[0].exists()


def test_resume_with_another_model_or_reader_is_refused(clf, jsonl, tmp_path, monkeypatch):
    out = tmp_path / "pred.csv"
    interrupted(clf, jsonl, out, monkeypatch, model_id="model-a")
    with pytest.raises(DataError, match="model: partial run had 'model-a', this run has 'model-b'"):
        predict_file(clf, jsonl, out, resume=True, model_id="model-b")
    with pytest.raises(DataError, match="reader text_field"):
        predict_file(clf, jsonl, out, resume=True, model_id="model-a",
                     data=DataConfig(text_field="body"))
    assert predict_file(clf, jsonl, out, resume=True, model_id="model-a").resumed_from == 2


def test_resume_refuses_a_partial_file_shorter_than_recorded(clf, jsonl, tmp_path, monkeypatch):
    out = tmp_path / "pred.jsonl"
    interrupted(clf, jsonl, out, monkeypatch)
    partial = partial_paths(out)[0]
    partial.write_bytes(partial.read_bytes()[:5])
    with pytest.raises(DataError, match="was changed"):
        predict_file(clf, jsonl, out, resume=True)


def test_resume_without_partial_results_says_so(clf, jsonl, tmp_path):
    with pytest.raises(DataError, match=r"Nothing to resume.*\.partial\.json is missing"):
        predict_file(clf, jsonl, tmp_path / "pred.csv", resume=True)


# -- never over a result -----------------------------------------------------------------------

def test_existing_output_is_refused_unless_overwrite(clf, jsonl, tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("precious results\n")
    with pytest.raises(DataError, match=rf"{out.name} already exists.*--overwrite"):
        predict_file(clf, jsonl, out)
    with pytest.raises(DataError, match="finished job"):
        predict_file(clf, jsonl, out, resume=True)
    assert out.read_text() == "precious results\n"
    assert not any(p.exists() for p in partial_paths(out))
    predict_file(clf, jsonl, out, overwrite=True)
    assert len(read_csv(out)) == 9


def test_model_fingerprint_is_stable_and_tells_models_apart(clf):
    other = TextClassifier(clf.config).fit(TRAIN, ["neg"] * 3 + ["pos"] * 3)
    assert model_fingerprint(clf) == model_fingerprint(clf) != model_fingerprint(other)


def test_bad_chunk_size_is_a_config_error(clf, jsonl, tmp_path):
    with pytest.raises(ConfigError, match="chunk_size"):
        predict_file(clf, jsonl, tmp_path / "o.csv", chunk_size=0)
