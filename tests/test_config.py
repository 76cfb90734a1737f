import pytest

from textlstm.config import Config, make_config, preset_names
from textlstm.errors import ConfigError


def test_overrides_parse_toml_literals_and_bare_strings():
    cfg = make_config(overrides=["train.lr=1e-3", "model.cell=gru", "model.bidirectional=false",
                                 "tokenizer.max_tokens=300", 'model.pooling="max+mean"'])
    assert cfg.train.lr == 1e-3 and cfg.model.cell == "gru" and cfg.model.bidirectional is False
    assert cfg.tokenizer.max_tokens == 300 and cfg.model.pooling == "max+mean"


@pytest.mark.parametrize("item, message", [
    ("train.lrr=1", "Keys of [train]: optimizer, lr"),
    ("foo.bar=1", "Sections: data, tokenizer"),
    ("model.cell=rnn", "Allowed: lstm, gru"),
    ("train.epochs=1.5", "must be of type int"),
    ("model.bidirectional=3", "must be of type bool"),
    ("model.pooling=max+median", "'median' is not a pooling"),
    ("model.dropout=1.5", "must be in [0, 1)"),
    ("train.ema_decay=1.0", "train.ema_decay must be in [0, 1)"),
    ("train.batch_size=0", "must be positive"),
    ("nonsense", "section.key=value"),
])
def test_invalid_settings_say_what_is_allowed(item, message):
    with pytest.raises(ConfigError) as exc:
        make_config(overrides=[item])
    assert message in str(exc.value)


def test_dict_round_trip():
    cfg = make_config(overrides=["train.lr=0.01", "embeddings.vectors=/x.txt"])
    assert Config.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


def test_toml_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nhidden_size = 64\n[train]\nlr = 0.5\n")
    cfg = make_config(config_file=path, overrides=["train.lr=0.1"])
    assert cfg.model.hidden_size == 64 and cfg.train.lr == 0.1
    path.write_text("[modle]\nhidden_size = 64\n")
    with pytest.raises(ConfigError, match="Unknown section 'modle'"):
        make_config(config_file=path)
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        make_config(config_file=path)


def test_presets_load_and_are_recorded():
    assert {"sentence-sentiment", "document-sentiment", "short-topics"} <= set(preset_names())
    for name in preset_names():
        assert make_config(name).preset == name
    with pytest.raises(ConfigError, match="Presets:"):
        make_config("nope")


def test_an_encoder_drops_the_presets_vectors_but_not_vectors_you_name(tmp_path):
    """`train --preset sentence-sentiment --encoder DIR`: the encoder brings the embeddings, so the
    preset's GloVe does not apply; vectors from a file or --set stay (and training refuses them)."""
    assert make_config("sentence-sentiment").embeddings.vectors == ["glove-6b-50d"]
    assert make_config("sentence-sentiment", overrides=['embeddings.encoder="enc"']).embeddings.vectors == []
    named = make_config("sentence-sentiment", overrides=['embeddings.encoder="enc"', 'embeddings.vectors=["v.txt"]'])
    assert named.embeddings.vectors == ["v.txt"]
    (tmp_path / "c.toml").write_text('[embeddings]\nvectors = ["w.txt"]\n')
    assert make_config("sentence-sentiment", tmp_path / "c.toml", ['embeddings.encoder="enc"']).embeddings.vectors == ["w.txt"]
