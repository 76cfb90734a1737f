import pytest
import torch

from textlstm.config import ModelConfig
from textlstm.model import TextLSTM, expected_shapes

VARIANTS = [
    {},
    {"cell": "gru"},
    {"residual": True, "num_layers": 3},
    {"num_layers": 2, "pooling": "attention+max+mean+last", "head_hidden": 16},
    {"bidirectional": False, "pooling": "last"},
    {"cell": "gru", "residual": True, "num_layers": 2, "bidirectional": False, "pooling": "mean"},
]


def batch():
    ids = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 0, 0, 0], [9, 0, 0, 0, 0], [4, 4, 4, 0, 0]])
    return ids, torch.tensor([5, 2, 1, 3])


def make(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=8, embedding_dim=6, attention_dim=5, **kw)
    return TextLSTM(cfg, vocab_size=12, n_labels=3).eval()


@pytest.mark.parametrize("kw", VARIANTS)
def test_shapes_and_packed_equals_one_by_one(kw):
    model = make(**kw)
    ids, lengths = batch()
    logits, att = model(ids, lengths)
    assert logits.shape == (4, 3)
    singles = torch.cat([model(ids[i:i + 1, :lengths[i]], lengths[i:i + 1])[0] for i in range(4)])
    torch.testing.assert_close(logits, singles, atol=1e-6, rtol=1e-5)
    if "attention" in model.poolings:
        assert att.shape == (4, 5)
    else:
        assert att is None


def test_padding_never_changes_a_result():
    model = make()
    ids, lengths = batch()
    wider = torch.cat([ids, torch.zeros(4, 7, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(ids, lengths)[0], model(wider, lengths)[0], atol=1e-6, rtol=1e-5)


def test_attention_sums_to_one_on_real_tokens_and_zero_on_padding():
    model = make()
    ids, lengths = batch()
    _, att = model(ids, lengths)
    torch.testing.assert_close(att.sum(dim=1), torch.ones(4))
    for row, n in enumerate(lengths):
        assert torch.all(att[row, n:] == 0)
        assert torch.all(att[row, :n] > 0)


def test_pretrained_matrix_is_copied_and_pad_row_is_used():
    cfg = ModelConfig(hidden_size=4, embedding_dim=3)
    matrix = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    model = TextLSTM(cfg, 10, 2, embeddings=matrix)
    assert torch.equal(model.embedding.weight.detach(), matrix)
    with pytest.raises(ValueError):
        TextLSTM(cfg, 11, 2, embeddings=matrix)


def test_freeze_embeddings_toggles_grad():
    model = make()
    model.freeze_embeddings(True)
    assert model.embeddings_frozen and not model.embedding.weight.requires_grad
    model.freeze_embeddings(False)
    assert not model.embeddings_frozen


@pytest.mark.parametrize("kw", VARIANTS)
def test_expected_shapes_match_state_dict(kw):
    model = make(**kw)
    assert expected_shapes(model.cfg, 12, 3) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_word_dropout_drops_whole_tokens_in_training_only():
    torch.manual_seed(0)
    emb = torch.rand(64, 30, 6) + 0.5  # no zeros of its own
    drop = make(word_dropout=0.25).word_dropout.train()
    out = drop(emb)
    zeroed = (out == 0).all(dim=-1)
    assert ((out == 0) == zeroed[..., None]).all()  # a token is dropped whole or not at all
    assert 0.2 < zeroed.float().mean() < 0.3
    torch.testing.assert_close(out[~zeroed], emb[~zeroed] / 0.75)
    assert drop.eval()(emb) is emb
    model = make(word_dropout=0.5)  # eval: the same logits as without it
    ids, lengths = batch()
    torch.testing.assert_close(model(ids, lengths)[0], make()(ids, lengths)[0])
