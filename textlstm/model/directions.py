"""Running the two directions of a bidirectional layer at the same time, on two CPU threads.

One direction of an LSTM is a chain of small matrix products (batch x hidden by hidden x
4 hidden per step): two threads working on one of them mostly wait for each other. Run the
directions side by side instead, each on its own thread with half of the intra-op threads,
forward and backward. On 2 cores that makes a bidirectional nn.LSTM layer about 1.2x
(bfloat16) to 1.4x (float32) faster than the two directions one after the other on long
batches of one shape; on real bucketed IMDB batches the gain measured only 3 %
(benchmarks/README.md). Results are those of the one-after-the-other computation.

Which is faster depends on the CPU (an AMD EPYC gained from side by side on long batches, an
Intel Xeon with AMX lost at every length), so by default (`SCHEDULE = "auto"`) each process
times both on its first calls of each kind (training or inference, autocast dtype, length
class) and keeps the faster (`Chooser`); `SCHEDULE` "side-by-side" or "in-turn" forces one.

`run_directions(rnns, inputs)` is what `model.Encoder` calls; with fewer than 2 intra-op
threads, texts shorter than `MIN_STEPS` tokens, a GPU tensor or a single direction it simply
runs them in turn.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import torch
from torch import nn

from ..data.tokenize import HELPER_THREAD_PREFIX

# Below this many time steps the hand-over always costs more than it saves (whole training
# step, bfloat16, batch 64, 2 threads, AMD EPYC: 0.82x at 20 steps, 0.92x at 60, 1.12x at 120,
# 1.21x at 250; on an Intel Xeon in turn was faster at every length).
MIN_STEPS = 16
# "auto": time both schedules on the first calls of each kind and keep the faster (`Chooser`);
# "side-by-side" or "in-turn" force one. Results are the same either way.
SCHEDULE = "auto"
TRIALS = 3  # timed calls of each schedule per kind of call before "auto" keeps the faster
LENGTH_CLASSES = (32, 64, 128, 256, 512)  # calls are told apart by length class, grad and autocast


class Chooser:
    """Per process: for each kind of call (grad on or off, autocast dtype, length class), the
    first `TRIALS` calls of each schedule alternate and are timed per padded token; then the
    faster schedule is kept for that kind. The numbers are in `timings` for inspection."""

    def __init__(self) -> None:
        self.timings: dict[tuple, dict[bool, list[float]]] = {}
        self.chosen: dict[tuple, bool] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind(x: torch.Tensor) -> tuple:
        length_class = sum(x.shape[1] >= edge for edge in LENGTH_CLASSES)
        amp = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        return torch.is_grad_enabled(), amp, length_class

    def next(self, kind: tuple) -> tuple[bool, bool]:
        """(side by side?, time this call?)."""
        if (chosen := self.chosen.get(kind)) is not None:  # the common case: no lock once decided
            return chosen, False
        with self._lock:
            if kind in self.chosen:
                return self.chosen[kind], False
            seen = self.timings.setdefault(kind, {True: [], False: []})
            side = len(seen[True]) <= len(seen[False])
            return side, True

    def record(self, kind: tuple, side: bool, seconds: float, tokens: int) -> None:
        with self._lock:
            seen = self.timings.setdefault(kind, {True: [], False: []})
            seen[side].append(seconds / max(1, tokens))
            if kind not in self.chosen and min(len(seen[True]), len(seen[False])) >= TRIALS:
                # the first call of each pays one-time set-up: the median of the rest decides
                best = {mode: sorted(times[1:])[len(times[1:]) // 2] for mode, times in seen.items()}
                self.chosen[kind] = best[True] < best[False]


CHOOSER = Chooser()

_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One helper thread per process (made again after a fork)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix=HELPER_THREAD_PREFIX))
        return _pool[1]


def _side_by_side(work: Sequence[Callable[[], object]], threads: int) -> list:
    """`work[0]` on this thread and `work[1]` on the helper, each with `threads` intra-op
    threads; grad and inference mode and CPU autocast, which are per thread, are carried over."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    amp = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def on_helper():
        torch.set_num_threads(threads)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), \
                torch.autocast("cpu", dtype=amp[1], enabled=amp[0]):
            return work[1]()

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        future = _executor().submit(on_helper)
        first = work[0]()
        return [first, future.result()]
    finally:
        torch.set_num_threads(before)


def _parallel_ok(inputs: Sequence[torch.Tensor]) -> bool:
    """Two CPU inputs of at least `MIN_STEPS` steps, two threads to share, and a real run (an
    exporter's trace records what this thread does, so it must see every operation)."""
    return (SCHEDULE != "in-turn" and len(inputs) == 2 and torch.get_num_threads() >= 2
            and inputs[0].shape[1] >= MIN_STEPS
            and all(x.device.type == "cpu" for x in inputs)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


class _TwoDirections(torch.autograd.Function):
    """Forward: both directions side by side, each recording its own small graph. Backward:
    both graphs differentiated side by side; the gradients of the inputs and of the modules'
    parameters go back to the outer graph, so optimisers and DDP see them as usual."""

    @staticmethod
    def forward(ctx, rnns, x0, x1, *params):
        threads = max(1, torch.get_num_threads() // 2)
        leaves = [x.detach().requires_grad_(x.requires_grad) for x in (x0, x1)]

        def direction(i):
            def run():
                with torch.enable_grad():
                    return rnns[i](leaves[i])[0]
            return run
        outs = _side_by_side([direction(0), direction(1)], threads)
        ctx.rnns, ctx.threads = rnns, threads
        ctx.leaves, ctx.outs = leaves, outs
        return tuple(out.detach() for out in outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g0, g1):
        if ctx.outs is None:
            raise RuntimeError("The two directions' graphs were freed by the first backward; "
                               "backward through them twice (retain_graph=True) is not supported.")
        params0 = list(ctx.rnns[0].parameters())
        params1 = list(ctx.rnns[1].parameters())
        wanted = [[ctx.leaves[0], *params0], [ctx.leaves[1], *params1]]

        def differentiate(i, grad):
            def run():
                targets = [t for t in wanted[i] if t.requires_grad]
                found = iter(torch.autograd.grad(ctx.outs[i], targets, grad, allow_unused=True))
                return [next(found) if t.requires_grad else None for t in wanted[i]]
            return run
        grads = _side_by_side([differentiate(0, g0), differentiate(1, g1)], ctx.threads)
        # The inner graphs' saved activations go now, not when the outer graph is dropped
        # (which can be after the next step's forward has built its own).
        ctx.outs = ctx.leaves = None
        (gx0, *gp0), (gx1, *gp1) = grads
        return (None, gx0, gx1, *gp0, *gp1)


def run_directions(rnns: Sequence[nn.Module], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """`[rnn(x)[0] for rnn, x in zip(rnns, inputs)]`, the two directions side by side where
    that is possible and, with `SCHEDULE = "auto"`, faster on this CPU (see the module docstring)."""
    if not _parallel_ok(inputs):
        return [rnn(x)[0] for rnn, x in zip(rnns, inputs)]
    if SCHEDULE == "side-by-side":
        return _both(rnns, inputs)
    kind = Chooser.kind(inputs[0])
    side, timed = CHOOSER.next(kind)
    start = time.perf_counter()
    outs = _both(rnns, inputs) if side else [rnn(x)[0] for rnn, x in zip(rnns, inputs)]
    if timed:
        CHOOSER.record(kind, side, time.perf_counter() - start, inputs[0].shape[0] * inputs[0].shape[1])
    return outs


def _both(rnns: Sequence[nn.Module], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    params = [p for rnn in rnns for p in rnn.parameters()]
    if torch.is_grad_enabled() and (any(p.requires_grad for p in params)
                                    or any(x.requires_grad for x in inputs)):
        return list(_TwoDirections.apply(tuple(rnns), *inputs, *params))
    threads = max(1, torch.get_num_threads() // 2)
    return _side_by_side([lambda: rnns[0](inputs[0])[0], lambda: rnns[1](inputs[1])[0]], threads)
