#!/usr/bin/env bash
# Install Debian's headless browser for the page test (tests/test_serve_page.py): `chromium` and
# `chromium-driver` (chromedriver), with apt, only when missing. Quiet, non-interactive and
# idempotent: exits 0 at once when both are present. Without apt or root, or when apt fails, it
# prints one line and exits 0, and the test then skips with a reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: apt-get not found; install chromium and chromedriver yourself (the page test skips without them)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser: not root; run 'sudo apt-get install chromium chromium-driver' (the page test skips without them)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
}
# A fresh machine has no package lists yet (or stale ones): update once and retry.
if ! apt_install 2>/dev/null; then
    if ! { apt-get update -qq >/dev/null && apt_install; }; then
        echo "install-browser: apt-get could not install chromium chromium-driver (the page test skips without them)"
    fi
fi
