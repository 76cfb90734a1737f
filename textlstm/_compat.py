"""Import paths from before the package layout (0.1: one flat package) keep working.

`import textlstm.train` or `from textlstm.vocab import Vocab` resolve to the module's new home
(`textlstm.training.trainer`, `textlstm.data.vocab`): the same module object, so names, classes
and patches are shared. New code imports from the new paths."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "ui": "display",
    "formats": "data.formats", "lines": "data.lines", "corpora": "data.corpora",
    "corpus": "data.tokencache", "tokenize": "data.tokenize", "vocab": "data.vocab",
    "batching": "data.batching",
    "textvectors": "embeddings.textformat", "vocab_vectors": "embeddings.matrix",
    "pretraining": "embeddings.word2vec",
    "cells": "model.cells", "directions": "model.directions", "infer": "model.infer",
    "artifact": "model.artifact", "quantize": "model.quantize", "prune": "model.prune",
    "train": "training.trainer", "objectives": "training.objectives", "optim": "training.optim",
    "averaging": "training.averaging", "precision": "training.precision",
    "checkpoint": "training.checkpoint", "distributed": "training.distributed", "lm": "training.lm",
    "trainjob": "jobs.train", "explain": "jobs.explain", "lrfind": "jobs.lrfind",
    "search": "jobs.search", "searchreport": "jobs.searchreport", "compress": "jobs.compress",
    "export": "jobs.export", "cli_common": "cli._common", "cli_tools": "cli.tools",
}
# textlstm.data, .embeddings, .model and .cli are packages now that re-export the old modules'
# names; textlstm.jobs (the old prediction-jobs module) became the folder of jobs: its names
# are in textlstm.jobs.predict.


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `textlstm.<old>` and hands out the module at its new path."""

    def find_spec(self, name, path=None, target=None):
        old = name.removeprefix("textlstm.")
        if name.startswith("textlstm.") and old in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"textlstm.{MOVED[spec.name.removeprefix('textlstm.')]}")
        spec.loader_state = module.__spec__  # importlib sets module.__spec__ to the alias's spec
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = module.__spec__.loader_state  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
