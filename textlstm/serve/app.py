"""The HTTP API: `create_app(settings)` builds a FastAPI app that serves one model.

    POST /predict   {"texts": [...], "top_k": 2, "explain": true} -> {"predictions": [...]}
    GET  /health    liveness: {"status": "ok"}
    GET  /ready     readiness: 200 {"ready": true} once the model is loaded, 503 before
    GET  /model     labels, settings, saved metrics, versions, the serve settings
    GET  /metrics   Prometheus text format
    GET  /          the try-it page

The model loads in the background when the app starts (in the prediction thread), so /ready
answers 503 meanwhile. For uvicorn's worker processes, `create_app_from_env` is the factory:
`uvicorn --factory textlstm.serve.app:create_app_from_env` with TEXTLSTM_SERVE_MODEL set.

>>> app = create_app(ServeSettings(model="model"))  # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Callable, Optional

import numpy as np
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from . import problems
from ..thresholds import decide
from .batching import MicroBatcher
from .gate import Gate
from .metrics import ServeMetrics
from .predictor import Prediction, Predictor, infer, load_predictor, model_threads
from .problems import ApiError
from .settings import ServeSettings

log = logging.getLogger(__name__)
LOGGED_CHARS = 500  # of each text, with --log-texts
MISSING_PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>textlstm</title></head><body>"
                "<p>The page is not installed. The API is at <a href=\"/docs\">/docs</a>.</p></body></html>")


class PredictRequest(BaseModel):
    """The body of `POST /predict`."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(description="Texts to classify (at least one; see --max-texts, --max-chars).")
    top_k: Optional[StrictInt] = Field(None, gt=0, description="Also list the k most probable labels.")
    explain: StrictBool = Field(False, description="Also give each token's attention weight.")


class ServeState:
    """What the endpoints share: settings, metrics, the batcher and the model once loaded."""

    def __init__(self, settings: ServeSettings, predictor: Predictor | None, loader: Callable[[], Predictor]):
        self.settings, self.predictor, self.loader = settings, predictor, loader
        self.metrics = ServeMetrics()
        self.batcher = MicroBatcher(self._run, max_batch=settings.max_batch, max_wait=settings.max_wait_ms / 1000,
                                    max_queue=settings.max_queue, metrics=self.metrics)
        self.ready = False
        self.load_error: str | None = None
        self.page = _page()

    def _run(self, texts: list[str], explain: list[bool]) -> list[Prediction]:
        return infer(self.predictor, texts, explain)

    async def load(self) -> None:
        """Load (unless given) and warm up the model in the prediction thread, then be ready."""
        try:
            if self.predictor is None:
                self.predictor = await self.batcher.call(self.loader)
            await self.batcher.call(self.predictor.warm_up)
        except Exception as exc:  # the server stays up, not ready, and says why
            self.load_error = str(exc) or type(exc).__name__
            log.error("cannot serve %s: %s", self.settings.model, self.load_error)
            return
        # The libraries and the model are a million long-lived objects: without this, each of
        # Python's full collections walks them all and stalls every request for ~200 ms
        # (p99 of 200 ms over a long run); frozen, they are never scanned again.
        gc.collect()
        gc.freeze()
        self.ready = True
        log.info("serving %s (%s, labels: %s)", self.predictor.source, self.predictor.format,
                 ", ".join(self.predictor.classes))

    def not_ready(self) -> str:
        why = f"the model could not be loaded: {self.load_error}" if self.load_error else "the model is loading"
        return f"Not ready: {why}."

    def require_ready(self) -> Predictor:
        if not self.ready:
            raise ApiError(503, self.not_ready(), {"Retry-After": "1"})
        return self.predictor


def _page() -> str:
    try:
        return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return MISSING_PAGE


def create_app(settings: ServeSettings, predictor: Predictor | None = None, *,
               loader: Callable[[], Predictor] | None = None) -> FastAPI:
    """An app serving `predictor`, or what `loader()` returns (default: `settings.model`,
    loaded when the app starts). Each app has its own metrics registry and batcher."""
    settings = settings.validate()
    if loader is None:
        def loader() -> Predictor:
            return load_predictor(settings.model, settings.compute_threads(model_threads(settings.model)))
    state = ServeState(settings, predictor, loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.batcher.start()
        loading = asyncio.create_task(state.load(), name="textlstm-load")
        try:
            yield
        finally:
            await loading  # a load in progress finishes in its thread either way
            await state.batcher.close(settings.graceful_timeout)  # drains what is queued
            log.info("stopped serving %s", settings.model)

    app = FastAPI(title="textlstm", summary="Text classification with a BiLSTM: predictions over HTTP.",
                  lifespan=lifespan)
    app.state.serve = state
    problems.install(app)
    app.add_middleware(Gate, metrics=state.metrics, max_body=settings.max_body, token=settings.token)
    _routes(app, state)
    return app


def create_app_from_env() -> FastAPI:
    """The factory for uvicorn's workers: settings from TEXTLSTM_SERVE_SETTINGS or
    TEXTLSTM_SERVE_MODEL (and TEXTLSTM_SERVE_TOKEN), see `ServeSettings.from_env`."""
    return create_app(ServeSettings.from_env())


def _routes(app: FastAPI, state: ServeState) -> None:
    settings = state.settings

    @app.post("/predict", summary="Classify texts")
    async def predict(body: PredictRequest) -> JSONResponse:
        """Labels and probabilities in input order; with top_k the k best labels, with explain
        each token's attention weight."""
        _check_texts(body.texts, settings)
        predictor = state.require_ready()
        if body.explain and not predictor.can_explain:
            raise ApiError(422, f"explain is not available: {predictor.explain_unavailable}.")
        if settings.log_texts:
            log.info("predict %d texts: %s", len(body.texts),
                     json.dumps([t[:LOGGED_CHARS] for t in body.texts]))
        rows = await state.batcher.submit(body.texts, body.explain)
        return JSONResponse({"predictions": [_row(r, predictor.classes, body.top_k, predictor.thresholds)
                                             for r in rows]})

    @app.get("/health", summary="Liveness")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: 503 until the model is loaded")
    async def ready():
        if state.ready:
            return {"ready": True}
        return JSONResponse({"ready": False, **problems.error_body(503, state.not_ready())}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.get("/model", summary="The model: labels, settings, metrics, versions")
    async def model() -> dict:
        predictor = state.require_ready()
        return {"name": predictor.source.name, **predictor.describe(), "serve": settings.public()}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        content, media_type = state.metrics.render()
        return Response(content, media_type=media_type)

    @app.get("/", response_class=HTMLResponse, summary="The try-it page")
    async def page() -> HTMLResponse:
        return HTMLResponse(state.page)


def _check_texts(texts: list[str], settings: ServeSettings) -> None:
    """The limits a schema cannot know: they are the server's settings."""
    if not texts:
        raise ApiError(422, "texts is empty: give at least one text.")
    if len(texts) > settings.max_texts:
        raise ApiError(422, f"texts has {len(texts):,} texts; at most {settings.max_texts:,} per request "
                            "(--max-texts): split them over several requests.")
    for i, text in enumerate(texts):
        if len(text) > settings.max_chars:
            raise ApiError(422, f"texts.{i} has {len(text):,} characters; at most {settings.max_chars:,} "
                                "(--max-chars).")


def _row(pred: Prediction, classes: list[str], top_k: int | None, thresholds: np.ndarray | None = None) -> dict:
    p = pred.probabilities
    row: dict = {"label": classes[int(np.argmax(p))],
                 "probabilities": {label: float(v) for label, v in zip(classes, p)}}
    if thresholds is not None:  # multi-label: every label at or above its threshold, most probable first
        chosen = np.flatnonzero(decide(p[None, :], thresholds)[0])
        row["labels"] = [classes[i] for i in sorted(chosen, key=lambda i: -p[i])]
    if top_k:
        best = np.argsort(-p, kind="stable")[:top_k]
        row["top"] = [{"label": classes[i], "probability": float(p[i])} for i in best]
    if pred.tokens is not None:
        row["tokens"] = [{"token": t, "weight": float(w)} for t, w in pred.tokens]
    return row
