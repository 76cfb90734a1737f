#!/usr/bin/env bash
# Build the documentation site from docs/ with MkDocs (strict: any warning fails) and serve it at
# http://127.0.0.1:8001/ while you edit; `bash scripts/docs.sh build` only writes site/ (it works
# offline, from file:// too). Uses the virtualenv of setup.sh (the `docs` extra).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/mkdocs" ] || VENV="$VENV" bash scripts/setup.sh
export NO_MKDOCS_2_WARNING=1
if [ "${1:-serve}" = "build" ]; then
    "$VENV/bin/mkdocs" build --strict
else
    "$VENV/bin/mkdocs" serve --strict -a 127.0.0.1:8001
fi
