#!/usr/bin/env bash
# Set up the virtualenv, train on the bundled corpus, evaluate on its test split and
# predict a few sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
VENV="$VENV" bash scripts/setup.sh
T="$VENV/bin/textlstm"
OUT="${OUT:-runs/demo}"
"$T" train --out "$OUT" --overwrite
"$T" eval "$OUT" corpora/sentiment/test.tsv
"$T" predict "$OUT" "A warm, funny film that I would happily watch again." "Dull, overlong and badly acted."
