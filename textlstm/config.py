"""Settings as dataclasses, saved with every model. TOML files and `--set section.key=value`
overrides; unknown keys and invalid values are `ConfigError`s that list what is allowed. Every
field says what it is in `metadata["help"]` (and a choice what it allows in "choices"), which
`textlstm.configfile` writes into a TOML file (`textlstm init-config`)."""
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


def _choice(*values: Any, default: Any, help: str = "") -> Any:
    """A setting limited to `values`; `help` is its one-line description (`init-config`)."""
    return field(default=default, metadata={"choices": values, "help": help})


def _setting(default: Any, help: str) -> Any:
    """A setting with its one-line description; a list default is copied for every instance."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    format: str = _choice("auto", "csv", "tsv", "jsonl", "fasttext", "folder", "text", default="auto",
                          help="Data file format; auto: detected from the extension (a directory: a folder per class)")
    text_field: str | None = _setting(None, "Column or JSON key of the text; None: detected from common names")
    label_field: str | None = _setting(None, "Column or JSON key of the label; None: detected from common names")
    encoding: str = _setting("utf-8", "Encoding of the data files")
    on_bad_lines: str = _choice("error", "skip", default="error",
                                help="A malformed line stops the read (error) or is left out and counted (skip)")
    val_split: float = _setting(0.1, "Stratified share of train used for validation when no --val file")
    max_labels: int = _setting(0, "0: refuse over 1,000 labels or >20 labels averaging <2 examples; "
                                  "N: allow up to N")
    label_names: list[str] = _setting([], '"raw=name" pairs: labels as read -> as shown')
    label_sep: str = _setting("", "CSV/TSV: split the label field on this string for several labels per text "
                                  "(e.g. ',' or '|'); '': one label per text")


@dataclass
class TokenizerConfig:
    kind: str = _choice("spacy", "regex", default="spacy",
                        help="spaCy's rule-based tokenizer (spacy.blank(lang)), or a ~25x faster regex")
    lang: str = _setting("en", "Language of spaCy's blank tokenizer (kind = spacy)")
    lower: bool = _setting(True, "Lowercase the text")
    strip_html: bool = _setting(True, "Replace HTML tags with spaces and unescape entities")
    max_tokens: int = _setting(0, "Tokens kept of each text (see truncation); 0: no limit")
    truncation: str = _choice("head", "tail", "head+tail", default="head",
                              help="Which tokens max_tokens keeps: the first, the last, or half of each")


@dataclass
class VocabConfig:
    min_freq: int = _setting(1, "Keep words seen at least this many times in the training data")
    max_size: int = _setting(100_000, "At most this many words (besides <pad> and <unk>), most frequent first")
    add_vector_words: bool = _setting(True, "Keep words seen fewer than min_freq times if they have a pretrained vector")
    unseen_vector_words: bool = _setting(False, "Also every word of the vectors file not in the training data")
    case_fallback: bool = _setting(False, "A token the vocabulary lacks is looked up lowercased (cased models)")


@dataclass
class EmbeddingConfig:
    vectors: list[str] = _setting([], "Vector sources, stacked in order: built-in names "
                                      "(`textlstm vectors list`) or files")
    format: str = _choice("auto", "glove", "word2vec", "word2vec-bin", "fasttext-vec", "fasttext-bin", default="auto",
                          help="Format of the vector files; auto: detected from each file")
    oov_init: str = _choice("random", "zeros", default="random",
                            help="Rows of words without a pretrained vector: random (at the vectors' spread) or zeros")
    encoder: str | None = _setting(None, "A pretrained encoder directory (`textlstm pretrain-lm`) to start from")


@dataclass
class ModelConfig:
    embedding_dim: int = _setting(100, "Embedding size without vectors (vector sources set their own)")
    embedding_dropout: float = _setting(0.25, "Dropout on the embeddings, elementwise")
    word_dropout: float = _setting(0.0, "Share of whole tokens dropped while training")
    cell: str = _choice("lstm", "gru", "peephole", default="lstm",
                        help="Recurrent cell (peephole: an LSTM with diagonal peephole connections)")
    hidden_size: int = _setting(128, "Hidden units of each recurrent layer, per direction")
    num_layers: int = _setting(1, "Stacked recurrent layers")
    bidirectional: bool = _setting(True, "Also read each text backwards")
    dropout: float = _setting(0.3, "Dropout between stacked layers and before the classifier head")
    residual: bool = _setting(False, "Residual connections between stacked layers (projected where sizes differ)")
    pooling: str = _setting("attention+max", "Any of attention, max, mean, last joined with '+'")
    attention_dim: int = _setting(64, "Hidden size of the additive attention")
    head_hidden: int = _setting(0, "0: linear head; >0: one hidden layer of this size")
    quantization: str = _choice("none", "dynamic-int8", default="none",
                                help="Applied on load (CPU inference); `textlstm compress` records it")
    task: str = _choice("auto", "multiclass", "multilabel", default="auto",
                        help="One label per text (softmax) or several (a sigmoid per label); auto: "
                             "multi-label when a text of the training data has several labels")
    thresholds: str = _choice("global", "per-label", "fixed", default="global",
                              help="Multi-label: the decision threshold is tuned on validation, one for "
                                   "all labels (global) or one per label, or is `threshold` (fixed)")
    threshold: float = _setting(0.5, "Multi-label: the fixed threshold, and the start of tuning")


@dataclass
class TrainConfig:
    optimizer: str = _choice("adam", "adamw", "sgd", default="adamw", help="Optimiser (sgd takes momentum)")
    lr: float = _setting(2e-3, "Learning rate (the peak, with warmup)")
    momentum: float = _setting(0.9, "Momentum of sgd")
    weight_decay: float = _setting(1e-4, "Weight decay")
    l1: float = _setting(0.0, "L1 penalty on the weight matrices (not the embeddings); 0: off")
    epochs: int = _setting(8, "Passes over the training data (early stopping may end sooner)")
    batch_size: int = _setting(64, "Per process; under torchrun the global batch is batch_size * world size")
    lr_scaling: str = _choice("none", "linear", "sqrt", default="none", help="Scale lr with the global batch")
    base_batch_size: int = _setting(64, "The global batch size at which `lr` applies unscaled")
    schedule: str = _choice("constant", "linear", "cosine", "onecycle", "plateau", default="cosine",
                            help="Learning-rate schedule")
    warmup: float = _setting(0.05, "Share of all steps spent warming up (linear and cosine)")
    clip_norm: float = _setting(1.0, "Gradient norm clipping; 0: no clipping")
    label_smoothing: float = _setting(0.0, "Label smoothing of the cross-entropy loss")
    class_weights: str = _choice("none", "balanced", default="none",
                                 help="Weight the loss by inverse class frequency (balanced; saved with the model)")
    freeze: str = _choice("epochs", "always", "never", "plateau", default="epochs",
                          help="Pretrained embeddings frozen for freeze_epochs (epochs), always, never, "
                               "or until validation macro-F1 stops improving (plateau)")
    freeze_epochs: int = _setting(1, 'Epochs with frozen embeddings, with freeze = "epochs"')
    embedding_lr_mult: float = _setting(0.3, "LR of unfrozen embeddings relative to the main LR")
    patience: int = _setting(3, "Early stopping on validation macro-F1 after this many epochs without gain; 0: off")
    ema_decay: float = _setting(0.0, "Validate and keep a moving average of the weights (e.g. 0.999); 0: off")
    eval_every: int = _setting(0, "Also validate every K steps; 0: once per epoch")
    bucket_chunk: int = _setting(50, "Batches per length-sorted chunk")
    seed: int = _setting(13, "Seed of data order, initialisation and dropout")
    deterministic: bool = _setting(False, "Deterministic algorithms only (slower where PyTorch has them)")
    threads: int = _setting(0, "CPU threads; 0: all cores")
    device: str = _setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    amp: bool = _setting(False, "Mixed precision: bfloat16 on a CPU that has it natively, float16 on CUDA")
    adversarial: float = _setting(0.0, "Adversarial training: each text's embeddings perturbed along the loss "
                                        "gradient by this norm, relative to the batch's mean token-vector "
                                        "norm, and the loss on it added; 0: off")
    vat: float = _setting(0.0, "Virtual adversarial training: weight of the KL divergence under the most "
                               "sensitive perturbation of unlabelled texts (--unlabelled; else the labelled); 0: off")
    vat_epsilon: float = _setting(1.0, "VAT: the perturbation's norm, relative as for adversarial")
    vat_iterations: int = _setting(1, "VAT: power iterations that find the perturbation")
    entropy_min: float = _setting(0.0, "Entropy minimisation: weight of the prediction entropy of unlabelled "
                                       "texts (--unlabelled; else the labelled); 0: off")
    multilabel_score: str = _choice("micro_f1", "macro_f1", default="micro_f1",
                                    help="Multi-label: the validation F1 that early stopping, the best "
                                         "epoch and threshold tuning maximise")


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
                         "train.eval_every": t.eval_every, "train.threads": t.threads,
                         "train.adversarial": t.adversarial, "train.vat": t.vat, "train.vat_epsilon": t.vat_epsilon,
                         "train.entropy_min": t.entropy_min}
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
        if t.vat_iterations < 1:
            raise ConfigError(f"train.vat_iterations must be at least 1, got {t.vat_iterations}.")
        if not 0 < m.threshold < 1:
            raise ConfigError(f"model.threshold must be between 0 and 1 (exclusive), got {m.threshold}.")
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
    return encoder_embeddings(cfg, preset, config_file, overrides).validate()


def encoder_embeddings(cfg: Config, preset: str | None, config_file=None, overrides: list[str] | None = None) -> Config:
    """A pretrained encoder (`embeddings.encoder`) brings its own embeddings, so the vectors a
    preset names do not apply to it; vectors named by the file or the overrides still do (and
    training refuses them with the reason)."""
    if cfg.embeddings.encoder and preset and cfg.embeddings.vectors:
        named = Config()
        if config_file:
            named.update(load_toml(config_file), str(config_file))
        named.override(overrides or [])
        if not named.embeddings.vectors:
            cfg.embeddings.vectors = []
    return cfg
