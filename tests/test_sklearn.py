"""The scikit-learn estimator: sklearn's own checks, the contract, and the model-selection tools.

About sklearn's checks: `check_estimator` runs nothing but `check_estimator_cloneable` for an
estimator whose tags say `two_d_array=False` (it warns "Can't test estimator ..."), which is
right for text input. So the checks run here in two ways:

* on the real estimator: every check that needs no data (`DATA_FREE_CHECKS`), plus
  `check_estimators_unfitted`;
* all of sklearn's checks (API + legacy, ~55) on `NumericAsText`, a test-only subclass that
  declares 2-D numeric input and writes each row as a text ("f0_3 f1_-2 ...") before calling
  the real `fit`/`predict_proba`. These exercise the estimator's contract (params, clone,
  fit returns self, classes_, predict/predict_proba consistency, pickling, idempotent fits,
  sample order/subset invariance, training accuracy above 0.83 on blobs).
  The checks of numeric input validation (`check_complex_data`, `check_dtype_object`,
  `check_estimators_nan_inf`, `check_estimators_empty_data_messages`, `check_estimator_sparse_*`,
  `check_n_features_in*`, `check_fit1d`, `check_fit2d_predict1d`, `check_fit2d_1sample`,
  `check_f_contiguous_array_estimator`, `check_readonly_memmap_input`) pass but test the adapter's
  `validate_data`, not text validation, which `test_bad_input_*` below covers instead.
  Skipped by sklearn itself here (pytest shows the reason): `check_array_api_input`
  (SCIPY_ARRAY_API is not set; the estimator is not array-API code anyway) and
  `check_classifier_data_not_an_array` (pandas is not installed in this environment).
"""
import pickle
import warnings

import numpy as np
import pytest
from helpers import POS, TEXTS
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as ec
from sklearn.utils.validation import validate_data

from textlstm.errors import ConfigError, DataError, NotFittedError
from textlstm.sklearn import FitCallback, TextInputError, TextLSTMClassifier

FAST = {"tokenizer.kind": "regex", "train.threads": 1, "train.freeze": "never",
        "train.schedule": "constant", "model.attention_dim": 8, "train.patience": 0}


def tiny(**params) -> TextLSTMClassifier:
    settings = dict(hidden_size=8, embedding_dim=8, epochs=15, lr=0.05, batch_size=4, val_split=0.0,
                    overrides=FAST)
    return TextLSTMClassifier(**{**settings, **params})


class NumericAsText(TextLSTMClassifier):
    """Test-only: numeric rows written as texts, so that sklearn's checks can run."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array, tags.input_tags.one_d_array = True, False
        tags.input_tags.string = False
        return tags

    def _as_texts(self, X, reset):
        X = validate_data(self, X, reset=reset)
        return [" ".join(f"f{j}_{int(np.floor(v))}" for j, v in enumerate(row)) for row in X]

    def fit(self, X, y, **kw):
        return super().fit(self._as_texts(X, True), y, **kw)

    def predict_proba(self, X):
        self._check_fitted()
        return super().predict_proba(self._as_texts(X, False))


NUMERIC = NumericAsText(hidden_size=8, embedding_dim=8, epochs=3, lr=0.1, batch_size=16,
                        val_split=0.0, overrides=FAST)


@ec.parametrize_with_checks([NUMERIC])
def test_sklearn_checks_through_numeric_adapter(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


DATA_FREE_CHECKS = [ec.check_estimator_cloneable, ec.check_estimator_tags_renamed,
                    ec.check_valid_tag_types, ec.check_estimator_repr,
                    ec.check_no_attributes_set_in_init, ec.check_do_not_raise_errors_in_init_or_set_params,
                    ec.check_mixin_order, ec.check_parameters_default_constructible,
                    ec.check_get_params_invariance, ec.check_set_params,
                    ec.check_estimators_unfitted]


@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_checks_on_the_text_estimator(check):
    check("TextLSTMClassifier", TextLSTMClassifier())


def test_check_estimator_skips_text_estimators_so_we_run_checks_ourselves():
    with pytest.warns(ec.SkipTestWarning, match="Can't test estimator"):
        ec.check_estimator(TextLSTMClassifier())


# -- the contract -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    y = ["10"] * 6 + ["9"] * 6  # np.unique order ('10', '9') differs from the model's ('9', '10')
    return tiny().fit(TEXTS, y), y


def test_fit_returns_self_and_keeps_original_labels(fitted):
    est, y = fitted
    assert isinstance(est.classes_, np.ndarray) and list(est.classes_) == ["10", "9"]
    assert list(est.predict(TEXTS)) == y
    assert est.score(TEXTS, y) == 1.0
    int_est = tiny(epochs=2)
    assert int_est.fit(TEXTS, [1] * 6 + [0] * 6) is int_est
    assert int_est.predict(TEXTS[:1]).dtype == int_est.classes_.dtype and int_est.classes_.dtype.kind == "i"


def test_proba_columns_follow_classes(fitted):
    est, _ = fitted
    proba = est.predict_proba(TEXTS)
    assert proba.shape == (12, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (proba[:6, list(est.classes_).index("10")] > 0.5).all()
    np.testing.assert_allclose(np.exp(est.predict_log_proba(TEXTS)), proba, rtol=1e-6)
    assert est.predict([]).shape == (0,)


def test_pickle_and_saved_classifier_give_the_same_proba(fitted, tmp_path):
    est, _ = fitted
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(TEXTS), est.predict_proba(TEXTS))
    from textlstm import TextClassifier
    est.classifier_.save(tmp_path / "m")
    assert TextClassifier.load(tmp_path / "m").predict(POS[:1]) == ["10"]


def test_params_round_trip_and_build_the_config():
    est = TextLSTMClassifier(preset="sentence-sentiment", hidden_size=32, overrides={"model.cell": "gru"},
                             random_state=7)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    cfg = copy.set_params(lr=0.01, epochs=2).build_config()
    assert (cfg.model.hidden_size, cfg.model.cell, cfg.train.lr, cfg.train.epochs, cfg.train.seed) == \
        (32, "gru", 0.01, 2, 7)
    assert cfg.model.dropout == 0.4  # from the preset
    assert TextLSTMClassifier().build_config().train.seed == 13  # None keeps the config's seed


def test_unknown_override_is_a_config_error_at_fit_not_init():
    est = TextLSTMClassifier(overrides={"model.hidden": 3})
    with pytest.raises(ConfigError, match="Keys of \\[model\\]: .*hidden_size"):
        est.fit(TEXTS, [0, 1] * 6)


def test_not_fitted_error_is_both_kinds():
    with pytest.raises(NotFittedError, match="call fit"):
        TextLSTMClassifier().predict(TEXTS)
    with pytest.raises(SklearnNotFittedError):
        TextLSTMClassifier().predict_proba(TEXTS)


@pytest.mark.parametrize("X, y, match", [
    ("one text", [1], "single str"),
    (np.array([["a", "b"], ["c", "d"]]), [0, 1], "must be 1-D"),
    (["fine", 3], [0, 1], r"X\[1\] is int"),
    (TEXTS, [0, 1], "12 texts but y has 2"),
    (TEXTS, [1] * 12, "at least two classes"),
    (TEXTS, np.linspace(0, 1, 12), "Unknown label type"),
    ([], [], "empty"),
])
def test_bad_input_is_a_clear_value_error(X, y, match):
    with pytest.raises(ValueError, match=match) as info:
        tiny().fit(X, y)
    assert isinstance(info.value, (TextInputError, DataError)) or "Unknown label type" in match


def test_same_random_state_same_model_other_state_other_model():
    y = [1] * 6 + [0] * 6
    p1 = tiny(epochs=2, random_state=3).fit(TEXTS, y).predict_proba(TEXTS)
    p2 = tiny(epochs=2, random_state=3).fit(TEXTS, y).predict_proba(TEXTS)
    p3 = tiny(epochs=2, random_state=4).fit(TEXTS, y).predict_proba(TEXTS)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3)


# -- model selection ----------------------------------------------------------------------------
class CountFits(FitCallback):
    def __init__(self):
        self.starts, self.ends, self.epochs = [], 0, 0

    def on_fit_start(self, params, n_texts):
        self.starts.append((params["hidden_size"], n_texts))

    def on_fit_end(self, seconds):
        self.ends += 1

    def on_epoch_end(self, record):
        self.epochs += 1


def test_grid_search_two_settings_three_folds():
    counter = CountFits()
    search = GridSearchCV(tiny(epochs=3), {"hidden_size": [4, 8]}, cv=StratifiedKFold(3),
                          scoring={"macro_f1": "f1_macro", "accuracy": "accuracy"}, refit="macro_f1")
    search.fit(np.array(TEXTS, dtype=object), [1] * 6 + [0] * 6, callbacks=[counter])
    best = search.best_params_["hidden_size"]
    assert [s for s, _ in counter.starts] == [4, 4, 4, 8, 8, 8, best]  # 6 fits, then the refit
    assert [n for _, n in counter.starts] == [8] * 6 + [12] and counter.ends == 7
    assert counter.epochs == 7 * 3
    assert len(search.cv_results_["mean_test_macro_f1"]) == 2
    assert set(search.predict(TEXTS)) <= {0, 1}


def test_cross_val_score_and_pipeline():
    y = ["pos"] * 6 + ["neg"] * 6
    scores = cross_val_score(tiny(epochs=3), TEXTS, y, cv=3, scoring="accuracy")
    assert scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()

    seen = []

    def lowercase(texts):
        seen.append(len(texts))
        return [t.lower() for t in texts]

    pipe = Pipeline([("lower", FunctionTransformer(lowercase)), ("clf", tiny())])
    pipe.set_params(clf__hidden_size=6)
    assert pipe.fit(TEXTS, y).named_steps["clf"].config_.model.hidden_size == 6
    assert list(pipe.predict([t.upper() for t in TEXTS])) == y
    assert seen == [12, 12]


def test_verbose_reports_epochs_on_stderr_and_quiet_is_silent(capsys):
    tiny(epochs=1).fit(TEXTS, [1] * 6 + [0] * 6)
    assert capsys.readouterr() == ("", "")
    tiny(epochs=1, verbose=True).fit(TEXTS, [1] * 6 + [0] * 6)
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch 1/1" in captured.err
