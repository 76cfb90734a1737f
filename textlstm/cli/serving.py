"""`textlstm serve MODEL`: a model directory or an exported .onnx file over HTTP until SIGTERM
or Ctrl+C (see `textlstm.serve`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import STATE, err, handle_errors


@handle_errors
def serve(
    model: Path = typer.Argument(..., exists=True, help="Model directory, or an .onnx file from `textlstm export --format onnx` (its .textlstm.json beside it)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port to listen on."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Texts one forward pass gathers from concurrent requests (1: no gathering)."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", min=0, help="Milliseconds the first request of a batch waits for others."),
    no_batching: bool = typer.Option(False, "--no-batching", help="Run each request on its own (as --max-batch 1)."),
    max_queue: int = typer.Option(1024, "--max-queue", min=1, help="Texts that may wait for the model; beyond them requests get 503 with Retry-After."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1, help="Largest request body in bytes (413 beyond)."),
    max_texts: int = typer.Option(256, "--max-texts", min=1, help="Most texts in one request (422 beyond)."),
    max_chars: int = typer.Option(100_000, "--max-chars", min=1, help="Most characters in one text (422 beyond)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="TEXTLSTM_SERVE_TOKEN", help="Require 'Authorization: Bearer TOKEN' on every endpoint but /health, /ready and the page (prefer the environment variable: a command line is visible to other users)."),
    log_texts: bool = typer.Option(False, "--log-texts", help="Log the texts of /predict requests (never logged otherwise)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes, each with its own copy of the model."),
    threads: int = typer.Option(0, "--threads", min=0, help="Compute threads per worker (0: the model's train.threads, else cores / workers - 1, leaving a core to the HTTP loop)."),
    graceful_timeout: float = typer.Option(10.0, "--graceful-timeout", min=0, help="Seconds in-flight requests get to finish after SIGTERM."),
):
    """Serve a model over HTTP: POST /predict, GET /health, /ready, /model, /metrics, and a page at /."""
    from ..serve import ServeSettings, load_predictor
    from ..serve import serve as run_server
    from ..serve.predictor import model_threads

    settings = ServeSettings(model=str(model), host=host, port=port, max_batch=1 if no_batching else max_batch,
                             max_wait_ms=max_wait_ms, max_queue=max_queue, max_body=max_body, max_texts=max_texts,
                             max_chars=max_chars, token=token or None, log_texts=log_texts, workers=workers,
                             threads=threads, graceful_timeout=graceful_timeout).validate()
    # loaded here first, so that a bad model is one error line before anything listens
    predictor = load_predictor(model, settings.compute_threads(model_threads(model)))
    if host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
        err.print(f"warning: listening on {host} without --token: whoever reaches the port can use the model.",
                  markup=False, highlight=False)
    where = f"[{host}]" if ":" in host else host
    batching = f"batches of up to {settings.max_batch} texts" if settings.batching else "no batching"
    err.print(f"serving {model} ({predictor.format}, {len(predictor.classes)} labels; {batching}; "
              f"{workers} worker{'s' if workers > 1 else ''}) on http://{where}:{port}",
              markup=False, highlight=False)
    if workers > 1:
        predictor = None  # each worker loads its own
    run_server(settings, predictor, log_level="DEBUG" if STATE["verbose"] else "INFO")
