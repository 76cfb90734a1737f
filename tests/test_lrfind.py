"""The learning-rate range test: LR schedule actually applied, early stop on divergence, the
suggestion rule, and `textlstm lr-find` writing its plot and JSON."""
import json
import math

import numpy as np
import pytest
import torch
from helpers import ROWS, write_tsv
from typer.testing import CliRunner

from textlstm.cli import app
from textlstm.config import make_config
from textlstm.errors import ConfigError
from textlstm.jobs.lrfind import lr_find, no_descent, suggest

runner = CliRunner()
SMALL = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.threads=1",
         'tokenizer.kind="regex"', "train.batch_size=4"]


@pytest.fixture
def data(tmp_path):
    return write_tsv(tmp_path / "train.tsv", ROWS * 3)


def test_lr_grows_exponentially_in_every_param_group(data, monkeypatch):
    seen = []
    original = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        seen.append([g["lr"] for g in self.param_groups])
        return original(self, *args, **kwargs)
    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    cfg = make_config(overrides=SMALL + ['train.freeze="never"', "train.embedding_lr_mult=0.5"])
    result = lr_find(cfg, data, start=1e-5, end=1e-1, steps=20)
    assert len(result.lrs) == len(result.raw_losses) == len(result.losses) == 20 == len(seen)
    expected = np.geomspace(1e-5, 1e-1, 20)
    np.testing.assert_allclose(result.lrs, expected, rtol=1e-9)
    np.testing.assert_allclose([main for main, _ in seen], expected, rtol=1e-9)
    np.testing.assert_allclose([emb for _, emb in seen], expected * 0.5, rtol=1e-9)
    assert not result.stopped_early and "reached the end" in result.reason
    assert 1e-5 <= result.suggested_lr <= 1e-1 and 1e-5 <= result.steepest_lr <= 1e-1
    assert cfg.train.schedule == "cosine"  # the caller's config is left alone


def test_stops_early_when_the_loss_diverges(data):
    cfg = make_config(overrides=SMALL + ['train.optimizer="sgd"', "train.clip_norm=0",
                                         "train.momentum=0.99"])
    result = lr_find(cfg, data, start=1e-3, end=1e6, steps=200)
    assert result.stopped_early and len(result.lrs) < 200
    assert "loss above 4x" in result.reason or "non-finite" in result.reason
    assert 1e-3 <= result.suggested_lr <= 1e6


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = list(np.geomspace(1e-6, 1, 100))
    x = np.log10(lrs)
    loss = 1 / (1 + np.exp(3 * (x + 3)))  # falls fastest at LR 1e-3
    loss[80:] += np.linspace(0, 5, 20)  # then diverges
    suggested, min_loss = suggest(lrs, list(loss), 1e-6, 1)
    assert math.isclose(math.log10(suggested), -3, abs_tol=0.1)
    assert math.isclose(min_loss, lrs[int(np.argmin(loss))] / 10)
    flat_then_up = list(np.linspace(1, 3, 50))  # no descent at all: the minimum's LR
    assert suggest(lrs[:50], flat_then_up, 1e-6, 1)[0] == lrs[0]
    assert no_descent(flat_then_up) and not no_descent(list(loss))  # `lr-find` warns on the first


def test_bad_range_is_a_config_error(data):
    with pytest.raises(ConfigError, match="--start < --end"):
        lr_find(make_config(overrides=SMALL), data, start=1.0, end=1e-3)


def test_cli_writes_plot_and_json(data, tmp_path):
    res = runner.invoke(app, ["lr-find", str(data), "--out", str(tmp_path / "lr.png"), "--json",
                              str(tmp_path / "lr.json"), "--steps", "30", "--start", "1e-4", "--end", "1",
                              "--quiet", *[a for s in SMALL for a in ("--set", s)]])
    assert res.exit_code == 0, res.output
    assert "suggested LR" in res.output
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    curve = json.loads((tmp_path / "lr.json").read_text())
    assert len(curve["lrs"]) == 30 and 1e-4 <= curve["suggested_lr"] <= 1
