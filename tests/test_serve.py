"""`textlstm serve`: the HTTP API in process (TestClient, httpx over ASGI) and a real server in
a subprocess (readiness, a prediction, graceful SIGTERM with a request in flight)."""
import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import TRAIN

from textlstm import TextClassifier
from textlstm.config import make_config
from textlstm.serve import ServeSettings, create_app, load_predictor

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["pos"] * 3 + ["neg"] * 3
TINY = ["model.hidden_size=8", "model.embedding_dim=8", "model.attention_dim=8", "train.epochs=1",
        "train.batch_size=4", "train.threads=1", "data.val_split=0", 'tokenizer.kind="regex"']
QUERIES = ["a wonderful warm film", "", "awful acting and a dull story, I hated it", "zzz unseen", "great",
           "I loved it " * 20]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model"
    TextClassifier(make_config(overrides=TINY)).fit(TRAIN, LABELS).save(path)
    return path


@pytest.fixture(scope="module")
def clf(model_dir):
    return TextClassifier.load(model_dir)


def wait_ready(client, seconds=20.0):
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.02)


@contextlib.contextmanager
def serving(model, **options):
    app = create_app(ServeSettings(model=str(model), **options))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def client(model_dir):
    with serving(model_dir) as c:
        yield c


def assert_error(res, code):
    assert res.status_code == code, res.text
    body = res.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in res.text
    return body["error"]["message"]


def histogram(client, name):
    """(count, sum) of a histogram in the app's own registry."""
    registry = client.app.state.serve.metrics.registry
    return registry.get_sample_value(f"{name}_count"), registry.get_sample_value(f"{name}_sum")


# -- predictions ---------------------------------------------------------------------------------

def test_predictions_equal_predict_proba_in_input_order(client, clf):
    res = client.post("/predict", json={"texts": QUERIES})
    assert res.status_code == 200, res.text
    got = res.json()["predictions"]
    want = clf.predict_proba(QUERIES)
    assert [p["label"] for p in got] == clf.predict(QUERIES)  # what `textlstm predict` prints
    for row, probs in zip(got, want):
        assert list(row["probabilities"]) == clf.classes_ and set(row) == {"label", "probabilities"}
        np.testing.assert_allclose([row["probabilities"][c] for c in clf.classes_], probs, atol=1e-6, rtol=0)


def test_top_k_lists_the_k_most_probable_labels(client):
    rows = client.post("/predict", json={"texts": QUERIES[:2], "top_k": 1}).json()["predictions"]
    for row in rows:
        assert row["top"] == [{"label": row["label"], "probability": row["probabilities"][row["label"]]}]
    row = client.post("/predict", json={"texts": ["great"], "top_k": 5}).json()["predictions"][0]
    assert [t["label"] for t in row["top"]] == sorted(row["probabilities"], key=row["probabilities"].get, reverse=True)


def test_explain_gives_the_tokens_and_their_attention(client, clf):
    rows = client.post("/predict", json={"texts": QUERIES[:3], "explain": True}).json()["predictions"]
    for row, doc in zip(rows, clf.explain(QUERIES[:3])):
        assert [t["token"] for t in row["tokens"]] == [t for t, _ in doc["tokens"]]
        np.testing.assert_allclose([t["weight"] for t in row["tokens"]], [w for _, w in doc["tokens"]], atol=1e-6)
        assert row["label"] == doc["label"]


async def _concurrently(app, bodies):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            while (await ac.get("/ready")).status_code != 200:
                await asyncio.sleep(0.01)
            return await asyncio.gather(*(ac.post("/predict", json=b) for b in bodies))


@pytest.mark.parametrize("max_batch", [64, 1])
def test_concurrent_requests_share_batches_and_keep_their_order(model_dir, clf, max_batch):
    texts = [f"{w} film number {i}" for i, w in enumerate(["great", "awful", "dull", "warm"] * 8)]
    bodies = [{"texts": texts[i:i + 1 + i % 3]} for i in range(len(texts))]  # 1 to 3 texts each
    app = create_app(ServeSettings(model=str(model_dir), max_batch=max_batch, max_wait_ms=50))
    responses = asyncio.run(_concurrently(app, bodies))
    for body, res in zip(bodies, responses):
        assert res.status_code == 200
        got = [[row["probabilities"][c] for c in clf.classes_] for row in res.json()["predictions"]]
        np.testing.assert_allclose(got, clf.predict_proba(body["texts"]), atol=1e-6, rtol=0)
    registry = app.state.serve.metrics.registry
    batches = registry.get_sample_value("textlstm_batch_requests_count")  # the warm-up is not a batch
    requests = registry.get_sample_value("textlstm_batch_requests_sum")
    assert requests == len(bodies)
    assert registry.get_sample_value("textlstm_texts_predicted_total") == sum(len(b["texts"]) for b in bodies)
    if max_batch > 1:
        assert batches < len(bodies)  # some batch held several requests
    else:
        assert batches == len(bodies)  # --max-batch 1: each request alone


# -- limits and bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("body, code, words", [
    ('{"texts": ["a"', 400, "not valid JSON"),
    ("", 422, "Field required"),
    ('["a"]', 422, "valid dictionary"),
    ('{"texts": "a single string"}', 422, "texts"),
    ('{"texts": ["a", 3]}', 422, "texts.1"),
    ('{"texts": []}', 422, "empty"),
    ('{"texts": ["a"], "top_k": 0}', 422, "top_k"),
    ('{"texts": ["a"], "top_k": "2"}', 422, "top_k"),
    ('{"texts": ["a"], "top_k": true}', 422, "top_k"),
    ('{"texts": ["a"], "explain": "yes"}', 422, "explain"),
    ('{"texts": ["a"], "colour": "red"}', 422, "colour: Extra inputs are not permitted"),
])
def test_bad_requests_get_a_json_error(client, body, code, words):
    res = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert words in assert_error(res, code)


def test_too_many_or_too_long_texts_are_422(model_dir):
    with serving(model_dir, max_texts=3, max_chars=10) as c:
        assert "at most 3" in assert_error(c.post("/predict", json={"texts": ["a"] * 4}), 422)
        assert "texts.1 has 11 characters" in assert_error(c.post("/predict", json={"texts": ["a", "b" * 11]}), 422)
        assert c.post("/predict", json={"texts": ["a", "b" * 10, "c"]}).status_code == 200


def test_a_body_over_the_limit_is_413_by_header_and_by_counting(model_dir):
    with serving(model_dir, max_body=200) as c:
        big = json.dumps({"texts": ["word " * 60]})
        assert "limit is 200 bytes" in assert_error(c.post("/predict", content=big), 413)
        chunks = (part.encode() for part in ['{"texts": ["', "word " * 30, "word " * 30, '"]}'])
        assert_error(c.post("/predict", content=chunks, headers={"content-type": "application/json"}), 413)
        assert c.post("/predict", json={"texts": ["short"]}).status_code == 200


def test_unknown_paths_methods_and_unexpected_failures_are_json(model_dir, monkeypatch):
    with serving(model_dir) as c:
        assert_error(c.get("/nope"), 404)
        assert "use POST" in assert_error(c.get("/predict"), 405)
        predictor = c.app.state.serve.predictor
        monkeypatch.setattr(predictor, "predict_proba", lambda texts: 1 / 0)
        assert "ZeroDivisionError" in assert_error(c.post("/predict", json={"texts": ["a"]}), 500)


def test_a_bearer_token_guards_everything_but_the_probes_and_the_page(model_dir):
    with serving(model_dir, token="s3cret") as c:
        for path in ("/model", "/metrics", "/docs", "/openapi.json"):
            res = c.get(path)
            assert_error(res, 401)
            assert res.headers["www-authenticate"].startswith("Bearer")
        assert_error(c.post("/predict", json={"texts": ["a"]}, headers={"Authorization": "Bearer wrong"}), 401)
        assert_error(c.post("/predict", json={"texts": ["a"]}, headers={"Authorization": "Basic s3cret"}), 401)
        ok = c.post("/predict", json={"texts": ["a"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/model", headers={"Authorization": "Bearer s3cret"}).json()["serve"]["auth"] is True
        assert "s3cret" not in c.get("/model", headers={"Authorization": "Bearer s3cret"}).text
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        assert c.get("/").status_code == 200  # static; it asks for the token when the API says 401


def test_a_full_queue_answers_503_with_retry_after(model_dir, monkeypatch):
    app = create_app(ServeSettings(model=str(model_dir), max_queue=2, max_batch=1))
    entered, release = threading.Event(), threading.Event()

    def blocked(real, texts):
        entered.set()
        release.wait(10)
        return real(texts)

    async def scenario():
        async with app.router.lifespan_context(app):
            state = app.state.serve
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
                while (await ac.get("/ready")).status_code != 200:
                    await asyncio.sleep(0.01)
                monkeypatch.setattr(state.predictor, "predict_proba", functools.partial(blocked, state.predictor.predict_proba))
                first = asyncio.create_task(ac.post("/predict", json={"texts": ["a"]}))
                while not entered.is_set():  # the first request is in the model
                    await asyncio.sleep(0.01)
                second = asyncio.create_task(ac.post("/predict", json={"texts": ["b", "c"]}))  # waits
                while state.batcher.waiting < 2:
                    await asyncio.sleep(0.01)
                refused = await ac.post("/predict", json={"texts": ["d"]})
                gauge = state.metrics.registry.get_sample_value("textlstm_queue_depth")
                release.set()
                return refused, gauge, await first, await second

    refused, gauge, first, second = asyncio.run(scenario())
    assert "--max-queue 2" in assert_error(refused, 503) and refused.headers["retry-after"] == "1"
    assert gauge == 2
    assert first.status_code == 200 and len(second.json()["predictions"]) == 2


@pytest.mark.parametrize("log_texts", [False, True])
def test_texts_reach_the_log_only_with_log_texts(model_dir, caplog, log_texts):
    with caplog.at_level("INFO", logger="textlstm.serve"), serving(model_dir, log_texts=log_texts) as c:
        assert c.post("/predict", json={"texts": ["a secret review"]}).status_code == 200
    assert any('"POST /predict" 200' in r.getMessage() for r in caplog.records)
    assert ("a secret review" in caplog.text) is log_texts


# -- the other endpoints -------------------------------------------------------------------------

def test_ready_is_503_until_the_model_is_loaded(model_dir):
    go = threading.Event()

    def slow_loader():
        go.wait(10)
        return load_predictor(model_dir)

    app = create_app(ServeSettings(model=str(model_dir)), loader=slow_loader)
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok"}
        res = c.get("/ready")
        assert res.status_code == 503 and res.json()["ready"] is False and res.json()["error"]["code"] == 503
        assert_error(c.post("/predict", json={"texts": ["a"]}), 503)
        go.set()
        wait_ready(c)
        assert c.get("/ready").json() == {"ready": True}


def test_model_describes_labels_settings_metrics_versions_and_serving(client, clf):
    info = client.get("/model").json()
    assert info["labels"] == clf.classes_ and info["format"] == "directory" and info["explain"] is True
    assert info["settings"]["model"]["hidden_size"] == 8 and info["settings"]["tokenizer"]["kind"] == "regex"
    assert info["metrics"]["best_epoch"] == clf.meta_["best_epoch"] and "best_val_macro_f1" in info["metrics"]
    assert info["versions"]["torch"] and info["versions"]["textlstm"]
    assert info["serve"]["max_batch"] == 64 and info["serve"]["auth"] is False and "token" not in info["serve"]


def test_metrics_are_prometheus_text(client):
    client.post("/predict", json={"texts": ["a", "b"]})
    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    for name in ("textlstm_requests_total", "textlstm_request_duration_seconds_bucket", "textlstm_batch_texts_bucket",
                 "textlstm_texts_predicted_total", "textlstm_queue_depth"):
        assert name in res.text
    assert 'textlstm_requests_total{code="200",endpoint="/predict",method="POST"}' in res.text


def test_the_page_is_html(client):
    res = client.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html") and "<html" in res.text


def test_an_exported_onnx_file_is_served_with_onnxruntime(model_dir, clf, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from textlstm.jobs.export import OnnxClassifier, export_onnx

    onnx = export_onnx(clf, tmp_path / "m.onnx").path
    with serving(onnx) as c:
        rows = c.post("/predict", json={"texts": QUERIES}).json()["predictions"]
        got = [[r["probabilities"][k] for k in clf.classes_] for r in rows]
        np.testing.assert_allclose(got, OnnxClassifier(onnx).predict_proba(QUERIES), atol=1e-6, rtol=0)
        np.testing.assert_allclose(got, clf.predict_proba(QUERIES), atol=1e-4, rtol=0)
        assert "attention" in assert_error(c.post("/predict", json={"texts": ["a"], "explain": True}), 422)
        assert c.get("/model").json()["format"] == "onnx"


def test_settings_travel_to_worker_processes_through_the_environment(model_dir, monkeypatch):
    from textlstm.errors import ConfigError
    from textlstm.serve import create_app_from_env

    settings = ServeSettings(model=str(model_dir), max_batch=8, token="t0k", workers=3)
    env = settings.to_env()
    assert "t0k" not in env["TEXTLSTM_SERVE_SETTINGS"] and env["TEXTLSTM_SERVE_TOKEN"] == "t0k"
    assert ServeSettings.from_env(env) == settings
    assert ServeSettings.from_env({"TEXTLSTM_SERVE_MODEL": "m"}) == ServeSettings(model="m")
    with pytest.raises(ConfigError, match="Unknown serve settings"):
        ServeSettings.from_env({"TEXTLSTM_SERVE_SETTINGS": '{"model": "m", "max_bach": 2}'})
    assert ServeSettings(model="m", workers=4).compute_threads(0) == max(1, (os.cpu_count() or 1) // 4 - 1)
    assert ServeSettings(model="m").compute_threads(0) == max(1, (os.cpu_count() or 1) - 1)  # a core for HTTP
    assert ServeSettings(model="m", workers=4).compute_threads(3) == 3  # the model's train.threads
    assert ServeSettings(model="m", threads=5).compute_threads(3) == 5
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert create_app_from_env().state.serve.settings == settings


# -- a real server -------------------------------------------------------------------------------

def _serve_command(model, port, *extra):
    """`python -m textlstm.cli serve …`; the command registered on the fly until commands.py has it."""
    from textlstm.cli.commands import app

    args = ["serve", str(model), "--port", str(port), *extra]
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    if "serve" in names:
        return [sys.executable, "-m", "textlstm.cli", *args]
    code = ("import sys; from textlstm.cli.commands import app, main; from textlstm.cli import serving; "
            "app.command()(serving.serve); sys.argv[0] = 'textlstm'; main()")
    return [sys.executable, "-c", code, *args]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_answers_and_stops_gracefully_on_sigterm(model_dir, clf):
    port = _free_port()
    # a batch waits 1.5 s for company: a request is surely in flight when SIGTERM comes
    proc = subprocess.Popen(_serve_command(model_dir, port, "--max-wait-ms", "1500"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "TEXTLSTM_SERVE_TOKEN"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, proc.stdout.read()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)
        res = httpx.post(base + "/predict", json={"texts": ["a wonderful warm film"]}, timeout=10)
        np.testing.assert_allclose(res.json()["predictions"][0]["probabilities"]["pos"],
                                   clf.predict_proba(["a wonderful warm film"])[0][clf.classes_.index("pos")], atol=1e-6)
        slow: dict = {}
        texts = QUERIES * 10
        worker = threading.Thread(target=lambda: slow.update(res=httpx.post(base + "/predict", json={"texts": texts},
                                                                            timeout=20)))
        worker.start()
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        worker.join(20)
        assert slow["res"].status_code == 200 and len(slow["res"].json()["predictions"]) == len(texts)
        assert proc.wait(10) == 0
        assert time.monotonic() - sent < 10
        log = proc.stdout.read()
        assert '"POST /predict" 200' in log and "wonderful" not in log  # no texts without --log-texts
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
