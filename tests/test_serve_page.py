"""The page that `textlstm serve` shows at GET / (textlstm/serve/page.html), in a real headless
Chromium driven by selenium against the real server (`python -m textlstm.cli serve`).

The browser test skips, with the reason, when selenium, chromium or chromedriver is missing
(`bash scripts/install-browser.sh` installs Debian's chromium and chromium-driver). It saves a
screenshot under tmp_path and, with TEXTLSTM_ARTIFACTS set, also as test-artifacts/serve-page.png
in the repository root."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import TRAIN

import textlstm

ROOT = Path(__file__).resolve().parents[1]
PAGE = Path(textlstm.__file__).resolve().parent / "serve" / "page.html"
LABELS = ["pos"] * 3 + ["neg"] * 3
TEXT = "A wonderful, warm film!"
TOKENS = ["a", "wonderful", ",", "warm", "film", "!"]  # the regex tokenizer: lowercased, split
TEXT2 = "Dull and boring."
TOKENS2 = ["dull", "and", "boring", "."]
READY_TIMEOUT = 60.0


# -- the page is one self-contained file ------------------------------------------------------
def test_page_is_self_contained():
    html = PAGE.read_text(encoding="utf-8")
    assert not re.findall(r"https?://", html, flags=re.I), "the page must not name any URL"
    srcs = re.findall(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
    assert all(s.startswith("data:") for s in srcs), f"external src= in the page: {srcs}"
    hrefs = re.findall(r"""<link\b[^>]*\bhref\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
    assert all(h.startswith("data:") for h in hrefs), f"linked resources in the page: {hrefs}"
    assert "@import" not in html
    assert not re.findall(r"""["'(=]\s*//\w""", html), "protocol-relative URL in the page"
    for element in ('id="text"', 'id="predict"', 'id="label"', 'id="tokens"', 'id="error"'):
        assert element in html


# -- the page in a browser, against the real server -------------------------------------------
@pytest.fixture
def browser():
    """A headless Chromium webdriver, or a skip with the reason (asked for before the server,
    so a machine without a browser skips before it trains and serves a model)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
        pytest.skip(f"{missing} not found: run `bash scripts/install-browser.sh` "
                    "(Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1000,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}) before it was ready:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"GET /ready was not 200 within {READY_TIMEOUT:.0f} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def server(tmp_path):
    """A tiny model served by the real `textlstm serve` on a free port: yields the base URL."""
    from textlstm import TextClassifier
    from textlstm.config import make_config
    cfg = make_config(overrides=["model.hidden_size=8", "model.embedding_dim=8",
                                 "model.attention_dim=8", "train.epochs=2", "train.batch_size=4",
                                 "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"'])
    model_dir = tmp_path / "model"
    TextClassifier(cfg).fit(TRAIN, LABELS).save(model_dir)
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "textlstm.cli", "serve", str(model_dir),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, log)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _alpha(css_color: str) -> float:
    """The alpha of a computed `rgb(...)` / `rgba(...)` colour."""
    parts = re.findall(r"[\d.]+", css_color)
    return float(parts[3]) if len(parts) == 4 else 1.0


def _screenshot(driver, tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "serve-page.png"]
    if os.environ.get("TEXTLSTM_ARTIFACTS"):
        paths.append(ROOT / "test-artifacts" / "serve-page.png")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
        print(f"screenshot: {path}")
    return paths


def test_page_predicts_in_chromium(browser, server, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    driver = browser
    labels = sorted(set(LABELS))
    with urllib.request.urlopen(f"{server}/", timeout=10) as r:
        assert r.status == 200 and r.headers.get_content_type() == "text/html"
    with urllib.request.urlopen(f"{server}/model", timeout=10) as r:
        assert sorted(json.load(r)["labels"]) == labels

    driver.get(f"{server}/")
    # the page replaces the token spans as a result arrives: a span found a moment earlier may be gone
    wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
    heading = driver.find_element(By.TAG_NAME, "h1")
    wait.until(lambda d: all(lab in heading.text for lab in labels))

    # an empty text is refused on the page, in #error
    driver.find_element(By.ID, "predict").click()
    error = driver.find_element(By.ID, "error")
    wait.until(lambda d: error.text.strip())
    assert error.is_displayed()

    box = driver.find_element(By.ID, "text")
    box.send_keys(TEXT)
    driver.find_element(By.ID, "predict").click()
    label = driver.find_element(By.ID, "label")
    wait.until(lambda d: label.text.strip())
    assert label.text.strip() in labels
    assert not error.text.strip(), f"the page shows an error: {error.text}"
    assert driver.find_element(By.ID, "predict").is_enabled()  # the loading state is over

    bars = driver.find_elements(By.CSS_SELECTOR, ".bar")
    assert sorted(b.get_attribute("data-label") for b in bars) == labels
    probs = {b.get_attribute("data-label"): float(b.get_attribute("data-probability")) for b in bars}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(probs, key=probs.get) == label.text.strip()
    for bar in bars:  # each bar shows its percentage
        pct = f"{100 * float(bar.get_attribute('data-probability')):.1f}%"
        assert pct in bar.text, (pct, bar.text)

    tokens = driver.find_elements(By.CSS_SELECTOR, "#tokens .token")
    assert [t.text for t in tokens] == TOKENS
    weights = [float(t.get_attribute("data-weight")) for t in tokens]
    assert all(w >= 0 for w in weights) and max(weights) > 0
    top = max(weights)
    for t, w in zip(tokens, weights):  # shading: background alpha = weight / max weight
        assert _alpha(t.value_of_css_property("background-color")) == pytest.approx(w / top, abs=0.01)

    paths = _screenshot(driver, tmp_path)

    # Ctrl+Enter in the text box predicts too
    box.clear()
    box.send_keys(TEXT2)
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    wait.until(lambda d: [t.text for t in d.find_elements(By.CSS_SELECTOR, "#tokens .token")] == TOKENS2)
    assert label.text.strip() in labels

    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, f"browser console errors: {severe}"
    assert all(p.stat().st_size > 0 for p in paths)
