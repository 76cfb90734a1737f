"""`init-config`: every setting rendered as commented TOML that reads back to the same Config."""
import dataclasses
import tomllib

import pytest

from textlstm.config import SECTIONS, Config, make_config, preset_names, set_value
from textlstm.configfile import config_toml, toml_value, write_config_toml
from textlstm.errors import ConfigError


def round_trip(cfg: Config, tmp_path, name="c.toml") -> Config:
    path = write_config_toml(tmp_path / name, cfg)
    tomllib.loads(path.read_text())  # valid TOML
    return make_config(config_file=path)


@pytest.mark.parametrize("preset", [None, *preset_names()])
def test_rendered_defaults_and_presets_read_back_equal(preset, tmp_path):
    cfg = make_config(preset=preset)
    assert round_trip(cfg, tmp_path).to_dict() == cfg.to_dict()


def test_presets_are_shipped():
    assert len(preset_names()) >= 4


def test_every_key_of_every_section_is_a_table_entry_with_its_value():
    cfg = make_config(preset="small-sentiment")
    text = config_toml(cfg)
    doc = tomllib.loads(text)
    assert list(doc) == ["preset", *SECTIONS]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            value = getattr(getattr(cfg, section), f.name)
            if value is None:
                assert f.name not in doc[section] and f"# {f.name} = " in text
            else:
                assert doc[section][f.name] == value, (section, f.name)
    assert doc["embeddings"]["vectors"] == ["glove-6b-50d"]  # a list is an array
    assert doc["data"]["label_names"] == []


def test_every_field_has_a_one_line_help_and_choices_are_listed():
    text = config_toml(Config())
    lines = text.splitlines()
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            help_text = f.metadata.get("help", "")
            assert help_text.strip() and "\n" not in help_text, f"{section}.{f.name} has no help"
            key = next(i for i, line in enumerate(lines)
                       if line.startswith((f"{f.name} = ", f"# {f.name} = ")) and i > lines.index(f"[{section}]"))
            comment = lines[key - 1]
            assert comment.startswith("# ") and help_text.rstrip(".") in comment
            if f.metadata.get("choices"):
                assert "Allowed: " + ", ".join(f.metadata["choices"]) in comment


def test_header_says_how_to_use_it_and_defaults_are_shown_where_values_differ(tmp_path):
    text = config_toml(make_config(overrides=["model.hidden_size=64", "train.lr=0.01"]))
    assert "textlstm train DATA --config FILE.toml" in text and "--set" in text
    assert "hidden_size = 64  # default: 128" in text and "lr = 0.01  # default: 0.002" in text
    assert "\nnum_layers = 1\n" in text  # no default note where the value is the default
    written = write_config_toml(tmp_path / "my cfg.toml", Config()).read_text()
    assert "--config '" in written and "my cfg.toml'" in written


def test_none_keys_are_commented_out_and_read_back_as_none(tmp_path):
    cfg = make_config()
    assert cfg.data.text_field is None and cfg.embeddings.encoder is None
    text = config_toml(cfg)
    assert '# text_field = "..."' in text and '# encoder = "..."' in text and '# preset = "..."' in text
    back = round_trip(cfg, tmp_path)
    assert back.data.text_field is None and back.embeddings.encoder is None and back.preset is None


def test_set_values_of_none_defaults_and_odd_strings_round_trip(tmp_path):
    cfg = make_config(overrides=['data.text_field="re\\"view\\ttext\\u007f"', 'data.label_field="ünï"',
                                 'data.label_names=["0=neg", "1=pos"]', 'embeddings.vectors=["a b.txt", "c\\\\d"]',
                                 "train.lr=1e-05", "train.weight_decay=0", "train.threads=2"])
    text = config_toml(cfg)
    assert "label_field = \"ünï\"  # default: unset (None)" in text
    assert round_trip(cfg, tmp_path).to_dict() == cfg.to_dict()


def test_a_none_whose_default_is_not_none_is_written_as_none():
    from textlstm.configfile import _key_lines  # no shipped field has such a default: a made-up one

    @dataclasses.dataclass
    class Section:
        name: str | None = dataclasses.field(default="x", metadata={"help": "h"})

    help_line, line = _key_lines(dataclasses.fields(Section)[0], None, "x")
    assert help_line == "# h." and line.startswith('name = "none"')
    assert tomllib.loads(line)["name"] == "none"
    cfg = make_config(overrides=['data.text_field="t"'])
    set_value(cfg, "data.text_field", "none")  # what reading that line does for a `str | None`
    assert cfg.data.text_field is None


def test_toml_values():
    assert [toml_value(v) for v in (True, 3, 0.5, "a\"b", ["x"], [])] == ["true", "3", "0.5", '"a\\"b"', '["x"]', "[]"]
    with pytest.raises(ConfigError, match="surrogate"):
        toml_value("bad\udcff")


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "sub" / "c.toml"
    write_config_toml(path, Config())  # makes the folder
    path.write_text("mine")
    with pytest.raises(ConfigError, match="already exists.*overwrite"):
        write_config_toml(path, Config())
    assert path.read_text() == "mine"
    write_config_toml(path, make_config(preset="short-topics"), overwrite=True)
    assert make_config(config_file=path).to_dict() == make_config(preset="short-topics").to_dict()
    assert [p.name for p in path.parent.iterdir()] == ["c.toml"]  # no temporary left behind
    with pytest.raises(ConfigError, match="directory"):
        write_config_toml(tmp_path, Config(), overwrite=True)


def test_preset_argument_names_the_preset_in_the_header():
    cfg = make_config(preset="document-sentiment")
    assert "preset 'document-sentiment'" in config_toml(cfg)
    assert "preset 'document-sentiment'" in config_toml(cfg, preset="document-sentiment")
    assert "the defaults" in config_toml(Config())


def test_an_invalid_config_is_refused_before_writing(tmp_path):
    cfg = Config()
    cfg.model.pooling = "median"
    with pytest.raises(ConfigError, match="median"):
        write_config_toml(tmp_path / "c.toml", cfg)
    assert not (tmp_path / "c.toml").exists()
