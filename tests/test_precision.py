"""Mixed precision (`train.amp`): bfloat16 autocast on a CPU that has it, float32 elsewhere."""
import logging

import pytest
import torch
from test_train import accuracy, make_model, tcfg, toy_data

from textlstm.training import precision
from textlstm.training.optim import make_optimizer
from textlstm.training.trainer import Trainer

needs_bf16 = pytest.mark.skipif(not precision.cpu_has_bf16(), reason="this CPU has no native bfloat16")


def test_amp_dtype_per_device_and_setting(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision.amp_dtype(cpu, False) is None and precision.amp_dtype(cuda, False) is None
    assert precision.amp_dtype(cuda, True) is torch.float16
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.amp_dtype(cpu, True) is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.amp_dtype(cpu, True) is None


def test_a_cpu_without_bf16_trains_in_float32_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="textlstm.training"):
        trainer = Trainer(make_model(), tcfg(amp=True, epochs=1), toy_data(), n_labels=2)
    assert trainer.amp_dtype is None and not trainer.scaler.is_enabled()
    assert "no native bfloat16" in caplog.text


@needs_bf16
@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole"])
def test_amp_runs_the_network_in_bfloat16_and_keeps_float32_weights(cell):
    data = toy_data()
    model = make_model(cell=cell)
    seen = []
    model.encoder.register_forward_hook(lambda m, args, out: seen.append(out[0].dtype))
    trainer = Trainer(model, tcfg(amp=True, epochs=25, lr=2e-2, schedule="constant"), data, n_labels=2)
    assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()  # no loss scaling
    trainer.fit()
    # nn.LSTM computes in bfloat16; autocast leaves nn.GRU in float32 on CPU, and the peephole
    # scan is kept in float32 by design.
    assert set(seen) == {torch.bfloat16 if cell == "lstm" else torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert accuracy(model, data) == 1.0  # it still learns the toy task


@needs_bf16
def test_bfloat16_logits_are_close_to_float32_logits():
    model = make_model().eval()
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    lengths = torch.tensor([4, 2])
    with torch.no_grad():
        ref, _ = model(ids, lengths)
        with precision.autocast(torch.device("cpu"), torch.bfloat16):
            mixed, _ = model(ids, lengths)
    assert mixed.dtype == torch.bfloat16
    assert torch.allclose(ref, mixed.float(), atol=3e-2)  # bfloat16 keeps ~3 significant digits
    assert not torch.equal(ref, mixed.float())


def test_adam_uses_the_fused_kernel():
    opt = make_optimizer(make_model(), tcfg(optimizer="adamw"))
    assert opt.defaults["fused"] is True


@pytest.mark.parametrize("given, expected", [(None, "8"), ("1024", "1024")])
def test_import_caps_onednns_primitive_cache_unless_the_user_set_it(given, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if given:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = given
    out = subprocess.run([sys.executable, "-c", "import os, textlstm; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected
