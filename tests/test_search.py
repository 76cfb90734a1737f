"""`textlstm search`: grid files, the CLI end to end on tiny data, and errors before training."""
import csv

import pytest
from helpers import ROWS, write_tsv
from typer.testing import CliRunner

from textlstm import TextClassifier
from textlstm.cli import app
from textlstm.config import Config, make_config
from textlstm.errors import ConfigError
from textlstm.jobs.search import candidates, check_candidates, load_grid
from textlstm.jobs.searchreport import config_toml

runner = CliRunner()
FAST = ["--set", "model.embedding_dim=8", "--set", "model.attention_dim=8", "--set", "train.threads=1",
        "--set", "tokenizer.kind=regex", "--set", "data.val_split=0", "--quiet"]
GRID = '"model.hidden_size" = [4, 8]\n[train]\nlr = [0.01, 0.05]\nepochs = 2\n'


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    data = write_tsv(d / "train.tsv", ROWS * 3)
    (d / "grid.toml").write_text(GRID)
    res = runner.invoke(app, ["search", str(data), "--grid", str(d / "grid.toml"), "--cv", "3",
                              "--out", str(d / "out"), "--refit", *FAST])
    assert res.exit_code == 0, res.output
    return d, res


def test_search_writes_table_csv_plot_and_best_config(searched):
    d, res = searched
    out = d / "out"
    assert "4 settings, scored on 3 folds" in res.output and "best: model.hidden_size=" in res.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert {(r["model.hidden_size"], r["train.lr"]) for r in rows} == {("4", "0.01"), ("4", "0.05"),
                                                                       ("8", "0.01"), ("8", "0.05")}
    means = [float(r["macro_f1_mean"]) for r in rows]
    assert means == sorted(means, reverse=True)
    folds = [float(rows[0][f"macro_f1_fold{k}"]) for k in (1, 2, 3)]
    assert abs(sum(folds) / 3 - means[0]) < 1e-5
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    best = make_config(config_file=out / "best.toml")
    assert best.model.hidden_size == int(rows[0]["model.hidden_size"])
    assert best.train.lr == float(rows[0]["train.lr"]) and best.train.epochs == 2
    assert best.model.embedding_dim == 8 and best.tokenizer.kind == "regex"  # --set values kept


def test_refit_model_loads_and_best_toml_trains(searched, tmp_path):
    d, _ = searched
    clf = TextClassifier.load(d / "out" / "model")
    assert clf.classes_ == ["negative", "positive"] and clf.meta_["n_train"] == 24
    assert clf.meta_["search"]["n_splits"] == 3
    res = runner.invoke(app, ["train", str(d / "train.tsv"), "--config", str(d / "out" / "best.toml"),
                              "--out", str(tmp_path / "m"), "--quiet"])
    assert res.exit_code == 0, res.output


def test_existing_out_is_refused_without_overwrite(searched):
    d, _ = searched
    res = runner.invoke(app, ["search", str(d / "train.tsv"), "--grid", str(d / "grid.toml"),
                              "--out", str(d / "out"), *FAST])
    assert res.exit_code == 1 and "--overwrite" in res.output


@pytest.mark.parametrize("grid, message", [
    ('"model.hiden_size" = [4, 8]\n', "Unknown setting 'model.hiden_size'.*Keys of \\[model\\]: .*hidden_size"),
    ('[modle]\nhidden_size = [4]\n', "Unknown setting 'modle.hidden_size'.*Sections: data, tokenizer"),
    ('"model.dropout" = [0.1, 1.5]\n', "invalid: model.dropout must be in \\[0, 1\\), got 1.5"),
    ('"model.cell" = ["lstm", "rnn"]\n', "model.cell = 'rnn'.*Allowed: lstm, gru"),
    ('"train.epochs" = []\n', "empty list"),
])
def test_bad_grid_fails_before_training(tmp_path, grid, message):
    data = write_tsv(tmp_path / "train.tsv", ROWS * 3)
    (tmp_path / "grid.toml").write_text(grid)
    res = runner.invoke(app, ["search", str(data), "--grid", str(tmp_path / "grid.toml"),
                              "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1
    assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1
    import re
    assert re.search(message, res.output.replace("\n", " ")), res.output
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_too_many_folds_for_the_rarest_class_is_a_clear_error(tmp_path):
    data = write_tsv(tmp_path / "train.tsv", ROWS)  # 4 examples per class
    (tmp_path / "grid.toml").write_text(GRID)
    res = runner.invoke(app, ["search", str(data), "--grid", str(tmp_path / "grid.toml"), "--cv", "5",
                              "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1 and "rarest class" in res.output and "has 4" in res.output


def test_val_file_and_random_subset(tmp_path):
    data = write_tsv(tmp_path / "train.tsv", ROWS * 2)
    val = write_tsv(tmp_path / "dev.tsv", ROWS)
    (tmp_path / "grid.toml").write_text(GRID)
    res = runner.invoke(app, ["search", str(data), "--grid", str(tmp_path / "grid.toml"), "--val", str(val),
                              "--random", "2", "--out", str(tmp_path / "out"), *FAST[:-1]])
    assert res.exit_code == 0, res.output
    assert "trial 2/2 fold 1/1  model.hidden_size=" in res.output  # progress, one line per fit
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(rows) == 2 and "macro_f1_fold1" in rows[0] and "macro_f1_fold2" not in rows[0]
    assert "scored on the validation file" in res.output
    assert not (tmp_path / "out" / "model").exists()


def test_grid_tables_and_dotted_keys_are_the_same(tmp_path):
    (tmp_path / "a.toml").write_text('"model.hidden_size" = [4, 8]\n"train.lr" = 0.01\n')
    (tmp_path / "b.toml").write_text('[model]\nhidden_size = [4, 8]\n[train]\nlr = 0.01\n')
    assert load_grid(tmp_path / "a.toml") == load_grid(tmp_path / "b.toml") == {
        "model.hidden_size": [4, 8], "train.lr": [0.01]}
    grid = {"model.hidden_size": [4, 8, 16], "train.lr": [0.1, 0.01]}
    assert len(candidates(grid, None, 0)) == 6
    sampled = candidates(grid, 3, 0)
    assert len(sampled) == 3 and len({tuple(sorted(s.items())) for s in sampled}) == 3
    assert candidates(grid, 3, 0) == sampled  # the seed fixes the sample
    with pytest.raises(ConfigError, match="must be of type int"):
        check_candidates(Config(), [{"model.hidden_size": "big"}], "g.toml")


def test_config_toml_round_trips(tmp_path):
    cfg = make_config("sentence-sentiment", overrides=['data.text_field="review"', "train.lr=3e-05",
                                                       'tokenizer.lang="de"'])
    (tmp_path / "c.toml").write_text(config_toml(cfg.to_dict(), ["a comment"]))
    again = make_config(config_file=tmp_path / "c.toml")
    assert again.to_dict() == cfg.to_dict()


def test_a_setting_whose_fits_fail_is_reported_not_fatal(tmp_path):
    data = write_tsv(tmp_path / "train.tsv", ROWS * 3)
    (tmp_path / "grid.toml").write_text('"train.lr" = [0.01, 1e30]\n"train.epochs" = 2\n'
                                        '"train.batch_size" = 4\n"train.clip_norm" = 0.0\n')
    res = runner.invoke(app, ["search", str(data), "--grid", str(tmp_path / "grid.toml"), "--cv", "2",
                              "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert [(r["train.lr"], r["failed_folds"]) for r in rows] == [("0.01", "0"), ("1e+30", "2")]
    assert rows[1]["macro_f1_mean"] == "nan" and "failed" in res.output
    assert make_config(config_file=tmp_path / "out" / "best.toml").train.lr == 0.01
