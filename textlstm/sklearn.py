"""`TextLSTMClassifier`: `TextClassifier` as a scikit-learn estimator, so that `GridSearchCV`,
`RandomizedSearchCV`, `cross_val_score` and `Pipeline` work on lists of texts.

>>> from sklearn.model_selection import GridSearchCV                       # doctest: +SKIP
>>> est = TextLSTMClassifier(preset="sentence-sentiment", vectors="w2v.txt.gz", epochs=3)
>>> search = GridSearchCV(est, {"hidden_size": [64, 128]}, cv=3, scoring="f1_macro")
>>> search.fit(texts, labels).best_params_                                 # doctest: +SKIP

(Absolute imports keep `import sklearn` inside this package pointing at scikit-learn.)
"""
from __future__ import annotations

import copy
import os
import sys
import time
from typing import Any, Iterable, Mapping

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from .callbacks import Callback, EpochLines
from .classifier import TextClassifier
from .config import Config, make_config, set_value
from .errors import ConfigError, NotFittedError, TextInputError
from .thresholds import decide

# Estimator parameter -> configuration key. None means "the preset's / default value".
SETTINGS = {
    "hidden_size": "model.hidden_size", "num_layers": "model.num_layers", "cell": "model.cell",
    "dropout": "model.dropout", "embedding_dim": "model.embedding_dim", "lr": "train.lr",
    "epochs": "train.epochs", "batch_size": "train.batch_size",
    "weight_decay": "train.weight_decay", "val_split": "data.val_split",
    "adversarial": "train.adversarial", "vat": "train.vat", "entropy_min": "train.entropy_min",
}


class FitCallback(Callback):
    """A training `Callback` that also hears when each `fit` of the estimator starts and ends
    (a search uses it to count trials and folds)."""

    def on_fit_start(self, params: dict[str, Any], n_texts: int) -> None: ...
    def on_fit_end(self, seconds: float) -> None: ...


class TextLSTMClassifier(ClassifierMixin, BaseEstimator):
    """A BiLSTM text classifier with scikit-learn's estimator API. X is a list (or 1-D array or
    pandas Series) of texts; y holds labels of any hashable type, returned as given.

    Settings are applied in order: defaults, `preset`, `config` (a `Config`, or a TOML file as
    for `textlstm train --config`), `overrides` (a dict of any configuration keys, e.g.
    `{"model.pooling": "max", "train.freeze": "never"}`), then the explicit parameters below
    that are not None, then `random_state` (-> `train.seed`; None keeps the config's seed, so
    fits are repeatable by default).

    Parameters: `preset`, `config`, `vectors` (pretrained vectors file), `overrides`,
    `hidden_size`, `num_layers`, `cell`, `dropout`, `embedding_dim` (model.*), `lr`, `epochs`,
    `batch_size`, `weight_decay` (train.*), `val_split` (data.val_split: the share of each
    training set held out to pick the best epoch; 0 keeps the last), `adversarial`, `vat`,
    `entropy_min` (train.*: adversarial training, virtual adversarial training, entropy
    minimisation), `unlabelled` (texts, a list or a file, for vat and entropy_min),
    `random_state`, `verbose` (a progress display on stderr).

    Fitted attributes: `classes_` (numpy array of the original labels, the column order of
    `predict_proba`), `classifier_` (the trained `TextClassifier`: `.save(dir)` writes a normal
    model directory), `config_` (the `Config` used), `fit_seconds_`. `from_model(directory)`
    gives a fitted estimator around a saved model or ensemble.
    """

    def __init__(self, *, preset: str | None = None, config: Config | str | os.PathLike | None = None,
                 vectors: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                 hidden_size: int | None = None, num_layers: int | None = None, cell: str | None = None,
                 dropout: float | None = None, embedding_dim: int | None = None, lr: float | None = None,
                 epochs: int | None = None, batch_size: int | None = None,
                 weight_decay: float | None = None, val_split: float | None = None,
                 adversarial: float | None = None, vat: float | None = None, entropy_min: float | None = None,
                 unlabelled: Any = None,
                 random_state: int | np.random.RandomState | None = None, verbose: bool = False):
        self.preset = preset
        self.config = config
        self.vectors = vectors
        self.overrides = overrides
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.val_split = val_split
        self.adversarial = adversarial
        self.vat = vat
        self.entropy_min = entropy_min
        self.unlabelled = unlabelled
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.string = True
        return tags

    # -- settings -----------------------------------------------------------------------------
    def build_config(self) -> Config:
        """The validated `Config` that `fit` trains with (nothing is trained)."""
        if isinstance(self.config, Config):
            if self.preset:
                raise ConfigError("Give either preset or a Config object as config, not both "
                                  "(a Config already holds every setting).")
            cfg = copy.deepcopy(self.config)
        else:
            cfg = make_config(self.preset, self.config)
        for key, value in (self.overrides or {}).items():
            set_value(cfg, key, value, "overrides")
        for name, key in SETTINGS.items():
            value = getattr(self, name)
            if value is not None:
                set_value(cfg, key, value, f"parameter {name}")
        if self.random_state is not None:
            seed = self.random_state
            if not isinstance(seed, (int, np.integer)):
                seed = int(check_random_state(seed).randint(2**31 - 1))
            cfg.train.seed = int(seed)
        return cfg.validate()

    # -- training -----------------------------------------------------------------------------
    def fit(self, X: Iterable[str], y: Iterable[Any], *,
            callbacks: list[Callback] | None = None) -> "TextLSTMClassifier":
        """Train on texts `X` with labels `y`. `callbacks` (a fit parameter, so that searches
        pass it through without cloning it) receive training progress; `FitCallback`s also
        hear `on_fit_start(params, n_texts)` and `on_fit_end(seconds)`."""
        texts = _texts(X, "X")
        if _is_multilabel(y):
            return self._fit_multilabel(texts, y, callbacks)
        labels = column_or_1d(np.asarray(y), warn=True)
        if len(labels) != len(texts):
            raise TextInputError(f"X has {len(texts)} texts but y has {len(labels)} labels.")
        check_classification_targets(labels)
        classes = np.unique(labels)
        if len(classes) < 2:
            raise TextInputError(f"Training needs at least two classes; y has only one class "
                                 f"({classes[0]!r}).")
        names = [str(c) for c in classes]
        if len(set(names)) < len(names):
            raise TextInputError(f"Labels {list(classes)} are distinct values with equal text; "
                                 "use labels whose str() differs.")
        return self._train(texts, [str(v) for v in labels], classes, multilabel=False, callbacks=callbacks)

    def _fit_multilabel(self, texts: list[str], y: Any, callbacks) -> "TextLSTMClassifier":
        """y as lists of labels per text (what MultiLabelBinarizer takes) or a 0/1 indicator
        matrix `(n_texts, n_labels)`: `classes_` are the labels (sorted), or the column numbers."""
        if getattr(y, "ndim", 1) == 2:
            matrix = np.asarray(y)
            if not np.isin(matrix, (0, 1)).all():
                raise TextInputError("A 2-D y must be a 0/1 indicator matrix (n_texts, n_labels).")
            classes = np.arange(matrix.shape[1])
            lists = [tuple(str(j) for j in np.flatnonzero(row)) for row in matrix]
        else:
            lists = [tuple(str(x) for x in labs) for labs in y]
            classes = np.asarray(sorted({x for labs in y for x in labs}, key=str), dtype=object)
        if len(lists) != len(texts):
            raise TextInputError(f"X has {len(texts)} texts but y has {len(lists)} rows of labels.")
        if len(classes) < 2:
            raise TextInputError(f"Multi-label training needs at least two labels; y has {len(classes)}.")
        return self._train(texts, lists, classes, multilabel=True, callbacks=callbacks)

    def _train(self, texts: list[str], labels: list, classes: np.ndarray, *, multilabel: bool,
               callbacks) -> "TextLSTMClassifier":
        """Fit the `TextClassifier` on labels as it takes them (strings, or tuples of strings),
        with the fit callbacks and the timing; `classes_` are `classes` as given."""
        callbacks = list(callbacks or []) + self._display()
        for cb in callbacks:
            getattr(cb, "on_fit_start", lambda *a: None)(self.get_params(), len(texts))
        start = time.perf_counter()
        cfg = self.build_config()
        if multilabel:
            cfg.model.task = "multilabel"  # even if every text happens to have one label
        clf = TextClassifier(cfg).fit(texts, labels, vectors=self.vectors, callbacks=callbacks,
                                      unlabelled_texts=self._unlabelled_texts())
        self._adopt(clf, classes, multilabel)
        self.fit_seconds_ = time.perf_counter() - start
        for cb in callbacks:
            getattr(cb, "on_fit_end", lambda *a: None)(self.fit_seconds_)
        return self

    def _adopt(self, clf: TextClassifier, classes: np.ndarray, multilabel: bool) -> None:
        self.classifier_, self.config_, self.classes_, self.multilabel_ = clf, clf.config, classes, multilabel
        self._columns = np.asarray([clf.classes_.index(str(c)) for c in classes])

    @classmethod
    def from_model(cls, directory: str | os.PathLike) -> "TextLSTMClassifier":
        """A fitted estimator around a saved model or ensemble directory (`TextClassifier.load`):
        `classes_` are its labels (strings), and predict / predict_proba / score work as after
        `fit`. `fit` trains anew with the estimator's parameters (the defaults)."""
        clf = TextClassifier.load(directory)
        est = cls()
        est._adopt(clf, np.asarray(clf.classes_, dtype=object), clf.multilabel)
        est.fit_seconds_ = 0.0
        return est

    def _unlabelled_texts(self) -> list[str] | None:
        """`unlabelled` as texts: a list as it is, a path read as `textlstm train --unlabelled` reads it."""
        if self.unlabelled is None:
            return None
        if isinstance(self.unlabelled, (str, os.PathLike)):
            from .data.readers import read_texts
            return [ex.text for ex in read_texts(self.unlabelled)]
        return _texts(self.unlabelled, "unlabelled")

    def _display(self) -> list[Callback]:
        if not self.verbose:
            return []
        return [EpochLines(sys.stderr, self.build_config().train.epochs)]

    # -- prediction ---------------------------------------------------------------------------
    def predict_proba(self, X: Iterable[str]) -> np.ndarray:
        """Class probabilities `(n_texts, n_classes)`, columns in `classes_` order."""
        self._check_fitted()
        return self.classifier_.predict_proba(_texts(X, "X", allow_empty=True))[:, self._columns]

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call "
                                          "fit(X, y) first.")

    def predict_log_proba(self, X: Iterable[str]) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Iterable[str]) -> np.ndarray:
        """Labels as given to `fit` (same type), one per text; multi-label: the 0/1 indicator
        matrix `(n_texts, len(classes_))` of the labels at or above their thresholds
        (`MultiLabelBinarizer(classes=clf.classes_).inverse_transform` lists them)."""
        proba = self.predict_proba(X)  # first: it raises the not-fitted error
        if getattr(self, "multilabel_", False):
            return decide(proba, self.classifier_.thresholds_[self._columns]).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Iterable[str], y: Any, sample_weight: Any = None) -> float:
        """Accuracy; multi-label: subset accuracy (every label of a text right), y as in `fit`."""
        if not getattr(self, "multilabel_", False):
            return super().score(X, y, sample_weight)
        if getattr(y, "ndim", 1) == 2:
            truth = np.asarray(y, dtype=np.int64)
        else:
            index = {str(c): i for i, c in enumerate(self.classes_)}
            truth = np.zeros((len(y), len(self.classes_)), dtype=np.int64)
            for row, labs in enumerate(y):
                truth[row, [index[str(x)] for x in labs]] = 1
        return float(accuracy_score(truth, self.predict(X), sample_weight=sample_weight))


def _is_multilabel(y: Any) -> bool:
    """y holds several labels per text: a 2-D array, or rows that are lists, tuples or sets."""
    if getattr(y, "ndim", 1) == 2 and getattr(y, "shape", (0, 1))[1] > 1:
        return True
    try:
        first = next(iter(y))
    except (TypeError, StopIteration):
        return False
    return isinstance(first, (list, tuple, set, frozenset))


def _texts(X: Any, name: str, allow_empty: bool = False) -> list[str]:
    """X as a list of str, or a `TextInputError` that says what was received."""
    if isinstance(X, (str, bytes)):
        raise TextInputError(f"{name} must be a list of texts, got a single {type(X).__name__}; "
                             f"wrap it in a list: [{name}].")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) != 1:
        raise TextInputError(f"{name} must be 1-D (one text per sample), got shape {tuple(shape)}. "
                             "Pass a list, a 1-D array or a pandas Series of strings, e.g. df['text'].")
    try:
        texts = list(X)
    except TypeError:
        raise TextInputError(f"{name} must be a list of texts, got {type(X).__name__}.") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TextInputError(f"{name}[{i}] is {type(text).__name__} {text!r:.60}, not a string: "
                                 f"{name} must hold one text (str) per sample.")
    if not texts and not allow_empty:
        raise TextInputError(f"{name} is empty: fit needs at least one text per class.")
    return texts
