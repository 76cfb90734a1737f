"""Ensembles: several trained models as one `TextClassifier` that averages their probabilities.

>>> clf = TextClassifier.ensemble([TextClassifier.load("a"), TextClassifier.load("b")])  # doctest: +SKIP
>>> clf.save("ab")            # an ensemble directory: every command and `TextClassifier.load` take it  # doctest: +SKIP

The members must give the same labels (in any order) for the same task and tokenize alike
(equal tokenizer settings and vocabulary case fallback); they may differ in anything else:
seed, cell, sizes, vectors, vocabulary. The ensemble reads the union of their vocabularies and
translates ids for each member (`textlstm.model.ensemble`), so texts are tokenized once.

    ab/
      ensemble.json   format, labels, task, the members' folders and weights, meta (thresholds)
      members/0/ ...  each member a complete model directory with its own manifest
      README.md       the ensemble's card
      manifest.json   SHA-256 and size of ensemble.json and README.md, and of each member's manifest

Loading verifies the ensemble's manifest, accepts only `members/<i>` folders in order, checks
each member's manifest against the ensemble's, then loads each member as any model (JSON, text
and safetensors only: nothing is unpickled). Saving writes all of it into a temporary sibling
and renames it into place, as a single model's save does.
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_path, clean_stale_temps
from .errors import ConfigError, ModelFileError
from .hashing import file_sha256
from .model.artifact import (ENSEMBLE_FILE, MANIFEST_FILE, MODEL_CARD, carry_over, check_target, dist_version,
                             file_record, label_problem, library_versions, model_dir, read_json)
from .model.ensemble import EnsembleModule, union_vocab
from .model.quantize import is_quantized

TextClassifier = Any  # a textlstm.classifier.TextClassifier: not imported, that module imports this one

FORMAT, FORMAT_VERSION = "textlstm-ensemble", 1
MEMBERS_DIR = "members"
MAX_MEMBERS = 64


def is_ensemble_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


def is_ensemble(clf: Any) -> bool:
    return hasattr(clf, "members_")


def _check_members(members: Sequence[TextClassifier], weights: Sequence[float], sources: Sequence[str | None]) -> None:
    if not 2 <= len(members) <= MAX_MEMBERS:
        raise ConfigError(f"An ensemble takes 2 to {MAX_MEMBERS} models; got {len(members)}.")
    if len(weights) != len(members):
        raise ConfigError(f"Give one weight per member: {len(members)} models, {len(weights)} weights.")
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"Ensemble weights must be positive finite numbers; got {list(weights)}.")
    first = members[0]
    if len(sources) != len(members):
        raise ConfigError(f"Give one source name per member: {len(members)} models, {len(sources)} names.")
    for i, (clf, source) in enumerate(zip(members, sources)):
        clf.check_fitted()
        name = f"member {i} ({source or 'in memory'})"
        if is_ensemble(clf):
            raise ConfigError(f"{name} is itself an ensemble; give its members instead.")
        if clf.config.model.task != first.config.model.task:
            raise ConfigError(f"{name} is a {clf.config.model.task} model, member 0 {first.config.model.task}: "
                              "an ensemble's members share one task.")
        if sorted(clf.classes_) != sorted(first.classes_):
            raise ConfigError(f"{name} has the labels {sorted(clf.classes_)}, member 0 {sorted(first.classes_)}: "
                              "an ensemble's members give the same labels.")
        if clf.tokenizer.to_dict() != first.tokenizer.to_dict():
            differ = sorted(k for k, v in clf.tokenizer.to_dict().items() if first.tokenizer.to_dict().get(k) != v)
            raise ConfigError(f"{name} tokenizes differently from member 0 (tokenizer settings {', '.join(differ)}): "
                              "an ensemble tokenizes each text once, so its members share those settings.")
        if clf.vocab_.case_fallback != first.vocab_.case_fallback:
            raise ConfigError(f"{name} and member 0 differ in vocab.case_fallback; members share it.")


def _member_summary(clf: TextClassifier, weight: float, source: str | None) -> dict[str, Any]:
    m, meta = clf.config.model, clf.meta_ or {}
    return {"source": source, "weight": weight, "cell": m.cell, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "pooling": m.pooling, "vocab_size": len(clf.vocab_),
            "seed": clf.config.train.seed, "best_val_macro_f1": meta.get("best_val_macro_f1"),
            "train_seconds": meta.get("train_seconds")}


def combine(members: Sequence[TextClassifier], weights: Sequence[float] | None = None,
            sources: Sequence[str | None] | None = None) -> TextClassifier:
    """One classifier averaging the members' probabilities (weighted by `weights`, default equal;
    `sources` names each member, e.g. its directory, in errors and the card). Multi-label
    ensembles start from each label's weighted mean threshold over the members; retune them
    with `find_threshold`."""
    members = list(members)
    weights = [1.0] * len(members) if weights is None else list(weights)
    sources = [None] * len(members) if sources is None else [None if s is None else str(s) for s in sources]
    _check_members(members, weights, sources)
    weights = [float(w) for w in weights]
    first = members[0]
    clf = type(first)(copy.deepcopy(first.config))
    clf.classes_ = list(first.classes_)
    clf.vocab_ = union_vocab([m.vocab_ for m in members])
    clf.model_ = EnsembleModule([m.model_ for m in members], [m.vocab_ for m in members],
                                [m.classes_ for m in members], weights=weights, multilabel=first.multilabel).eval()
    if any(is_quantized(m.model_) for m in members):
        clf.config.train.device = "cpu"  # PyTorch's int8 kernels run on the CPU only
    clf.members_ = members
    clf.meta_ = {"ensemble": {"averaging": "probabilities", "weights": weights,
                              "members": [_member_summary(m, w, s) for m, w, s in zip(members, weights, sources)]},
                 "vocab_size": len(clf.vocab_)}
    if clf.multilabel:
        total = sum(weights)
        mean = sum(w * _aligned(m.thresholds_, m.classes_, clf.classes_) for m, w in zip(members, weights)) / total
        clf.meta_["thresholds"] = {c: round(float(t), 2) for c, t in zip(clf.classes_, mean)}
        clf.meta_["threshold_tuning"] = {"mode": "members' mean", "score": None, "on": None}
    return clf


def _aligned(values: np.ndarray, labels: Sequence[str], order: Sequence[str]) -> np.ndarray:
    position = {c: i for i, c in enumerate(labels)}
    return np.asarray([values[position[c]] for c in order], dtype=np.float64)


def networks(clf: TextClassifier) -> list[TextClassifier]:
    """The classifiers whose networks predict: an ensemble's members, else the classifier itself."""
    return list(clf.members_) if is_ensemble(clf) else [clf]


# -- the directory ------------------------------------------------------------------------------
def _card(clf: TextClassifier, name: str) -> str:
    rows = "\n".join(f"| {i} | {s['source'] or '-'} | {s['weight']:g} | {s['cell']} | {s['hidden_size']} | "
                     f"{s['num_layers']} | {s['vocab_size']:,} | "
                     f"{'-' if s['best_val_macro_f1'] is None else format(s['best_val_macro_f1'], '.4f')} |"
                     for i, s in enumerate(clf.meta_["ensemble"]["members"]))
    kind = "each label's probability" if clf.multilabel else "the label distribution"
    return (f"# {name}\n\nA textlstm ensemble of {len(clf.members_)} models: it predicts {kind} as the "
            f"weighted mean of its members'.\n\nLabels: {', '.join(clf.classes_)}\n\n"
            "| member | trained as | weight | cell | hidden | layers | vocabulary | best val macro-F1 |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + rows + "\n\n"
            "Load it with `TextClassifier.load(path)`; every textlstm command takes it as a model.\n")


def save(clf: TextClassifier, directory: str | os.PathLike) -> Path:
    """Write the ensemble directory all at once (the user's own files in an old one are kept)."""
    target = Path(directory)
    target = target.resolve() if target.is_symlink() else target
    check_target(target)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "textlstm_version": dist_version("textlstm") or "0+unknown",
           "library_versions": library_versions(), "labels": list(clf.classes_), "task": clf.config.model.task,
           "members": [{"dir": f"{MEMBERS_DIR}/{i}", "weight": s["weight"], "source": s["source"]}
                       for i, s in enumerate(clf.meta_["ensemble"]["members"])],
           "meta": clf.meta_}
    try:
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"Cannot write {ENSEMBLE_FILE}: meta must be JSON-able ({exc}).") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(target.parent)
    with atomic_path(target) as tmp:
        tmp.mkdir()
        for i, member in enumerate(clf.members_):
            member.save(tmp / MEMBERS_DIR / str(i))
        (tmp / ENSEMBLE_FILE).write_text(text, encoding="utf-8")
        (tmp / MODEL_CARD).write_text(_card(clf, target.name), encoding="utf-8")
        manifest = {"format_version": FORMAT_VERSION, "dirs": [MEMBERS_DIR],
                    "files": {name: file_record(tmp / name) for name in (ENSEMBLE_FILE, MODEL_CARD)},
                    "members": {str(i): file_sha256(tmp / MEMBERS_DIR / str(i) / MANIFEST_FILE)
                                for i in range(len(clf.members_))}}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        carry_over(target, tmp, {ENSEMBLE_FILE, MODEL_CARD, MEMBERS_DIR})
    return target


def _verified_files(root: Path) -> dict:
    manifest = read_json(root / MANIFEST_FILE, "checksums")
    files, members = manifest.get("files"), manifest.get("members")
    if not isinstance(files, dict) or not isinstance(members, dict):
        raise ModelFileError(f"{root / MANIFEST_FILE} lacks its 'files' or 'members' table; the ensemble is corrupt.")
    for name in (ENSEMBLE_FILE, MODEL_CARD):
        path, want = root / name, files.get(name)
        if not isinstance(want, dict) or not path.is_file() or path.stat().st_size != want.get("size") \
                or file_sha256(path) != want.get("sha256"):
            raise ModelFileError(f"{path} failed its checksum in {root / MANIFEST_FILE}: the ensemble "
                                 "is corrupt or was modified.")
    return members


def _read_doc(root: Path) -> dict:
    path = root / ENSEMBLE_FILE
    doc = read_json(path, "the ensemble's settings")
    if doc.get("format") != FORMAT or type(doc.get("format_version")) is not int:
        raise ModelFileError(f"{path} is not a textlstm ensemble (no \"format\": \"{FORMAT}\" with a format_version).")
    if doc["format_version"] > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by textlstm {doc.get('textlstm_version', '?')} with ensemble format "
                             f"{doc['format_version']}; this release reads {FORMAT_VERSION}; upgrade textlstm.")
    entries, meta = doc.get("members"), doc.get("meta")
    if not isinstance(entries, list) or not 2 <= len(entries) <= MAX_MEMBERS or not isinstance(meta, dict):
        raise ModelFileError(f"{path} must list 2 to {MAX_MEMBERS} members and a meta object; the ensemble is corrupt.")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("dir") != f"{MEMBERS_DIR}/{i}":
            raise ModelFileError(f"{path}: member {i} must be the folder {MEMBERS_DIR}/{i}, got {entry!r}.")
        if not isinstance(entry.get("source"), (str, type(None))):
            raise ModelFileError(f"{path}: member {i}'s source must be a string, got {entry.get('source')!r}.")
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and weight > 0):
            raise ModelFileError(f"{path}: member {i} has no positive weight ({weight!r}).")
    if problem := label_problem(doc.get("labels")):
        raise ModelFileError(f"{path}: {problem}; the ensemble is corrupt.")
    return doc


def load(cls: type, directory: str | os.PathLike) -> TextClassifier:
    """Read and verify an ensemble directory written by `save` (see the module's docstring)."""
    root = model_dir(Path(directory))
    pinned = _verified_files(root)
    doc = _read_doc(root)
    members = []
    for i in range(len(doc["members"])):
        sub = root / MEMBERS_DIR / str(i)
        if sub.is_symlink() or not (sub / MANIFEST_FILE).is_file():
            raise ModelFileError(f"{sub} is missing or a link: {root} is not a complete ensemble.")
        if file_sha256(sub / MANIFEST_FILE) != pinned.get(str(i)):
            raise ModelFileError(f"{sub / MANIFEST_FILE} failed its checksum in {root / MANIFEST_FILE}: the "
                                 "member was replaced or modified.")
        if is_ensemble_dir(sub):
            raise ModelFileError(f"{sub} is itself an ensemble; the ensemble is corrupt.")
        members.append(cls.load(sub))
    clf = combine(members, [entry["weight"] for entry in doc["members"]], [e.get("source") for e in doc["members"]])
    if list(clf.classes_) != list(doc["labels"]):
        raise ModelFileError(f"{root / ENSEMBLE_FILE} lists the labels {doc['labels']}, its members "
                             f"{clf.classes_}; the ensemble is corrupt.")
    # what the members say (their summaries) is recomputed from them; of the saved meta, the
    # retuned thresholds of a multi-label ensemble and anything else a user added are kept
    saved = doc["meta"]
    clf.meta_ = {**saved, **clf.meta_}
    if clf.multilabel and "thresholds" in saved:
        clf.meta_["thresholds"], clf.meta_["threshold_tuning"] = saved["thresholds"], saved.get("threshold_tuning")
    if clf.multilabel and not _thresholds_ok(clf.meta_.get("thresholds"), clf.classes_):
        raise ModelFileError(f"{root / ENSEMBLE_FILE}: meta.thresholds must give each label a number in [0, 1].")
    return clf


def _thresholds_ok(thresholds: Any, labels: Sequence[str]) -> bool:
    return isinstance(thresholds, dict) and all(
        isinstance(thresholds.get(c), (int, float)) and 0 <= thresholds[c] <= 1 for c in labels)
