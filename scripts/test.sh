#!/usr/bin/env bash
# Set up the virtualenv (see setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
VENV="$VENV" bash scripts/setup.sh
bash scripts/install-browser.sh  # chromium + chromedriver for the page test (tests/test_serve_page.py)
"$VENV/bin/python" -m pytest "$@"
