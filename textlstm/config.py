"""Settings as dataclasses, saved with every model. TOML files and `--set section.key=value`
overrides; unknown keys and invalid values are `ConfigError`s that list what is allowed."""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError


def _choice(*values: Any, default: Any) -> Any:
    return field(default=default, metadata={"choices": values})


@dataclass
class DataConfig:
    format: str = _choice("auto", "csv", "tsv", "jsonl", "fasttext", "folder", "text", default="auto")
    text_field: str | None = None  # detected from common names when None
    label_field: str | None = None
    encoding: str = "utf-8"
    on_bad_lines: str = _choice("error", "skip", default="error")
    val_split: float = 0.1  # stratified share of train used for validation when no --val file
    max_labels: int = 0  # 0: refuse over 1,000 labels or >20 labels averaging <2 examples; N: allow up to N
    label_names: list[str] = field(default_factory=list)  # "raw=name" pairs: labels as read -> as shown


@dataclass
class TokenizerConfig:
    kind: str = _choice("spacy", "regex", default="spacy")
    lang: str = "en"
    lower: bool = True
    strip_html: bool = True
    max_tokens: int = 0  # 0: no limit
    truncation: str = _choice("head", "tail", "head+tail", default="head")


@dataclass
class VocabConfig:
    min_freq: int = 1
    max_size: int = 100_000
    add_vector_words: bool = True  # keep words seen once if they have a pretrained vector
    unseen_vector_words: bool = False  # also every word of the vectors file not in the training data
    case_fallback: bool = False  # a token the vocabulary lacks is looked up lowercased (cased models)


@dataclass
class EmbeddingConfig:
    # Vector sources, stacked in order: built-in names (`textlstm vectors list`) or files
    vectors: list[str] = field(default_factory=list)
    format: str = _choice("auto", "glove", "word2vec", "word2vec-bin", "fasttext-vec", "fasttext-bin", default="auto")
    oov_init: str = _choice("random", "zeros", default="random")
    encoder: str | None = None  # a pretrained encoder directory (`textlstm pretrain-lm`) to start from


@dataclass
class ModelConfig:
    embedding_dim: int = 100
    embedding_dropout: float = 0.25
    word_dropout: float = 0.0  # share of whole tokens dropped while training
    cell: str = _choice("lstm", "gru", "peephole", default="lstm")
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3  # between stacked layers and before the classifier head
    residual: bool = False
    pooling: str = "attention+max"  # any of attention, max, mean, last joined with '+'
    attention_dim: int = 64
    head_hidden: int = 0  # 0: linear head; >0: one hidden layer of this size
    quantization: str = _choice("none", "dynamic-int8", default="none")  # applied on load (CPU inference)


@dataclass
class TrainConfig:
    optimizer: str = _choice("adam", "adamw", "sgd", default="adamw")
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    l1: float = 0.0
    epochs: int = 8
    batch_size: int = 64  # per process; under torchrun the global batch is batch_size * world size
    lr_scaling: str = _choice("none", "linear", "sqrt", default="none")  # scale lr with the global batch
    base_batch_size: int = 64  # the global batch size at which `lr` applies unscaled
    schedule: str = _choice("constant", "linear", "cosine", "onecycle", "plateau", default="cosine")
    warmup: float = 0.05  # share of all steps spent warming up (linear and cosine)
    clip_norm: float = 1.0  # 0: no clipping
    label_smoothing: float = 0.0
    class_weights: str = _choice("none", "balanced", default="none")
    freeze: str = _choice("epochs", "always", "never", "plateau", default="epochs")
    freeze_epochs: int = 1  # with freeze="epochs"
    embedding_lr_mult: float = 0.3  # LR of unfrozen embeddings relative to the main LR
    patience: int = 3  # early stopping on validation macro-F1; 0: off
    ema_decay: float = 0.0  # validate and keep a moving average of the weights (e.g. 0.999); 0: off
    eval_every: int = 0  # also validate every K steps; 0: once per epoch
    bucket_chunk: int = 50  # batches per length-sorted chunk
    seed: int = 13
    deterministic: bool = False
    threads: int = 0  # 0: all cores
    device: str = "auto"
    amp: bool = False  # mixed precision: bfloat16 on a CPU that has it natively, float16 on CUDA


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "vocab": VocabConfig,
    "embeddings": EmbeddingConfig,
    "model": ModelConfig,
    "train": TrainConfig,
}
POOLINGS = ("attention", "max", "mean", "last")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    embeddings: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config") -> "Config":
        cfg = cls()
        cfg.update(raw, source)
        return cfg

    def update(self, raw: Mapping[str, Any], source: str = "config") -> "Config":
        """Apply a nested mapping of settings; unknown sections or keys are errors."""
        for section, values in raw.items():
            if section == "preset":
                self.preset = values
                continue
            if section not in SECTIONS:
                raise ConfigError(
                    f"Unknown section {section!r} in {source}. Sections: {', '.join(SECTIONS)}."
                )
            if not isinstance(values, Mapping):
                raise ConfigError(f"Section {section!r} in {source} must be a table of settings.")
            for key, value in values.items():
                set_value(self, f"{section}.{key}", value, source)
        return self

    def override(self, assignments: list[str]) -> "Config":
        """Apply `section.key=value` strings; values are TOML literals or bare strings."""
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"--set expects section.key=value, got {item!r}.")
            key, text = item.split("=", 1)
            set_value(self, key.strip(), parse_literal(text.strip()), "--set")
        return self

    def validate(self) -> "Config":
        m, t = self.model, self.train
        for name in m.pooling.split("+"):
            if name not in POOLINGS:
                raise ConfigError(
                    f"model.pooling {m.pooling!r}: {name!r} is not a pooling. "
                    f"Use {', '.join(POOLINGS)} joined with '+'."
                )
        positives = {"model.embedding_dim": m.embedding_dim, "model.hidden_size": m.hidden_size,
                     "model.num_layers": m.num_layers, "model.attention_dim": m.attention_dim,
                     "train.epochs": t.epochs, "train.batch_size": t.batch_size, "train.lr": t.lr,
                     "train.base_batch_size": t.base_batch_size, "train.bucket_chunk": t.bucket_chunk,
                     "vocab.min_freq": self.vocab.min_freq, "vocab.max_size": self.vocab.max_size}
        for key, value in positives.items():
            if value <= 0:
                raise ConfigError(f"{key} must be positive, got {value}.")
        non_negatives = {"data.max_labels": self.data.max_labels, "model.head_hidden": m.head_hidden, "tokenizer.max_tokens": self.tokenizer.max_tokens,
                         "train.weight_decay": t.weight_decay, "train.l1": t.l1,
                         "train.clip_norm": t.clip_norm, "train.embedding_lr_mult": t.embedding_lr_mult,
                         "train.freeze_epochs": t.freeze_epochs, "train.patience": t.patience,
                         "train.eval_every": t.eval_every, "train.threads": t.threads}
        for key, value in non_negatives.items():
            if value < 0:
                raise ConfigError(f"{key} must be 0 or more, got {value}.")
        for key, value in {"model.dropout": m.dropout, "model.embedding_dropout": m.embedding_dropout,
                           "model.word_dropout": m.word_dropout,
                           "train.label_smoothing": t.label_smoothing, "train.momentum": t.momentum,
                           "data.val_split": self.data.val_split, "train.warmup": t.warmup,
                           "train.ema_decay": t.ema_decay}.items():
            if not 0 <= value < 1:
                raise ConfigError(f"{key} must be in [0, 1), got {value}.")
        return self


def parse_literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_value(cfg: Config, dotted: str, value: Any, source: str = "config") -> None:
    section, _, key = dotted.partition(".")
    if section not in SECTIONS or not key:
        close = difflib.get_close_matches(section, SECTIONS, n=1) if key else []
        if close:
            raise ConfigError(f"Unknown setting {dotted!r} in {source}. Did you mean "
                              f"{close[0]}.{key}? Sections: {', '.join(SECTIONS)}.")
        raise ConfigError(
            f"Unknown setting {dotted!r} in {source}. Sections: {', '.join(SECTIONS)} "
            "(write section.key, e.g. train.lr)."
        )
    obj = getattr(cfg, section)
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" Did you mean {section}.{close[0]}?" if close else ""
        raise ConfigError(
            f"Unknown setting {dotted!r} in {source}.{hint} Keys of [{section}]: {', '.join(fields)}."
        )
    f = fields[key]
    setattr(obj, key, _coerce(f, getattr(obj, key), value, dotted, source))


def _coerce(f: dataclasses.Field, current: Any, value: Any, dotted: str, source: str) -> Any:
    choices = f.metadata.get("choices")
    if choices is not None:
        if value not in choices:
            raise ConfigError(
                f"{dotted} = {value!r} in {source} is not allowed. Allowed: {', '.join(map(str, choices))}."
            )
        return value
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("list") and value is None:
        return []
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and "None" in kind):
        if "None" in kind:
            return None
        raise ConfigError(f"{dotted} in {source} cannot be empty.")
    base = kind.split("|")[0].strip()
    if base == "list[str]":  # a single string is a list of one; none is an empty list
        items = [] if value is None else [value] if isinstance(value, (str, os.PathLike)) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in items):
            return [os.fspath(v) for v in items]
        raise ConfigError(f"{dotted} = {value!r} in {source} must be a string or a list of strings.")
    try:
        if base == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{dotted} = {value!r} in {source} must be a finite number.")
            return number
        if base == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"{dotted} = {value!r} in {source} must be of type {kind}.")


PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}") from None


def make_config(
    preset: str | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Defaults, then a preset, then a TOML file, then `--set` overrides."""
    cfg = Config()
    if preset:
        if preset not in preset_names():
            raise ConfigError(f"Unknown preset {preset!r}. Presets: {', '.join(preset_names())}.")
        cfg.update(load_toml(PRESETS_DIR / f"{preset}.toml"), f"preset {preset}")
        cfg.preset = preset
    if config_file:
        cfg.update(load_toml(config_file), str(config_file))
    cfg.override(overrides or [])
    return cfg.validate()
