"""What a server is told: the model to serve, where to listen, its limits and its batching.

One frozen dataclass, checked once by `validate`, and carried to uvicorn's worker processes
through environment variables (`to_env` / `from_env`): a worker is started from an import
string, so the settings cannot travel as a Python object."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError

SETTINGS_ENV = "TEXTLSTM_SERVE_SETTINGS"  # JSON of every setting but the token
MODEL_ENV = "TEXTLSTM_SERVE_MODEL"  # enough on its own: the other settings keep their defaults
TOKEN_ENV = "TEXTLSTM_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """Settings of `textlstm serve` (the CLI's options, under the same names)."""

    model: str  # a model directory or an exported .onnx file
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 64  # texts per forward pass a batch gathers up to; 1: no gathering
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for company
    max_queue: int = 1024  # texts waiting for the model before new requests get 503
    max_body: int = 1 << 20  # bytes of a request body
    max_texts: int = 256  # texts per request
    max_chars: int = 100_000  # characters per text
    token: str | None = field(default=None, repr=False)  # bearer token; None: no authentication
    log_texts: bool = False  # put the texts of /predict requests in the log
    workers: int = 1  # uvicorn worker processes, each with its own copy of the model
    threads: int = 0  # compute threads per worker; 0: the model's train.threads, else cores / workers - 1
    graceful_timeout: float = 10.0  # seconds in-flight requests get to finish after SIGTERM

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def validate(self) -> "ServeSettings":
        """Raise `ConfigError` naming the first setting out of range; return self."""
        positive = ("port", "max_batch", "max_queue", "max_body", "max_texts", "max_chars", "workers")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"serve setting {name} must be a positive integer, got {value!r}.")
        if self.port > 65535:
            raise ConfigError(f"serve setting port must be at most 65535, got {self.port}.")
        for name in ("max_wait_ms", "graceful_timeout", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"serve setting {name} must not be negative, got {getattr(self, name)!r}.")
        if self.token is not None and not self.token.strip():
            raise ConfigError("serve setting token is empty: give a token, or none for no authentication.")
        if not self.model:
            raise ConfigError("serve setting model is empty: give a model directory or an .onnx file.")
        return self

    def compute_threads(self, model_threads: int) -> int:
        """Threads for the model's arithmetic: `threads`, else the model's own `train.threads`,
        else the worker's share of the cores less one, which is left to the HTTP event loop
        (on 2 cores: 1 thread, measured faster under load than 2 that compete with it)."""
        if self.threads:
            return int(self.threads)
        if model_threads:
            return model_threads
        return max(1, (os.cpu_count() or 1) // self.workers - 1)

    def public(self) -> dict[str, Any]:
        """The settings as `GET /model` shows them: the token only as whether there is one."""
        doc = dataclasses.asdict(self)
        doc.pop("token")
        doc["auth"] = self.token is not None
        doc["batching"] = self.batching
        return doc

    def to_env(self) -> dict[str, str]:
        """Environment variables from which `from_env` rebuilds these settings."""
        doc = dataclasses.asdict(self)
        token = doc.pop("token")
        env = {SETTINGS_ENV: json.dumps(doc)}
        if token is not None:
            env[TOKEN_ENV] = token
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServeSettings":
        """Settings from `TEXTLSTM_SERVE_SETTINGS` (JSON) or `TEXTLSTM_SERVE_MODEL`, with the
        token from `TEXTLSTM_SERVE_TOKEN`."""
        environ = os.environ if environ is None else environ
        if SETTINGS_ENV in environ:
            try:
                doc = json.loads(environ[SETTINGS_ENV])
            except ValueError as exc:
                raise ConfigError(f"{SETTINGS_ENV} is not valid JSON ({exc}).") from None
            if not isinstance(doc, dict):
                raise ConfigError(f"{SETTINGS_ENV} must hold a JSON object of settings.")
        elif environ.get(MODEL_ENV):
            doc = {"model": environ[MODEL_ENV]}
        else:
            raise ConfigError(f"Set {MODEL_ENV} (a model directory or .onnx file) or {SETTINGS_ENV} "
                              "to say what to serve.")
        known = {f.name for f in dataclasses.fields(cls)} - {"token"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"Unknown serve settings {sorted(unknown)} in {SETTINGS_ENV}. "
                              f"Keys: {', '.join(sorted(known))}.")
        if "model" not in doc:
            raise ConfigError(f"{SETTINGS_ENV} has no \"model\".")
        return cls(**doc, token=environ.get(TOKEN_ENV) or None).validate()
