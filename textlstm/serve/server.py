"""Running the app under uvicorn: one process, or `workers` processes sharing the socket.

SIGTERM (or Ctrl+C) stops accepting connections, lets in-flight requests finish (up to
`graceful_timeout` seconds), drains the batcher in the app's shutdown and returns normally, so
that `textlstm serve` exits 0. uvicorn re-raises the signal it caught once it has shut down;
a no-op handler installed for the run receives it instead of the default one that would end
the process with the signal."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any, Callable, Iterator

from ..errors import ConfigError
from .predictor import Predictor
from .settings import ServeSettings

log = logging.getLogger(__name__)
FACTORY = "textlstm.serve.app:create_app_from_env"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's and the server's logs as plain lines on stderr; each worker applies it."""
    handler = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                    "stream": "ext://sys.stderr"}},
            "loggers": {"uvicorn": handler, "textlstm.serve": handler}}


def serve(settings: ServeSettings, predictor: Predictor | None = None, *, log_level: str = "INFO") -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully and return. With one worker,
    `predictor` (already loaded) is served; several workers each load `settings.model`."""
    import uvicorn

    settings = settings.validate()
    options = dict(host=settings.host, port=settings.port, log_config=log_config(log_level), access_log=False,
                   timeout_graceful_shutdown=settings.graceful_timeout, lifespan="on", server_header=False)
    try:
        if settings.workers > 1:
            with _environment(settings.to_env()), _returning_on_stop_signals():
                uvicorn.run(FACTORY, factory=True, workers=settings.workers, **options)
            return
        from .app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(settings, predictor), **options))
        # a signal before uvicorn listens for them still stops the server once it has started
        with _returning_on_stop_signals(lambda: setattr(server, "should_exit", True)):
            server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind or start; it logged why
        if exc.code:
            raise ConfigError(f"The server could not start on {settings.host}:{settings.port} "
                              "(the log above says why).") from None


@contextlib.contextmanager
def _returning_on_stop_signals(stop: Callable[[], None] = lambda: None) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}

    def handler(signum: int, frame: Any) -> None:
        log.debug("signal %d", signum)
        stop()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the worker processes, and restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
