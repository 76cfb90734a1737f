"""The model directory: everything needed to rebuild a trained model, and nothing executable.

    model/
      config.json        format_version, textlstm and library versions, settings, labels, meta
      vocab.txt          one token per line, in id order
      model.safetensors  the state_dict
      README.md, ...     optional text files of ours (`Artifact.files`: the model card, metrics)
      manifest.json      SHA-256 and size of every file above

Saving replaces the whole directory at once: the new model is written and flushed into a
temporary sibling, the old directory is renamed to `.{name}.backup`, the new one renamed into
place, then the backup removed. A crash leaves the old or the new model complete. Only a crash
between the two renames leaves no `model/`; loading then says where the backup is, and the next
save (or `textlstm.atomic.restore_backup`) puts it back. Files of the user's inside an existing
model directory (plots, notes) are carried over to the new one; ours (those its manifest lists,
or the new artifact brings) are not: the new ones replace them.

Loading reads JSON, plain text and safetensors only: it never unpickles nor runs anything. The
safetensors header is checked with bounded memory, and every size, before any file is hashed.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import safetensors
import safetensors.torch
import torch

from ..atomic import atomic_path, backup_sibling, clean_stale_temps
from ..data.vocab import Vocab
from ..errors import ModelFileError
from ..hashing import file_sha256
from .safetensorscheck import check_safetensors_header

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE, VOCAB_FILE = "config.json", "vocab.txt"
TENSORS_FILE, MANIFEST_FILE = "model.safetensors", "manifest.json"
CHECKED_FILES = (CONFIG_FILE, VOCAB_FILE, TENSORS_FILE)
MODEL_FILES = (*CHECKED_FILES, MANIFEST_FILE)
MODEL_CARD, METRICS_FILE = "README.md", "metrics.jsonl"  # extra files the classifier writes
ENSEMBLE_FILE = "ensemble.json"  # an ensemble directory's own settings file (textlstm.ensemble)
REQUIRED_KEYS = ("format_version", "config", "labels", "meta")
_LIBRARIES = ("torch", "numpy", "spacy", "gensim", "safetensors", "scikit-learn")

ShapeFn = Callable[[dict, int, int], dict[str, tuple]]


@dataclass(eq=False)
class Artifact:
    """A trained model as data: settings, labels (in output order), vocabulary, weights, a JSON-able
    training summary (metrics, history, ...) and extra text files (`{MODEL_CARD: card_text}`)."""

    config: dict
    labels: list[str]
    vocab: Vocab
    tensors: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a model depends on, recorded for bug reports."""
    return {**{name: dist_version(name) for name in _LIBRARIES}, "python": platform.python_version()}


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, 0-d tensors
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def label_problem(labels: Any) -> str | None:
    """What is wrong with a model's label list (saving and loading check the same), or None."""
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return f"labels must be a list of strings, got {labels!r}"
    seen: set[str] = set()
    twice = [x for x in labels if x in seen or seen.add(x)]
    return (f"labels must be unique, but {', '.join(map(repr, dict.fromkeys(twice)))} occur more than once"
            if twice else None)


def extra_file_problem(name: Any) -> str | None:
    """What is wrong with an extra file's name (saving and loading check the same), or None.
    Allowed: a plain file name (no slash, no leading dot) that is not one of MODEL_FILES."""
    if not isinstance(name, str) or not name or name[0] == "." or any(c in name for c in "/\\\0"):
        return f"extra file names must be plain file names (no slash, no leading dot), got {name!r}"
    return f"{name!r} is one of the model's own files ({', '.join(MODEL_FILES)})" if name in MODEL_FILES else None


def _extra_bytes(files: dict[str, str]) -> dict[str, bytes]:
    """The extra files as UTF-8 bytes (written as bytes: no newline translation), checked."""
    out = {name: text.encode("utf-8") if isinstance(text, str) else None for name, text in dict(files).items()}
    for name, data in out.items():
        if problem := (extra_file_problem(name) if data is not None else
                       f"extra file {name!r} must be a str (written as UTF-8), got {type(files[name]).__name__}"):
            raise ModelFileError(f"Cannot save the model: {problem}.")
    return out


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [name for name, t in tensors.items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def config_json(artifact: Artifact) -> str:
    if problem := label_problem(list(artifact.labels)):
        raise ModelFileError(f"Cannot save the model: {problem}.")
    doc = {"format_version": FORMAT_VERSION, "textlstm_version": dist_version("textlstm") or "0+unknown",
           "library_versions": library_versions(), "config": artifact.config,
           "labels": list(artifact.labels), "meta": artifact.meta}
    try:
        return json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"Cannot write {CONFIG_FILE}: config and meta must be JSON-able ({exc}).") from exc


def file_record(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "size": path.stat().st_size}


def _is_model_dir(path: Path) -> bool:
    """A textlstm model or ensemble directory (its settings file names a format version)."""
    for name in (CONFIG_FILE, ENSEMBLE_FILE):
        try:
            if "format_version" in json.loads((path / name).read_text(encoding="utf-8")):
                return True
        except (OSError, ValueError, TypeError):
            pass
    return False


def check_target(target: Path) -> None:
    """Never replace something that is not ours: a file, or a non-empty non-model folder."""
    if target.exists() and not target.is_dir():
        raise ModelFileError(f"{target} exists and is not a directory. Choose another output path.")
    if target.is_dir() and any(target.iterdir()) and not _is_model_dir(target):
        raise ModelFileError(
            f"{target} is a non-empty directory but not a textlstm model (no {CONFIG_FILE} with "
            "format_version); refusing to replace it. Choose another output path or empty it.")


def _write_files(tmp: Path, artifact: Artifact, config_text: str, extra: dict[str, bytes]) -> None:
    tmp.mkdir()
    (tmp / CONFIG_FILE).write_text(config_text, encoding="utf-8")
    artifact.vocab.save(tmp / VOCAB_FILE)
    tensors = {name: t.detach().cpu().contiguous() for name, t in artifact.tensors.items()}
    # Serialised in memory and written by Python, so that a full disk is an OSError like any other.
    (tmp / TENSORS_FILE).write_bytes(safetensors.torch.save(tensors, metadata={"format": "pt"}))
    for name, data in extra.items():
        (tmp / name).write_bytes(data)
    manifest = {"format_version": FORMAT_VERSION,
                "files": {name: file_record(tmp / name) for name in (*CHECKED_FILES, *extra)}}
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def carry_over(old: Path, new: Path, extra: Iterable[str]) -> None:
    """Keep the user's own files (not ours, not temporaries) found in the old model folder. Not our
    extra files: new ones replace them; one no longer written would describe the old model."""
    if not old.is_dir():
        return
    try:  # what the old manifest lists is ours
        doc = read_json(old / MANIFEST_FILE, "checksums")
        listed = set(doc.get("files") or ()) | set(doc.get("dirs") or ())  # an ensemble's lists its folders
    except (ModelFileError, TypeError):
        listed = set()
    for entry in old.iterdir():
        if entry.name in extra and entry.name not in listed:
            log.warning("%s in %s is not the model's own: the new model's %s replaces it", entry.name, old, entry.name)
        if entry.name in {*MODEL_FILES, *extra, *listed} or (entry.name.startswith(".") and ".tmp-" in entry.name):
            continue
        log.info("keeping %s in the new model directory", entry.name)
        if entry.is_dir():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(new / entry.name))


def save_artifact(directory: str | os.PathLike, artifact: Artifact) -> Path:
    """Write `artifact` to `directory`, replacing an earlier model there all at once.

    >>> save_artifact("runs/imdb", Artifact(cfg.to_dict(), labels, vocab, model.state_dict(), {}))  # doctest: +SKIP
    """
    target = Path(directory)
    target = target.resolve() if target.is_symlink() else target
    check_target(target)
    config_text, extra = config_json(artifact), _extra_bytes(artifact.files)
    if bad := non_finite(artifact.tensors):
        raise ModelFileError(f"Refusing to save a model whose weights are not finite ({', '.join(bad[:5])} "
                             "hold NaN or infinity): training diverged; lower train.lr.")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in clean_stale_temps(target.parent):
        log.warning("removed %s left by an interrupted save", stale)
    with atomic_path(target) as tmp:
        _write_files(tmp, artifact, config_text, extra)
        carry_over(target, tmp, extra)
    log.info("saved model to %s", target)
    return target


def model_dir(root: Path) -> Path:
    if root.is_dir():
        return root
    if root.exists():
        raise ModelFileError(f"{root} is not a directory; a model is a directory with {CONFIG_FILE}.")
    backup = backup_sibling(root)
    if backup.is_dir():
        raise ModelFileError(
            f"Model directory {root} is missing: a save was interrupted while replacing it. The "
            f"previous model is intact in {backup}; restore it with `mv '{backup}' '{root}'` or "
            f"textlstm.atomic.restore_backup('{root}').")
    raise ModelFileError(f"Model directory {root} does not exist.")


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelFileError(f"{path} is missing: {path.parent} is not a complete textlstm model ({what}).")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); the model file is corrupt.") from exc
    if not isinstance(doc, dict):
        raise ModelFileError(f"{path} must hold a JSON object, found {type(doc).__name__}.")
    return doc


def _read_config(path: Path) -> dict:
    doc = read_json(path, "settings and labels")
    version = doc.get("format_version")
    if type(version) is not int or version < 1:
        raise ModelFileError(f"{path} has no valid format_version (got {version!r}); it is not a textlstm model.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: this model was written by textlstm {doc.get('textlstm_version', '?')} with format "
            f"{version}; this release reads format {FORMAT_VERSION}; upgrade textlstm.")
    if missing := [key for key in REQUIRED_KEYS if key not in doc]:
        raise ModelFileError(f"{path} lacks the keys {', '.join(missing)}; the model file is corrupt.")
    if problem := label_problem(doc["labels"]):
        raise ModelFileError(f"{path}: {problem}; the model file is corrupt.")
    for key in ("config", "meta"):
        if not isinstance(doc[key], dict):
            raise ModelFileError(f"{path}: {key!r} must be a JSON object, got {type(doc[key]).__name__}.")
    return doc


def _verify_manifest(root: Path) -> list[str]:
    """Cheap checks first (each listed file's name and size against the manifest, the safetensors
    layout against its size), then each file's SHA-256: a forged 20 GB file fails in milliseconds,
    not after a minute of hashing. Returns the extra files' names; old models list none."""
    manifest = root / MANIFEST_FILE
    files = read_json(manifest, "checksums").get("files")
    if not isinstance(files, dict):
        raise ModelFileError(f"{manifest} has no 'files' table; the model file is corrupt.")
    names = [*CHECKED_FILES, *(name for name in files if name not in CHECKED_FILES)]
    for name in names:
        path, want, extra = root / name, files.get(name), name not in CHECKED_FILES
        if extra and (problem := extra_file_problem(name)):
            raise ModelFileError(f"{manifest} lists a file it must not: {problem}; the model file is corrupt.")
        if not path.is_file():
            raise ModelFileError(f"{path} is missing: {root} is not a complete textlstm model"
                                 + (f" ({MANIFEST_FILE} lists it)." if extra else "."))
        if not isinstance(want, dict):
            raise ModelFileError(f"{manifest} lists no checksum for {name}; the model file is corrupt.")
        size = path.stat().st_size
        if size != want.get("size"):
            raise ModelFileError(f"{path} failed its checksum: it has {size} bytes, {MANIFEST_FILE} "
                                 f"says {want.get('size')}; the file is corrupt or was modified.")
    check_safetensors_header(root / TENSORS_FILE)
    for path, want in ((root / name, files[name]) for name in names):
        if file_sha256(path) != want.get("sha256"):
            raise ModelFileError(f"{path} failed its checksum ({path.stat().st_size} bytes): "
                                 "the file is corrupt or was modified.")
    return names[len(CHECKED_FILES):]


def _check_shapes(path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, tuple],
                  vocab_size: int, n_labels: int) -> None:
    problems = [f"missing tensor {name!r}" for name in sorted(set(expected) - set(tensors))]
    problems += [f"unexpected tensor {name!r}" for name in sorted(set(tensors) - set(expected))]
    for name in sorted(set(expected) & set(tensors)):
        want, got = tuple(expected[name]), tuple(tensors[name].shape)
        if want != got:
            rows = want[0] if want and got and want[0] != got[0] else None
            hint = (f"; rows must match the {vocab_size} tokens of {VOCAB_FILE}" if rows == vocab_size else
                    f"; rows must match the {n_labels} labels" if rows == n_labels else "")
            problems.append(f"{name!r} has shape {got}, the config expects {want}{hint}")
    if problems:
        raise ModelFileError(f"{path} does not fit its {CONFIG_FILE} and {VOCAB_FILE}: " + "; ".join(problems) + ".")


def load_artifact(directory: str | os.PathLike, *, expected_shapes: ShapeFn | None = None) -> Artifact:
    """Read and verify a model directory written by `save_artifact`.

    `expected_shapes(config, vocab_size, n_labels)` may return `{tensor name: shape}`; any
    missing, unexpected or mis-shaped tensor is then listed in one `ModelFileError`.
    """
    root = model_dir(Path(directory))
    doc = _read_config(root / CONFIG_FILE)
    # bytes as saved (no newline translation); they passed their checksum, so only a forger's are not UTF-8
    files = {name: (root / name).read_bytes().decode("utf-8", "replace") for name in _verify_manifest(root)}
    path = root / TENSORS_FILE
    vocab = Vocab.load(root / VOCAB_FILE)
    try:
        tensors = safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, RuntimeError, ValueError, OSError) as exc:
        raise ModelFileError(f"Cannot read tensors from {path}: {exc}") from exc
    if bad := non_finite(tensors):
        raise ModelFileError(f"{path}: the weights {', '.join(bad[:5])} hold NaN or infinity; the "
                             "model is corrupt (or was saved by a diverged run) and cannot predict.")
    if expected_shapes is not None:
        try:
            expected = expected_shapes(doc["config"], len(vocab), len(doc["labels"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The settings in {root / CONFIG_FILE} do not describe a model: {exc!r}") from exc
        _check_shapes(path, tensors, expected, len(vocab), len(doc["labels"]))
    return Artifact(doc["config"], doc["labels"], vocab, tensors, doc["meta"], files)
