"""The peephole LSTM (`model.cell = "peephole"`): the formula against a step-by-step reference,
its hand-written backward against numerical gradients, and its use inside the model and the
classifier."""
import numpy as np
import pytest
import torch
from helpers import NEG, POS
from torch.func import functional_call

from textlstm import TextClassifier
from textlstm.config import ModelConfig, make_config
from textlstm.errors import ConfigError
from textlstm.model import TextLSTM, expected_shapes
from textlstm.model.cells import PeepholeLSTM

PARAMS = ("weight_ih", "weight_hh", "bias", "weight_ci", "weight_cf", "weight_co")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference(rnn: PeepholeLSTM, x: np.ndarray):
    """Graves (2013) eq. 7-11, one step at a time in float64 numpy: `x (batch, seq, input)` →
    outputs `(batch, seq, hidden)`, last h and c `(batch, hidden)`."""
    p = {k: v.detach().double().numpy() for k, v in rnn.named_parameters()}
    W_xi, W_xf, W_xc, W_xo = np.split(p["weight_ih"], 4)
    W_hi, W_hf, W_hc, W_ho = np.split(p["weight_hh"], 4)
    b_i, b_f, b_c, b_o = np.split(p["bias"], 4)
    batch, seq, _ = x.shape
    h = c = np.zeros((batch, rnn.hidden_size))
    outs = []
    for t in range(seq):
        x_t = x[:, t]
        i = sigmoid(x_t @ W_xi.T + h @ W_hi.T + p["weight_ci"] * c + b_i)
        f = sigmoid(x_t @ W_xf.T + h @ W_hf.T + p["weight_cf"] * c + b_f)
        c = f * c + i * np.tanh(x_t @ W_xc.T + h @ W_hc.T + b_c)
        o = sigmoid(x_t @ W_xo.T + h @ W_ho.T + p["weight_co"] * c + b_o)
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, axis=1), h, c


def make_rnn(input_size=5, hidden=7, seed=0, peephole_scale=3.0):
    torch.manual_seed(seed)
    rnn = PeepholeLSTM(input_size, hidden, batch_first=True)
    with torch.no_grad():  # larger peepholes than the initial U(-1/√H, 1/√H): they must matter
        for name in ("weight_ci", "weight_cf", "weight_co"):
            getattr(rnn, name).mul_(peephole_scale)
    return rnn


@pytest.mark.parametrize("batch,seq,seed", [(1, 1, 0), (3, 9, 1), (4, 30, 2)])
def test_forward_matches_the_step_by_step_formula(batch, seq, seed):
    rnn = make_rnn(seed=seed)
    x = torch.randn(batch, seq, 5, generator=torch.Generator().manual_seed(seed)) * 2
    out, (h_n, c_n) = rnn(x)
    ref_out, ref_h, ref_c = reference(rnn, x.double().numpy())
    assert out.shape == (batch, seq, 7) and h_n.shape == c_n.shape == (1, batch, 7)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, atol=1e-5, rtol=0)
    np.testing.assert_allclose(h_n[0].detach().numpy(), ref_h, atol=1e-5, rtol=0)
    np.testing.assert_allclose(c_n[0].detach().numpy(), ref_c, atol=1e-5, rtol=0)


def test_the_peepholes_change_the_result():
    rnn = make_rnn()
    x = torch.randn(2, 6, 5)
    before = rnn(x)[0]
    for name in ("weight_ci", "weight_cf", "weight_co"):
        with torch.no_grad():
            saved = getattr(rnn, name).clone()
            getattr(rnn, name).zero_()
        assert (rnn(x)[0] - before).abs().max() > 1e-3, name
        with torch.no_grad():
            getattr(rnn, name).copy_(saved)


def test_gradients_match_numerical_ones_for_every_parameter_and_the_input():
    rnn = make_rnn(input_size=3, hidden=4).double()
    params = {k: v.detach().clone().requires_grad_() for k, v in rnn.named_parameters()}
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)

    def run(x, *values):
        out, (h_n, c_n) = functional_call(rnn, dict(zip(PARAMS, values)), (x,))
        return out, c_n  # h_n is out's last step; c_n has its own path into the backward

    assert torch.autograd.gradcheck(run, (x, *(params[k] for k in PARAMS)))


def test_peephole_weights_receive_gradient():
    rnn = make_rnn()
    out, _ = rnn(torch.randn(3, 4, 5))
    out.sum().backward()
    for name in PARAMS:
        assert getattr(rnn, name).grad.abs().sum() > 0, name


def test_sequence_first_layout_agrees_with_batch_first():
    rnn = make_rnn()
    seq_first = PeepholeLSTM(5, 7)
    seq_first.load_state_dict(rnn.state_dict())
    x = torch.randn(3, 6, 5)
    torch.testing.assert_close(seq_first(x.transpose(0, 1))[0].transpose(0, 1), rnn(x)[0])


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="5 features.*got shape \\(2, 3, 4\\)"):
        make_rnn()(torch.randn(2, 3, 4))


def test_state_dict_is_plain_parameters_and_builds_on_meta():
    rnn = make_rnn()
    shapes = {k: tuple(v.shape) for k, v in rnn.state_dict().items()}
    assert shapes == {"weight_ih": (28, 5), "weight_hh": (28, 7), "bias": (28,),
                      "weight_ci": (7,), "weight_cf": (7,), "weight_co": (7,)}
    with torch.device("meta"):
        assert PeepholeLSTM(5, 7).weight_co.is_meta


def make_model(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(cell="peephole", hidden_size=8, embedding_dim=6, attention_dim=5, **kw)
    return TextLSTM(cfg, vocab_size=12, n_labels=3).eval()


@pytest.mark.parametrize("kw", [{"num_layers": 2}, {"num_layers": 2, "residual": True, "pooling": "last"},
                                {"bidirectional": False, "pooling": "mean+max"}])
def test_stacked_model_is_exact_under_padding(kw):
    model = make_model(**kw)
    ids = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 0, 0, 0], [9, 0, 0, 0, 0], [4, 4, 4, 0, 0]])
    lengths = torch.tensor([5, 2, 1, 3])
    logits, _ = model(ids, lengths)
    singles = torch.cat([model(ids[i:i + 1, :lengths[i]], lengths[i:i + 1])[0] for i in range(4)])
    torch.testing.assert_close(logits, singles, atol=1e-6, rtol=1e-5)
    wider = torch.cat([ids, torch.zeros(4, 7, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(wider, lengths)[0], logits, atol=1e-6, rtol=1e-5)
    assert expected_shapes(model.cfg, 12, 3) == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert any(k.endswith(".weight_ci") for k in model.state_dict())


def test_config_accepts_peephole_and_lists_it():
    assert make_config(overrides=["model.cell=peephole"]).model.cell == "peephole"
    with pytest.raises(ConfigError, match="Allowed: lstm, gru, peephole"):
        make_config(overrides=["model.cell=rnn"])


def test_classifier_trains_saves_and_loads_identically(tmp_path):
    sets = ["model.cell=peephole", "model.hidden_size=16", "model.embedding_dim=8",
            "model.attention_dim=8", "train.epochs=25", "train.lr=0.02", "train.batch_size=4",
            "train.threads=1", "train.freeze=\"never\"", "train.schedule=\"constant\"",
            "train.patience=0", "data.val_split=0", "tokenizer.kind=\"regex\""]
    texts, labels = POS + NEG, ["pos"] * 6 + ["neg"] * 6
    clf = TextClassifier(make_config(overrides=sets)).fit(texts, labels)
    assert clf.predict(texts) == labels
    clf.save(tmp_path / "m")
    loaded = TextClassifier.load(tmp_path / "m")
    assert loaded.config.model.cell == "peephole"
    probe = texts + ["", "great story", "x " * 50]
    np.testing.assert_array_equal(clf.predict_proba(probe), loaded.predict_proba(probe))
