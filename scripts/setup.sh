#!/usr/bin/env bash
# Create (or reuse) a virtualenv and install textlstm into it.
# PyTorch's CPU build is installed first (torch==2.13.0) when the venv has no torch,
# because a plain `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install -q "torch==2.13.0"
fi
# setuptools explains its editable-install mechanics with warnings on every install (textlstm maps
# corpora/ into the package); they are not for users, so they are silenced for this one command.
PYTHONWARNINGS="ignore::UserWarning" "$PY" -m pip install -q -e ".[test,onnx,tensorboard,docs]"
