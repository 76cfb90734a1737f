"""The package layout holds (folders in workflow order, imports flowing one way, no circles,
display code in one place, small modules, the import paths of 0.1), and each decision has one
owner: settings are resolved once and never changed in the caller's hands."""
import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "textlstm"
# Floors, upstream first: a module imports only from its own floor's package or a lower floor.
FLOORS = [{"errors", "config", "callbacks", "atomic", "locks", "hashing", "metrics", "_compat",
           "configfile", "notebook", "tensorboard", "thresholds"},
          {"data"}, {"embeddings"}, {"model"}, {"training"}, {"classifier", "ensemble", "sklearn"}, {"jobs"}, {"serve"},
          {"display"}, {"cli"}, {"__init__"}]
DISPLAY_ONLY = {"rich", "textlstm.display"}  # what only display.py and the CLI may import


def modules() -> dict[str, Path]:
    """Dotted name -> file; a package's `__init__.py` goes by the package's name."""
    named = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        named[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return named


def imports(name: str, path: Path) -> set[str]:
    """Every module (textlstm's resolved, others by top name) that `name` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from . import x` imports module x
    return {m for m in found if not m.startswith("textlstm") or m in modules()} - {name}


def floor(name: str) -> int:
    top = name.split(".")[1] if name.count(".") else "__init__"  # "textlstm" itself is the top floor
    return next(i for i, f in enumerate(FLOORS) if top in f)


def test_every_package_folder_is_in_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("*.py")}
    assert folders <= listed, folders - listed
    assert len({f for f in folders if f.count(".") == 1}) >= 5  # subpackages


def test_imports_flow_upstream_and_never_in_a_circle():
    mods = modules()
    graph = {name: {m for m in imports(name, path) if m in mods} for name, path in mods.items()}
    for name, deps in graph.items():
        if name == "textlstm._compat":
            continue  # imports by name at run time only
        for dep in deps:
            same_package = name.split(".")[:2] == dep.split(".")[:2]
            assert same_package or floor(dep) <= floor(name), f"{name} imports {dep}, downstream of it"
    # no circle: a depth-first search finds no back edge (lazy imports inside functions count too)
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for dep in graph[node]:
            if node.startswith(dep + "."):
                continue  # a module's own package: Python has begun it already
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join(trail + [dep]))
            if dep not in state:
                visit(dep, trail + [dep])
        state[node] = 2
    for name in graph:
        if name not in state:
            visit(name, [name])


def test_only_the_cli_and_display_import_display_code():
    for name, path in modules().items():
        if name == "textlstm.display" or name.startswith("textlstm.cli"):
            continue
        bad = {m for m in imports(name, path) if m.split(".")[0] in DISPLAY_ONLY or m in DISPLAY_ONLY}
        assert not bad, f"{name} imports display code: {bad}"


def test_no_module_reaches_for_another_modules_private_names():
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("textlstm")):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "_compat"]
                assert not private, f"{name} imports {private} from {node.module}"


def test_modules_stay_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert max(sizes.values()) <= 400, {k: v for k, v in sizes.items() if v > 400}


def test_the_import_paths_of_0_1_still_work():
    import textlstm.train
    from textlstm.export import OnnxClassifier
    from textlstm.tokenize import Tokenizer
    from textlstm.train import Callback, Trainer  # noqa: F401
    from textlstm.vocab import Vocab

    from textlstm import TextClassifier, make_config  # noqa: F401
    from textlstm.data import read_examples  # noqa: F401
    from textlstm.embeddings import load_vectors  # noqa: F401
    from textlstm.jobs.export import OnnxClassifier as moved
    from textlstm.model import TextLSTM  # noqa: F401
    from textlstm.sklearn import TextLSTMClassifier  # noqa: F401
    from textlstm.training import Trainer as new_trainer

    assert Trainer is new_trainer and OnnxClassifier is moved
    assert textlstm.train.__spec__.name == "textlstm.training.trainer"  # the module keeps its own spec
    assert Vocab.__module__ == "textlstm.data.vocab" and Tokenizer.__module__ == "textlstm.data.tokenize"
    from textlstm._compat import MOVED
    for old, new in MOVED.items():
        assert __import__(f"textlstm.{old}", fromlist=["x"]) is sys.modules[f"textlstm.{new}"]


def test_python_dash_m_textlstm_cli_runs():
    res = subprocess.run([sys.executable, "-m", "textlstm.cli", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 0 and "train" in res.stdout


def test_a_model_directory_saved_before_the_move_loads_and_predicts_the_same():
    from textlstm import TextClassifier

    expected = json.loads((ROOT / "tests/resources/model-v0.1-premove.expected.json").read_text())
    clf = TextClassifier.load(ROOT / "tests/resources/model-v0.1-premove")
    got = clf.predict_proba(expected["texts"])
    np.testing.assert_allclose(got, expected["proba"], atol=1e-6)


def test_a_checkpoint_saved_before_the_move_resumes(tmp_path):
    import shutil

    from helpers import ROWS

    from textlstm import TextClassifier, make_config

    ck = tmp_path / "ck"
    shutil.copytree(ROOT / "tests/resources/checkpoint-v0.1-premove", ck)
    cfg = make_config(overrides=["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=4",
                                 "train.epochs=3", "data.val_split=0.0", "train.seed=3", "train.threads=1"])
    texts, labels = zip(*ROWS)
    clf = TextClassifier(cfg).fit(list(texts), list(labels), checkpoint_dir=ck, resume=True)
    assert [h["epoch"] for h in clf.meta_["history"]] == [1, 2, 3]  # two restored, one trained


def test_training_never_changes_the_callers_settings_and_saves_what_it_trained_with(tmp_path):
    from helpers import ROWS

    from textlstm import TextClassifier, make_config

    cfg = make_config(overrides=["model.hidden_size=8", "model.embedding_dim=8", "train.epochs=1",
                                 "train.threads=1", "data.val_split=0"])
    before = cfg.to_dict()
    texts, labels = zip(*ROWS)
    clf = TextClassifier(cfg).fit(list(texts), list(labels))
    assert cfg.to_dict() == before and cfg.train.freeze == "epochs"  # the caller's object is untouched
    saved = json.loads((clf.save(tmp_path / "m") / "config.json").read_text())["config"]
    assert saved["train"]["freeze"] == "never"  # no vectors: nothing to protect, and it says so


def test_the_freeze_mode_of_each_kind_of_run_comes_from_one_place():
    from textlstm.config import TrainConfig
    from textlstm.training.freezing import run_freeze

    epochs = TrainConfig(freeze="epochs")
    assert run_freeze(epochs, pretrained=True) is epochs
    assert run_freeze(epochs, pretrained=False).freeze == "never"
    assert run_freeze(epochs, pretrained=True, purpose="fine-tune").freeze == "always"
    assert run_freeze(epochs, pretrained=True, purpose="lr-find").freeze == "always"
    assert run_freeze(epochs, pretrained=False, purpose="lr-find").freeze == "never"
    assert run_freeze(epochs, pretrained=True, purpose="pretrain-lm").freeze == "never"
    assert epochs.freeze == "epochs"


def test_loading_and_predicting_never_import_the_training_loop():
    code = ("import sys; from textlstm import TextClassifier; "
            "c = TextClassifier.load('tests/resources/model-v0.1-premove'); c.predict(['a fine film']); "
            "print('textlstm.training.trainer' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_predicting_from_the_cli_imports_neither_scikit_learn_nor_torch_dynamo():
    """scikit-learn's import (over a second) and torch._dynamo's (a meta-device op pulls it
    in) were most of a one-text `textlstm predict`; neither is needed to predict."""
    code = ("import sys; from textlstm.cli.commands import main\n"
            "sys.argv = ['textlstm', 'predict', 'tests/resources/model-v0.1-premove', 'a fine film']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('sklearn', 'scipy', 'torch._dynamo') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_not_fitted_error_is_made_on_first_use_and_is_scikit_learns():
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    import textlstm
    from textlstm import errors

    assert issubclass(errors.NotFittedError, (SklearnNotFittedError, errors.TextLSTMError, ValueError))
    assert errors.NotFittedError is errors.NotFittedError  # made once
    assert errors.NotFittedError.__module__ == "textlstm.errors"
    assert errors.NotFittedError.__qualname__ == "NotFittedError"  # pickles by name, as raised in workers
    from textlstm.sklearn import TextLSTMClassifier
    assert textlstm.TextLSTMClassifier is TextLSTMClassifier
    with pytest.raises(AttributeError):
        errors.NoSuchError
