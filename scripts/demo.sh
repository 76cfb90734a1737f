#!/usr/bin/env bash
# Set up the virtualenv, train on the bundled corpus, evaluate on its test split and on 60
# obvious sentences, and predict a few sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
VENV="$VENV" bash scripts/setup.sh
T="$VENV/bin/textlstm"
OUT="${OUT:-runs/demo}"
# No data and no settings: the bundled corpus with the small-sentiment preset (GloVe vectors).
"$T" train --out "$OUT" --overwrite --quiet
"$T" eval "$OUT" corpora/sentiment/test.tsv
# 60 plain sentences the corpus does not hold (praise, complaints, short, long, negations)
"$T" eval "$OUT" corpora/sentiment/obvious.tsv
"$T" predict "$OUT" "A warm, funny film that I would happily watch again." "Dull, overlong and badly acted."
