"""Micro-batching: concurrent requests share one forward pass.

Requests wait in a queue bounded by the texts it holds. One worker task takes the first
request, gathers those behind it until `max_batch` texts or until `max_wait` has passed since
it took the first, and runs the batch in a single prediction thread (so the model is never
entered from two threads); each request then gets its own rows back, in its own order. A
request is never split: one larger than `max_batch` runs alone. `max_batch=1` turns gathering
off, each request runs on its own.

>>> batcher = MicroBatcher(run, max_batch=64, max_wait=0.005, max_queue=1024)  # doctest: +SKIP
>>> await batcher.start(); rows = await batcher.submit(["a text"], [False])     # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .metrics import ServeMetrics

log = logging.getLogger(__name__)

RunBatch = Callable[[list[str], list[bool]], Sequence[Any]]  # texts, explain flags -> one row per text


class QueueFull(Exception):
    """The queue holds `max_queue` texts already: try again shortly (HTTP 503, Retry-After)."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work (HTTP 503)."""


@dataclass
class _Job:
    texts: list[str]
    explain: bool
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers requests into batches and runs them, one at a time, in one thread."""

    def __init__(self, run: RunBatch, *, max_batch: int = 64, max_wait: float = 0.005, max_queue: int = 1024,
                 metrics: ServeMetrics | None = None):
        self.run = run
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait, max_queue
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textlstm-predict")
        self._pending: deque[_Job] = deque()
        self._waiting = 0  # texts in _pending
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._busy = False  # a batch is in the prediction thread

    @property
    def waiting(self) -> int:
        """Texts queued and not yet taken into a batch."""
        return self._waiting

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._work(), name="textlstm-batcher")

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in the prediction thread (loading, warming up), between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def submit(self, texts: list[str], explain: bool = False) -> list[Any]:
        """Queue `texts` and wait for their rows (in order). `QueueFull` when the queue cannot
        take them (a request always gets in when the queue is empty), `ShuttingDown` after
        `close`."""
        if self._closing or self._task is None:
            raise ShuttingDown("the server is shutting down")
        if self._waiting and self._waiting + len(texts) > self.max_queue:
            raise QueueFull(f"{self._waiting} texts are waiting for the model (--max-queue {self.max_queue})")
        job = _Job(list(texts), explain, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._count(len(job.texts))
        self._arrived.set()
        return await job.future

    async def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued (for up to `timeout` seconds), then stop
        the worker and its thread."""
        self._closing = True
        stuck = False
        if self._task is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while (self._pending or self._busy) and not self._task.done():
                if deadline is not None and time.monotonic() > deadline:
                    log.error("stopping with %d texts unanswered: the model did not finish in %.0f s",
                              self._waiting, timeout)
                    break
                await asyncio.sleep(0.01)
            stuck = self._busy
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in self._pending:  # only if the worker died or timed out: never leave a caller hanging
            if not job.future.done():
                job.future.set_exception(ShuttingDown("the server is shutting down"))
        self._pending.clear()
        self._count(-self._waiting)
        self.executor.shutdown(wait=not stuck, cancel_futures=True)

    # -- the worker ------------------------------------------------------------------------
    def _count(self, delta: int) -> None:
        self._waiting += delta
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._waiting)

    def _take(self) -> _Job | None:
        while self._pending:
            job = self._pending.popleft()
            self._count(-len(job.texts))
            if not job.future.done():  # a client that went away leaves a cancelled future
                return job
        return None

    async def _wait_for_work(self, timeout: float | None) -> bool:
        """Whether a job is pending, waiting up to `timeout` seconds (None: for ever)."""
        while not self._pending:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except asyncio.TimeoutError:
                return bool(self._pending)
        return True

    async def _gather(self) -> list[_Job]:
        first = None
        while first is None:
            await self._wait_for_work(None)
            first = self._take()
        batch, n = [first], len(first.texts)
        if self.max_batch <= 1:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while n < self.max_batch:
            if not self._pending and not await self._wait_for_work(max(0.0, deadline - loop.time())):
                break
            if n + len(self._pending[0].texts) > self.max_batch:
                break  # it starts the next batch
            job = self._take()
            if job is not None:
                batch.append(job)
                n += len(job.texts)
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            self._busy = True
            try:
                await self._run(loop, batch)
            finally:
                self._busy = False

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        texts = [t for job in batch for t in job.texts]
        flags = [job.explain for job in batch for _ in job.texts]
        start = time.perf_counter()
        try:
            rows = await loop.run_in_executor(self.executor, self.run, texts, flags)
        except Exception as exc:  # each caller gets the error; the worker goes on
            log.exception("prediction failed for a batch of %d texts", len(texts))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        if self.metrics is not None:
            self.metrics.observe_batch(len(texts), len(batch), time.perf_counter() - start)
        at = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(list(rows[at:at + len(job.texts)]))
            at += len(job.texts)
