"""`textlstm search`: grid or random search over any configuration keys, scored by macro-F1
with stratified k-fold cross-validation (or on a validation file), through `TextLSTMClassifier`
and scikit-learn's `GridSearchCV`.

A grid file holds dotted keys with lists of values, or the same as tables; a single value is
fixed for every setting:

    "model.hidden_size" = [64, 128]
    [train]
    lr = [1e-3, 3e-3]
    epochs = 2

Multi-label data (several labels per text) is searched the same way: macro-F1 over the labels
and subset accuracy, at each fit's tuned thresholds, with folds stratified by each text's
rarest label (`data.multilabel.strata`).

Every key and value is checked against the configuration before anything trains. Each fit
re-tokenizes its training texts and re-reads the vectors file (a few seconds per fit for a
100k-word file), so that no fold sees words from its held-out part.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV, ParameterGrid, ParameterSampler, PredefinedSplit, StratifiedKFold

from ..atomic import check_output_dir, remove_path
from ..callbacks import Callback
from ..classifier import TextClassifier
from ..config import Config, load_toml, set_value
from ..data import multilabel
from ..data.readers import label_order, read_dataset
from ..errors import ConfigError, DataError, TrainingError
from ..sklearn import TextLSTMClassifier
from .searchreport import SearchJob, SearchResult, Trial, write_outputs


# -- the grid ---------------------------------------------------------------------------------
def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """The grid file as {dotted key: values}; nested tables are flattened."""
    raw = load_toml(path)
    grid: dict[str, list[Any]] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, dotted + ".")
            elif isinstance(value, list):
                if not value:
                    raise ConfigError(f"{dotted} in {path} has an empty list of values.")
                grid[dotted] = value
            else:
                grid[dotted] = [value]
    walk(raw, "")
    if not grid:
        raise ConfigError(f"{path} holds no settings. Write e.g. \"model.hidden_size\" = [64, 128].")
    return grid


def candidates(grid: dict[str, list[Any]], n_random: int | None, seed: int) -> list[dict[str, Any]]:
    """Every combination, or `n_random` of them sampled without replacement."""
    if n_random is None:
        return list(ParameterGrid(grid))
    if n_random < 1:
        raise ConfigError(f"--random must be at least 1, got {n_random}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "grid is smaller than n_iter": take it all
        return list(ParameterSampler(grid, n_random, random_state=seed))


def check_candidates(base: Config, settings: list[dict[str, Any]], source: str) -> list[Config]:
    """Each setting applied to the base configuration; any bad key or value is a ConfigError
    raised here, before training starts."""
    configs = []
    for setting in settings:
        cfg = copy.deepcopy(base)
        for key, value in setting.items():
            set_value(cfg, key, value, source)
        try:
            configs.append(cfg.validate())
        except ConfigError as exc:
            raise ConfigError(f"The setting {setting} from {source} is invalid: {exc}") from None
    return configs


# -- the search -------------------------------------------------------------------------------
def _read(path: Path, cfg: Config) -> tuple[list[str], list[str]]:
    examples, _ = read_dataset(path, cfg.data)
    return [e.text for e in examples], [e.label for e in examples]


class _Folds:
    """Precomputed (train, test) folds with the splitter interface GridSearchCV takes."""

    def __init__(self, folds: list[tuple[np.ndarray, np.ndarray]]):
        self.folds = folds

    def split(self, X=None, y=None, groups=None):
        return iter(self.folds)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return len(self.folds)


def _splitter(job: SearchJob, labels: list, n_val: int, seed: int):
    if n_val:
        return PredefinedSplit([-1] * (len(labels) - n_val) + [0] * n_val)
    if labels and isinstance(labels[0], tuple):  # multi-label: folds stratified by the rarest label
        groups = multilabel.strata(labels, min_count=job.cv)
        if job.cv < 2 or len(labels) < 2 * job.cv:
            raise DataError(f"--cv {job.cv} needs at least 2 folds and {2 * job.cv} texts; {job.data} has "
                            f"{len(labels)}. Lower --cv.")
        kfold = StratifiedKFold(job.cv, shuffle=True, random_state=seed)
        return _Folds(list(kfold.split(np.zeros(len(labels)), groups)))
    smallest = min(np.unique(labels, return_counts=True)[1])
    if job.cv < 2 or smallest < job.cv:
        raise DataError(f"--cv {job.cv} needs at least 2 folds and at least {job.cv} examples of "
                        f"every class; the rarest class of {job.data} has {smallest}. Lower --cv.")
    return StratifiedKFold(job.cv, shuffle=True, random_state=seed)


def _check_out(job: SearchJob) -> None:
    check_output_dir(job.out, job.overwrite)


def run_search(cfg: Config, job: SearchJob, callbacks: list[Callback] | None = None) -> SearchResult:
    """Cross-validate every setting of the grid on `job.data`; write results.csv, results.png
    and best.toml into `job.out` (and `model/`, trained on all the data, with `job.refit`)."""
    _check_out(job)
    grid = load_grid(job.grid)
    settings = candidates(grid, job.n_random, cfg.train.seed)
    configs = check_candidates(cfg, settings, str(job.grid))
    texts, labels = _read(job.data, cfg)
    val = _read(job.val, cfg) if job.val else ([], [])
    y = labels + val[1]
    if multilabel.resolve_task(y, cfg.model.task) == "multilabel":
        # the estimator sees a 0/1 indicator matrix: f1_macro and accuracy (subset accuracy) score it
        labels, val = multilabel.as_tuples(labels), (val[0], multilabel.as_tuples(val[1]))
        classes = label_order({lab for labs in labels + val[1] for lab in labs})
        y = multilabel.multi_hot(labels + val[1], {c: i for i, c in enumerate(classes)}).astype(np.int64)
    cv = _splitter(job, labels, len(val[0]), cfg.train.seed)
    for cb in callbacks or []:
        getattr(cb, "on_search_start", lambda *a: None)(len(settings), cv.get_n_splits(), settings)
    start = time.perf_counter()
    results = _cross_validate(cfg, job, settings, texts + val[0], y, cv, callbacks)
    keys = [k for k, values in grid.items() if len(values) > 1]
    trials = _trials(results, settings, keys, cv.get_n_splits())
    result = SearchResult(keys, trials, configs[trials[0].index], cv.get_n_splits(),
                          time.perf_counter() - start)
    job.out.mkdir(parents=True, exist_ok=True)
    result.files = write_outputs(result, job)
    if job.refit:
        result.model_dir = _refit(result, job, texts, labels, val, callbacks)
    elif job.overwrite:
        remove_path(job.out / "model")  # a model from an earlier search would not match best.toml
    return result


def _cross_validate(cfg: Config, job: SearchJob, settings: list[dict[str, Any]], texts: list[str],
                    labels: Any, cv, callbacks) -> dict[str, Any]:
    """GridSearchCV's `cv_results_` for the settings; a fit that fails scores NaN."""
    search = GridSearchCV(TextLSTMClassifier(config=cfg, vectors=job.vectors), {"overrides": settings},
                          scoring={"macro_f1": "f1_macro", "accuracy": "accuracy"}, cv=cv,
                          refit=False, error_score=np.nan)
    with warnings.catch_warnings():  # failed settings show in the table instead
        warnings.simplefilter("ignore", FitFailedWarning)
        warnings.filterwarnings("ignore", "One or more of the test scores are non-finite")
        try:
            search.fit(texts, labels, callbacks=list(callbacks or []))
        except ValueError as exc:
            if "fits failed" not in str(exc):
                raise
            last = str(exc).strip().splitlines()[-1]
            raise TrainingError(f"Every fit of the search failed; the last error: {last}") from None
    return search.cv_results_


def _trials(res: dict[str, Any], settings: list[dict], keys: list[str], n_splits: int) -> list[Trial]:
    def folds(metric: str, i: int) -> list[float]:
        return [float(res[f"split{k}_test_{metric}"][i]) for k in range(n_splits)]

    trials = [Trial(i, {k: setting[k] for k in keys}, folds("macro_f1", i), folds("accuracy", i),
                    float(res["mean_fit_time"][i])) for i, setting in enumerate(settings)]
    return sorted(trials, key=lambda t: -t.mean if not math.isnan(t.mean) else math.inf)


def _refit(result: SearchResult, job: SearchJob, texts, labels, val, callbacks) -> Path:
    """The best configuration trained on all of DATA (the --val file, if any, picks its best
    epoch as in `textlstm train --val`), saved as a normal model directory."""
    for cb in callbacks or []:
        getattr(cb, "on_refit_start", lambda *a: None)(len(texts))
    clf = TextClassifier(copy.deepcopy(result.best_config))
    clf.fit(texts, labels, val_texts=val[0] or None, val_labels=val[1] or None,
            vectors=job.vectors, callbacks=callbacks)
    clf.meta_["search"] = {"grid": str(job.grid), "data": str(job.data), "n_splits": result.n_splits,
                           "best": result.best.params, "cv_macro_f1_mean": result.best.mean,
                           "cv_macro_f1_std": result.best.std}
    return clf.save(job.out / "model")
