"""What a new user meets first (issue 22): file permissions, piped output, the predict command's
inputs and outputs, flags named in errors, shortcuts, --version, label names, run logs."""
import json
import os
import subprocess
import sys

import pytest
from helpers import TRAIN, write_tsv
from typer.testing import CliRunner

from textlstm.cli import app

LABELS = ["pos"] * 3 + ["neg"] * 3
FAST = ["--set", "model.hidden_size=8", "--set", "model.embedding_dim=8", "--set", "model.attention_dim=8",
        "--set", "train.batch_size=4", "--set", "train.threads=1", "--set", 'tokenizer.kind="regex"']
runner = CliRunner()


def cli(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("everyday")
    data = write_tsv(root / "train.tsv", zip(TRAIN * 4, ["1", "1", "1", "0", "0", "0"] * 4))
    res = cli("train", data, "--out", root / "m", "--epochs", "2", "--label-names", "0=negative,1=positive", *FAST)
    assert res.exit_code == 0, res.output
    return root / "m"


def run_cli(*args, umask=None, cwd=None):
    """The real `textlstm` in a subprocess: stdout and stderr are pipes, not a terminal."""
    code = "import os, sys; from textlstm.cli import app; " + (f"os.umask({umask}); " if umask is not None else "") + \
           "sys.argv = ['textlstm'] + sys.argv[1:]; app()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


# -- files readable as the umask says -----------------------------------------------------------

def test_every_file_written_has_the_umask_permissions(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN * 2, LABELS * 2))
    res = run_cli("train", data, "--out", tmp_path / "m", "--epochs", "1", *FAST, umask=0o022)
    assert res.returncode == 0, res.stderr
    res = run_cli("predict", tmp_path / "m", "--input", data, "--output", tmp_path / "p.csv", umask=0o022)
    assert res.returncode == 0, res.stderr
    written = [p for p in (tmp_path / "m").iterdir()] + [tmp_path / "p.csv"]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in written}
    assert set(modes.values()) == {"0o644"}, modes
    assert oct((tmp_path / "m").stat().st_mode & 0o777) == "0o755"


# -- logs one line per line when piped ---------------------------------------------------------

def test_piped_progress_and_logs_are_never_wrapped_and_go_to_stderr(tmp_path):
    long_name = "a-rather-long-directory-name-for-the-data-" * 3
    (tmp_path / long_name).mkdir()
    data = write_tsv(tmp_path / long_name / "train.tsv", zip(TRAIN * 4, LABELS * 4))
    res = run_cli("train", data, "--out", tmp_path / "m", "--epochs", "2", "--lr", "0.01", *FAST)
    assert res.returncode == 0, res.stderr
    epoch_lines = [line for line in res.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("| lr " in line and "tok/s" in line for line in epoch_lines)
    assert any(str(data) in line and "(text=" in line for line in res.stderr.splitlines())
    assert "epoch " not in res.stdout and "model saved to" in res.stdout


# -- predict: inputs and outputs ----------------------------------------------------------------

def test_predict_output_to_a_file_writes_it_and_dash_is_stdout(model, tmp_path):
    res = cli("predict", model, "great acting", "--output", tmp_path / "p.jsonl")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows[0]["text"] == "great acting" and rows[0]["label"] in ("negative", "positive")
    res = cli("predict", model, "great acting", "--output", "-", "--output-format", "csv")
    assert res.exit_code == 0 and res.output.splitlines()[0] == "line,text,label,p_negative,p_positive,error"


def test_predict_input_to_stdout_carries_text_and_gold(model, tmp_path):
    data = write_tsv(tmp_path / "d.tsv", zip(TRAIN, ["1", "1", "1", "0", "0", "0"]))
    res = cli("predict", model, "--input", data)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [r["text"] for r in rows] == TRAIN
    assert [r["gold"] for r in rows] == ["positive"] * 3 + ["negative"] * 3


def test_predict_id_field_replaces_the_text(model, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("id,text\nr1,great acting\nr2,awful acting\n")
    res = cli("predict", model, "--input", data, "--id-field", "id", "--output", tmp_path / "o.csv")
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0] == "line,id,label,p_negative,p_positive,error"
    assert [line.split(",")[1] for line in lines[1:]] == ["r1", "r2"]


def test_predict_reads_stdin_and_prints_lines(model):
    res = cli("predict", model, "--proba", input="great acting\nawful acting\n")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith("\tgreat acting") and "negative=" in lines[0]


def test_predict_refuses_an_unknown_output_name_as_a_usage_error(model, tmp_path):
    res = cli("predict", model, "x", "--output", tmp_path / "o.xml")
    assert res.exit_code == 2 and "--output-format" in res.output


def test_predict_explain_says_where_it_wrote(model, tmp_path):
    res = cli("predict", model, "great acting", "--explain", tmp_path / "e.html")
    assert res.exit_code == 0 and (tmp_path / "e.html").exists()
    assert f"explanations written to {tmp_path / 'e.html'}" in res.output


# -- flags, shortcuts, version ------------------------------------------------------------------

def test_shortcuts_set_the_settings(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN * 2, LABELS * 2))
    res = cli("train", data, "--out", tmp_path / "m", "--epochs", "1", "--lr", "0.005", "--seed", "7", *FAST)
    assert res.exit_code == 0, res.output
    train = json.loads((tmp_path / "m" / "config.json").read_text())["config"]["train"]
    assert (train["epochs"], train["lr"], train["seed"]) == (1, 0.005, 7)


def test_a_misspelt_set_suggests_the_key(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN, LABELS))
    res = cli("train", data, "--out", tmp_path / "m", "--set", "model.hiden_size=64")
    assert res.exit_code == 1 and "Did you mean model.hidden_size?" in res.output


def test_paths_are_checked_before_the_data_is_read(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN, LABELS))
    for flag in ("--val", "--test", "--config", "--vectors"):
        res = cli("train", data, "--out", tmp_path / "m", flag, tmp_path / "missing.tsv")
        assert res.exit_code == 2 and "read " not in res.output, (flag, res.output)


def test_version():
    res = cli("--version")
    assert res.exit_code == 0 and res.output.startswith("textlstm ") and "torch" in res.output


def test_completion_is_offered():
    res = cli("--help")
    assert "--install-completion" in res.output and "--show-completion" in res.output


# -- eval, info ---------------------------------------------------------------------------------

def test_eval_prints_the_confusion_matrix(model, tmp_path):
    data = write_tsv(tmp_path / "d.tsv", zip(TRAIN, ["1", "1", "1", "0", "0", "0"]))
    res = cli("eval", model, data)
    assert res.exit_code == 0, res.output
    assert "Confusion matrix" in res.output and "negative" in res.output


def test_info_keeps_paths_whole_and_json_is_config_json(model):
    res = run_cli("info", model)
    assert res.returncode == 0, res.stderr
    assert "Versions" in res.stdout and "trained with" in res.stdout
    assert "…" not in res.stdout
    res = cli("info", model, "--json")
    assert json.loads(res.stdout) == json.loads((model / "config.json").read_text())


# -- label names --------------------------------------------------------------------------------

def test_label_names_are_saved_and_used(model):
    doc = json.loads((model / "config.json").read_text())
    assert doc["labels"] == ["negative", "positive"]
    assert doc["config"]["data"]["label_names"] == ["0=negative", "1=positive"]


@pytest.mark.parametrize("value, says", [("0=a,1=a", "several labels"), ("0negative", "label=name"),
                                         ("0=negative", "no name for the labels '1'")])
def test_bad_label_names(tmp_path, value, says):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN, ["1", "1", "1", "0", "0", "0"]))
    res = cli("train", data, "--out", tmp_path / "m", "--label-names", value, *FAST)
    assert res.exit_code in (1, 2) and says in " ".join(res.output.replace("│", " ").split()), res.output


def test_label_names_from_a_file(tmp_path):
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN * 2, ["1", "1", "1", "0", "0", "0"] * 2))
    names = tmp_path / "names.txt"
    names.write_text("0=bad\n1=good\n")
    res = cli("train", data, "--out", tmp_path / "m", "--epochs", "1", "--label-names", names, *FAST)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["labels"] == ["bad", "good"]


# -- run logs -----------------------------------------------------------------------------------

def test_checkpoints_hold_the_run_log(tmp_path):
    from textlstm import TextClassifier
    from textlstm.config import make_config
    cfg = make_config(overrides=[s for s in FAST if s != "--set"] + ["train.epochs=2", "data.val_split=0"])
    clf = TextClassifier(cfg).fit(TRAIN, LABELS, checkpoint_dir=tmp_path / "ck")
    lines = [json.loads(line) for line in (tmp_path / "ck" / "metrics.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(clf.meta_["history"]))
    assert [r["epoch"] for r in lines] == [1, 2]
    os.remove(tmp_path / "ck" / "metrics.jsonl")


def test_train_tensorboard_flag_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    data = write_tsv(tmp_path / "t.tsv", zip(TRAIN * 2, LABELS * 2))
    res = cli("train", data, "--out", tmp_path / "m", "--epochs", "2", "--tensorboard", tmp_path / "tb", *FAST)
    assert res.exit_code == 0, res.output
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_saved_model_holds_its_card_and_run_log(model):
    card = (model / "README.md").read_text()
    assert "negative" in card and "Intended use" in card
    lines = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    manifest = json.loads((model / "manifest.json").read_text())["files"]
    assert {"README.md", "metrics.jsonl"} <= set(manifest)
