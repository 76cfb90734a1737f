"""The two directions of a layer side by side on two threads give what they give in turn."""
import pytest
import torch
from torch import nn

from textlstm.config import ModelConfig
from textlstm.model import TextLSTM, directions


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and side by side even for the short test texts."""
    monkeypatch.setattr(directions, "MIN_STEPS", 1)
    monkeypatch.setattr(directions, "SCHEDULE", "side-by-side")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def serial(monkeypatch):
    monkeypatch.setattr(directions, "_parallel_ok", lambda inputs: False)


def forward_backward(model, ids, lengths, y):
    model.zero_grad(set_to_none=True)
    logits, _ = model(ids, lengths)
    nn.functional.cross_entropy(logits, y).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole"])
def test_side_by_side_equals_in_turn_forward_and_backward(cell, two_threads, monkeypatch):
    torch.manual_seed(0)
    model = TextLSTM(ModelConfig(hidden_size=16, embedding_dim=8, attention_dim=8, num_layers=2,
                                 residual=True, cell=cell, dropout=0.0, embedding_dropout=0.0),
                     vocab_size=30, n_labels=3)
    ids = torch.randint(1, 30, (5, 9))
    lengths = torch.tensor([9, 7, 4, 1, 9])
    ids[torch.arange(9)[None, :] >= lengths[:, None]] = 0
    y = torch.tensor([0, 1, 2, 1, 0])
    calls = []
    original = directions._TwoDirections.apply
    monkeypatch.setattr(directions._TwoDirections, "apply", lambda *a: calls.append(1) or original(*a))
    logits, grads = forward_backward(model, ids, lengths, y)
    assert len(calls) == 2  # both layers ran side by side
    serial(monkeypatch)
    ref_logits, ref_grads = forward_backward(model, ids, lengths, y)
    torch.testing.assert_close(logits, ref_logits, atol=1e-6, rtol=1e-5)
    assert grads.keys() == ref_grads.keys() and "encoder.layers.0.1.weight_hh_l0" in grads \
        or cell == "peephole"
    for name, g in ref_grads.items():
        torch.testing.assert_close(grads[name], g, atol=1e-6, rtol=1e-5, msg=name)


def test_gradcheck_through_the_two_directions(two_threads):
    torch.manual_seed(0)
    rnns = [nn.LSTM(3, 4, batch_first=True).double() for _ in range(2)]
    xs = [torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    params = [p for r in rnns for p in r.parameters()]

    weights = [torch.randn(2, 5, 4, dtype=torch.float64) for _ in range(2)]

    def f():
        out0, out1 = directions._TwoDirections.apply(tuple(rnns), *xs, *params)
        return (out0 * weights[0]).sum() + (out1 * weights[1]).sum()
    # Central differences by hand: torch.autograd.gradcheck runs backward twice through one
    # graph (its reentrancy check), which this node refuses once it has freed its inner graphs.
    analytic = torch.autograd.grad(f(), xs + params)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor, grad in zip(xs + params, analytic):
            for flat in torch.randint(0, tensor.numel(), (6,), generator=gen).tolist():
                index = tuple(torch.unravel_index(torch.tensor(flat), tensor.shape))
                saved = tensor[index].item()
                tensor[index] = saved + 1e-6
                up = f().item()
                tensor[index] = saved - 1e-6
                down = f().item()
                tensor[index] = saved
                assert abs((up - down) / 2e-6 - grad[index].item()) < 1e-6


def test_inference_and_frozen_inputs_take_the_same_path(two_threads, monkeypatch):
    torch.manual_seed(0)
    model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4, attention_dim=4), 20, 2).eval()
    ids, lengths = torch.randint(1, 20, (3, 6)), torch.tensor([6, 6, 6])
    with torch.inference_mode():
        fast, _ = model(ids, lengths)
    serial(monkeypatch)
    with torch.inference_mode():
        ref, _ = model(ids, lengths)
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=1e-5)


def test_one_thread_runs_the_directions_in_turn(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(directions, "_executor", lambda: pytest.fail("no helper thread with 1 thread"))
        model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4, attention_dim=4), 20, 2)
        model(torch.randint(1, 20, (2, 5)), torch.tensor([5, 3]))[0].sum().backward()
    finally:
        torch.set_num_threads(before)


def test_the_callers_thread_count_is_restored(two_threads):
    model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4, attention_dim=4), 20, 2)
    model(torch.randint(1, 20, (2, 5)), torch.tensor([5, 3]))[0].sum().backward()
    assert torch.get_num_threads() == 2


def test_short_texts_run_the_directions_in_turn(two_threads, monkeypatch):
    monkeypatch.setattr(directions, "MIN_STEPS", 10)
    monkeypatch.setattr(directions, "_executor", lambda: pytest.fail("no helper thread for short texts"))
    model = TextLSTM(ModelConfig(hidden_size=8, embedding_dim=4, attention_dim=4), 20, 2)
    model(torch.randint(1, 20, (2, 9)), torch.tensor([9, 3]))[0].sum().backward()


def test_backward_frees_the_inner_graphs(two_threads):
    """The side-by-side node lets its directions' saved activations go at backward, so a loss
    kept until the next step does not hold two steps' activations; a second backward through
    it is refused with a clear error."""
    torch.manual_seed(0)
    rnns = (nn.LSTM(4, 6, batch_first=True), nn.LSTM(4, 6, batch_first=True))
    x = [torch.randn(2, 5, 4, requires_grad=True) for _ in range(2)]
    outs = directions.run_directions(rnns, x)
    loss = sum(o.sum() for o in outs)
    node = outs[0].grad_fn
    loss.backward(retain_graph=True)
    assert x[0].grad is not None and rnns[1].weight_hh_l0.grad is not None
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()
    assert node is outs[0].grad_fn


def test_auto_times_both_schedules_then_keeps_the_faster_with_equal_results(two_threads, monkeypatch):
    monkeypatch.setattr(directions, "SCHEDULE", "auto")
    chooser = directions.Chooser()
    monkeypatch.setattr(directions, "CHOOSER", chooser)
    torch.manual_seed(0)
    rnns = (nn.LSTM(4, 6, batch_first=True), nn.LSTM(4, 6, batch_first=True))
    x = [torch.randn(2, 40, 4) for _ in range(2)]
    with torch.no_grad():
        want = [rnn(xi)[0] for rnn, xi in zip(rnns, x)]
        for _ in range(2 * directions.TRIALS + 3):
            for out, ref in zip(directions.run_directions(rnns, x), want):
                torch.testing.assert_close(out, ref)
    kind = (False, None, 1)  # no grad, no autocast, 32-63 steps
    assert kind in chooser.chosen
    assert [len(t) for t in chooser.timings[kind].values()] == [directions.TRIALS] * 2
    faster = {m: sorted(t[1:])[len(t[1:]) // 2] for m, t in chooser.timings[kind].items()}
    assert chooser.chosen[kind] == (faster[True] < faster[False])


def test_the_chooser_keeps_what_it_measured_faster():
    chooser = directions.Chooser()
    kind = (True, torch.bfloat16, 3)
    for i in range(directions.TRIALS):
        side, timed = chooser.next(kind)
        chooser.record(kind, side, 2.0 if side else 1.0, 100)  # in turn twice as fast
        side, timed = chooser.next(kind)
        chooser.record(kind, side, 2.0 if side else 1.0, 100)
    assert chooser.next(kind) == (False, False)
