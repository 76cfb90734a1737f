"""Load test of `textlstm serve`: throughput, latency, errors and memory of the HTTP server
under concurrent clients, against offline prediction of the same texts measured in the same run.

    python benchmarks/serve_load.py --requests 500                  # smoke test, about a minute
    python benchmarks/serve_load.py                                 # 3,000 requests per config
    python benchmarks/serve_load.py --long 100000                   # + memory over 100k requests
    python benchmarks/serve_load.py --model DIR --clients 64 --seconds 30

What runs, in order (every step in its own process; this one only sends requests):

1. the model: `--model DIR`, or a quick SST-2 model trained in a temporary folder
   (`sentence-sentiment` preset, 1 epoch, `sst2/train.tsv`; about 10 s);
2. the offline baseline, in a child process: `TextClassifier.load(DIR).predict_proba(texts)` over
   the very texts the clients will send (SST-2 dev sentences, cycled), after a warm-up on 500 of
   them, best of 5 timed passes of at least 2,000 texts (the request texts, repeated when
   fewer); the same at batch 64 (the server's default `--max-batch`); the texts in request
   order, min(clients × texts per request, 64) per call — the most one micro-batch can gather at
   this concurrency, and unsorted, so padded to its longest text (best of 3); and
   `predict_proba([text])` one text per call on 1,000 of them (the latency floor of a request);
3. a null server (canned replies, no model: what this client and the loopback cost on their own);
4. `textlstm serve DIR --port <free>` as a subprocess, once per configuration (`--configs`:
   `batched` = the defaults, `unbatched` = `--max-batch 1`); once `GET /ready` answers 200,
   `--warmup` untimed requests, then the timed load: `--clients` threads, each with its own
   keep-alive connection, sending `--texts-per-request` sentences per `POST /predict` until
   `--requests` are sent (or for `--seconds`); then SIGTERM, and the exit code is checked;
5. with `--long N`: the batched configuration again for N requests, its RSS sampled every
   `--rss-every` seconds (memory flatness: RSS at 10 % of the requests against the end).

Measured per server run: texts/s, per-request latency (p50 / p90 / p99 / max), errors (status
other than 200, a reply that is not one prediction per text, or a connection error), the server's
RSS (its whole process tree: ready / start of timing / peak / end), the CPU used by the server and
by this client (both share the machine's cores, so the client's share is reported), and how far
the server's probabilities are from the offline ones for the same sentences.

Clients are threads in this process. `--client raw` (default) speaks HTTP/1.1 over a socket with
requests encoded in advance, the cheapest Python client found; `--client http.client` uses the
standard library's keep-alive connection (about twice the client CPU per request).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import http.client
import itertools
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, REPO, busy_note, cores, fmt, machine_info, print_table, today, write_json  # noqa: E402

try:
    import psutil
except ImportError:  # /proc is read instead
    psutil = None

HOST = "127.0.0.1"
CONFIGS = {"batched": [], "unbatched": ["--max-batch", "1"]}
TARGET_SHARE, TARGET_P99_MS, FLAT_SHARE = 0.70, 100.0, 0.05
DEFAULT_MAX_BATCH = 64  # textlstm serve's --max-batch


# -- texts ----------------------------------------------------------------------------------

def dev_sentences(data_dir: Path) -> list[str]:
    with open(data_dir / "sst2" / "dev.tsv", encoding="utf-8", newline="") as fh:
        return [r["sentence"] for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]


def request_texts(n_sentences: int, i: int, k: int) -> list[int]:
    """Indices of the sentences of request `i` (`k` per request, the dev set cycled)."""
    return [(i * k + j) % n_sentences for j in range(k)]


# -- child processes: training, the offline baseline, the null server -----------------------

def child_train(out: Path, data_dir: Path) -> dict:
    from textlstm import TextClassifier
    from textlstm.config import make_config

    start = time.perf_counter()
    clf = TextClassifier(make_config(preset="sentence-sentiment", overrides=["train.epochs=1"]))
    clf.train(data_dir / "sst2" / "train.tsv")
    clf.save(out)
    return {"train_s": time.perf_counter() - start}


def child_offline(model: Path, data_dir: Path, n_texts: int, single: int, group: int) -> dict:
    import torch
    from textlstm import TextClassifier

    sentences = dev_sentences(data_dir)
    texts = [sentences[i % len(sentences)] for i in range(n_texts)]
    clf = TextClassifier.load(model)
    clf.predict_proba(texts[:500])  # warm-up: oneDNN's set-up of the first batch shapes

    calls = -(-2000 // len(texts))  # a timed pass reads at least 2,000 texts

    def best_rate(batch_size: int) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls):
                clf.predict_proba(texts, batch_size)
            times.append(time.perf_counter() - start)
        return calls * len(texts) / min(times)

    def own_cpu_s() -> float:  # this process, its tokenizer pool's workers, and those reaped
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return tree_cpu_s(os.getpid()) + reaped.ru_utime + reaped.ru_stime

    wall0, own0, machine0 = time.perf_counter(), own_cpu_s(), machine_cpu_s()
    rate, rate64 = best_rate(256), best_rate(64)
    # the batcher's view: `group` consecutive request texts per call, unsorted across calls
    chunks = [texts[i:i + group] for i in range(0, len(texts), group)]
    for chunk in chunks[:20]:
        clf.predict_proba(chunk, len(chunk))
    group_times = []
    for _ in range(3):
        start = time.perf_counter()
        for chunk in chunks:
            clf.predict_proba(chunk, len(chunk))
        group_times.append(time.perf_counter() - start)
    for text in texts[:50]:
        clf.predict_proba([text])
    lat = []
    for text in texts[:single]:
        start = time.perf_counter()
        clf.predict_proba([text])
        lat.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall0
    other = max(0.0, 100 * (machine_cpu_s() - machine0 - (own_cpu_s() - own0)) / wall)
    probs = clf.predict_proba(sentences)
    return {"other_cpu_pct": other, "texts_per_s": rate, "texts_per_s_batch64": rate64, "group": group,
            "texts_per_s_group": len(texts) / min(group_times), "single": summarize(lat),
            "single_texts_per_s": len(lat) / sum(lat), "torch_threads": torch.get_num_threads(),
            "classes": [str(c) for c in clf.classes_], "probs": probs.tolist(),
            "rss_mb": proc_rss_mb(os.getpid())}


def child_null_server(port: int, k: int) -> None:
    """An HTTP/1.1 keep-alive server that answers every POST with a canned reply of `k`
    predictions and every GET with 200: the client's and the loopback's own cost."""
    pred = {"label": "1", "probabilities": {"0": 0.25, "1": 0.75}}
    body = json.dumps({"predictions": [pred] * k}).encode()
    reply = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
             + str(len(body)).encode() + b"\r\n\r\n" + body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, HOST, port)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.close)
        async with server:
            try:
                await server.serve_forever()
            except asyncio.CancelledError:
                pass

    asyncio.run(main())


def run_child(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, __file__, *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if run.returncode:
        sys.exit(f"{' '.join(args[:2])} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


# -- the server's process tree: RSS and CPU -------------------------------------------------

def proc_tree(pid: int) -> list[int]:
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            return [pid] + [p.pid for p in root.children(recursive=True)]
        except psutil.Error:
            return []
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def proc_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """RSS of the server and its children (workers): shared pages count once per process."""
    return sum(proc_rss_mb(p) for p in proc_tree(pid))


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    for p in proc_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (Linux /proc/stat, all cores)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[tuple[int, int], float]:
    """CPU seconds of every thread of the server's processes, by (process, thread id): the
    thread whose id is its process's is the main thread, where uvicorn's event loop runs."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for p in proc_tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                fields = Path(f"/proc/{p}/task/{tid}/stat").read_text().rpartition(")")[2].split()
                out[(p, int(tid))] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
    return out


def busiest_threads(before: dict, after: dict, wall: float) -> list[dict]:
    rows = [{"pid": p, "tid": t, "main": p == t, "cpu_pct": 100 * (cpu - before.get((p, t), 0.0)) / wall}
            for (p, t), cpu in after.items()]
    return sorted((r for r in rows if r["cpu_pct"] >= 0.5), key=lambda r: -r["cpu_pct"])


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float, issued) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.issued = pid, every, issued
        self.samples: list[tuple[float, int, float]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def sample(self) -> float:
        mb = tree_rss_mb(self.pid)
        self.samples.append((time.perf_counter() - self.t0, self.issued(), mb))
        return mb

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()


# -- clients --------------------------------------------------------------------------------

class RawConnection:
    """HTTP/1.1 keep-alive over a socket; requests are bytes prepared in advance."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout, self.sock, self.buf = port, timeout, None, b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(raw)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        head, self.buf = self.buf[:end], self.buf[end + 4:]
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            body = b""
            while True:
                while (end := self.buf.find(b"\r\n")) < 0:
                    self._recv()
                size = int(self.buf[:end].split(b";")[0], 16)
                while len(self.buf) < end + 2 + size + 2:
                    self._recv()
                body += self.buf[end + 2:end + 2 + size]
                self.buf = self.buf[end + 2 + size + 2:]
                if size == 0:
                    break  # (trailers are not expected)
        elif length is not None:
            while len(self.buf) < length:
                self._recv()
            body, self.buf = self.buf[:length], self.buf[length:]
        else:  # no length: the body runs to the end of the connection
            try:
                while True:
                    self._recv()
            except ConnectionError:
                pass
            body, close = self.buf, True
        if close:
            self.close()
        return status, body


class StdlibConnection:
    """`http.client.HTTPConnection` (keep-alive)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout, self.conn = port, timeout, None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def request(self, body: bytes) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        self.conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self.close()
        return resp.status, data


class Load:
    """`clients` threads sending requests until `total` are sent or `seconds` have passed."""

    def __init__(self, port: int, sentences: list[str], args: argparse.Namespace, total: int | None,
                 seconds: float | None, classes: list[str] | None = None) -> None:
        self.port, self.args, self.total, self.seconds = port, args, total, seconds
        self.n, self.k = len(sentences), args.texts_per_request
        self.raw = args.client == "raw"
        self.bodies: dict[int, bytes] = {}
        for i in range(self.n):  # request i's texts depend on i·k mod n only
            start = (i * self.k) % self.n
            if start in self.bodies:
                break
            body = json.dumps({"texts": [sentences[j] for j in request_texts(self.n, i, self.k)]}).encode()
            self.bodies[start] = (b"POST /predict HTTP/1.1\r\nHost: " + f"{HOST}:{port}".encode()
                                  + b"\r\nContent-Type: application/json\r\nContent-Length: "
                                  + str(len(body)).encode() + b"\r\n\r\n" + body) if self.raw else body
        self.counter = itertools.count()
        self.issued_n = 0
        self.latencies: list[list[float]] = []
        self.starts: list[list[float]] = []
        self.errors: dict[str, int] = {}
        self.error_lock = threading.Lock()
        self.seen: dict[int, dict] = {}  # sentence index -> the server's probabilities
        self.labels_ok = set(classes) if classes else None

    def issued(self) -> int:
        return min(self.issued_n, self.total) if self.total is not None else self.issued_n

    def error(self, kind: str) -> None:
        with self.error_lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def check(self, i: int, status: int, data: bytes) -> bool:
        if status != 200:
            self.error(f"HTTP {status}")
            return False
        try:
            preds = json.loads(data)["predictions"]
            if len(preds) != self.k:
                raise ValueError(f"{len(preds)} predictions for {self.k} texts")
            for j, pred in zip(request_texts(self.n, i, self.k), preds):
                probs = pred["probabilities"]
                if pred["label"] not in probs or max(probs, key=probs.get) != pred["label"]:
                    raise ValueError("label is not the most probable")
                self.seen.setdefault(j, probs)
        except (ValueError, KeyError, TypeError) as exc:
            self.error(f"bad reply: {type(exc).__name__}: {exc}"[:120])
            return False
        return True

    def worker(self, barrier: threading.Barrier, deadline_box: list[float]) -> None:
        conn = (RawConnection if self.raw else StdlibConnection)(self.port, self.args.request_timeout)
        lat: list[float] = []
        starts: list[float] = []
        self.latencies.append(lat)
        self.starts.append(starts)
        barrier.wait()
        deadline = deadline_box[0]
        clock = time.perf_counter
        while True:
            i = next(self.counter)
            self.issued_n = i + 1
            if (self.total is not None and i >= self.total) or clock() > deadline:
                break
            payload = self.bodies[(i * self.k) % self.n]
            start = clock()
            starts.append(start)
            try:
                status, data = conn.request(payload)
            except (OSError, http.client.HTTPException, ValueError, IndexError) as exc:
                lat.append(clock() - start)
                self.error(f"{type(exc).__name__}: {exc}"[:120])
                conn.close()
                continue
            lat.append(clock() - start)
            self.check(i, status, data)
        conn.close()

    def run(self) -> dict:
        barrier = threading.Barrier(self.args.clients + 1)
        deadline_box = [float("inf")]
        threads = [threading.Thread(target=self.worker, args=(barrier, deadline_box), daemon=True)
                   for _ in range(self.args.clients)]
        for t in threads:
            t.start()
        if self.seconds is not None:
            deadline_box[0] = time.perf_counter() + self.seconds
        cpu0, start = time.process_time(), time.perf_counter()
        barrier.wait()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        pairs = [(t - start, x) for ts, xs in zip(self.starts, self.latencies) for t, x in zip(ts, xs)]
        lat = sorted(x for _, x in pairs)
        n_err = sum(self.errors.values())
        ok = len(lat) - n_err
        tenths: list[list[float]] = [[] for _ in range(10)]
        for t, x in pairs:
            tenths[min(9, int(10 * t / wall))].append(x)
        slow = sorted(t for t, x in pairs if 1000 * x > TARGET_P99_MS)
        return {"requests": len(lat), "ok": ok, "errors": n_err, "error_kinds": dict(self.errors),
                "wall_s": wall, "requests_per_s": len(lat) / wall, "texts_per_s": ok * self.k / wall,
                "latency_ms": summarize(lat, sorted_=True), "client_cpu_s": cpu,
                "p99_ms_by_tenth": [summarize(part)["p99"] for part in tenths],
                "slow_requests": len(slow), "slow_request_starts_s": [round(t, 3) for t in slow[:50]]}


def summarize(values: list[float], sorted_: bool = False) -> dict:
    """Percentiles in milliseconds (nearest rank)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    v = values if sorted_ else sorted(values)
    pick = lambda q: 1000 * v[min(len(v) - 1, max(0, int(round(q * len(v))) - 1))]  # noqa: E731
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": 1000 * v[-1],
            "mean": 1000 * sum(v) / len(v)}


# -- one server run -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            return None
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/ready")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.1)
    return None


def scrape(port: int) -> dict[str, float] | None:
    """`_sum` and `_count` of the server's batch and request histograms from `GET /metrics`
    (Prometheus text), or None when it has none."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    if resp.status != 200:
        return None
    out = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(("textlstm_batch_", 'textlstm_request_duration_seconds_sum{endpoint="/predict"',
                            'textlstm_request_duration_seconds_count{endpoint="/predict"')) \
                and name.split("{")[0].endswith(("_sum", "_count")):
            try:
                out[name.split("{")[0]] = float(value)
            except ValueError:
                pass
    return out or None


def batch_stats(before: dict | None, after: dict | None, wall: float) -> dict | None:
    """Batches formed during the timed run: how many, their mean size and time, the share of
    the run the model was busy, the server's own mean time per /predict request."""
    if not before or not after:
        return None
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    n = d.get("textlstm_batch_texts_count", 0)
    if not n:
        return None
    out = {"batches": int(n), "texts_per_batch": d.get("textlstm_batch_texts_sum", 0) / n,
           "requests_per_batch": d.get("textlstm_batch_requests_sum", 0) / n,
           "batch_ms": 1000 * d.get("textlstm_batch_duration_seconds_sum", 0) / n,
           "model_busy_pct": 100 * d.get("textlstm_batch_duration_seconds_sum", 0) / wall}
    if d.get("textlstm_request_duration_seconds_count"):
        out["server_request_ms"] = (1000 * d["textlstm_request_duration_seconds_sum"]
                                    / d["textlstm_request_duration_seconds_count"])
    return out


def server_command(args: argparse.Namespace, model: Path, port: int, extra: list[str]) -> list[str]:
    if args.server_cmd:
        base = shlex.split(args.server_cmd.format(python=sys.executable, model=model, port=port, host=HOST))
    else:
        base = [sys.executable, "-m", "textlstm.cli", "serve", str(model), "--host", HOST, "--port", str(port)]
    return base + extra + list(args.server_arg)


def run_server(name: str, cmd_extra: list[str] | None, args: argparse.Namespace, model: Path,
               sentences: list[str], total: int | None, seconds: float | None, rss_every: float,
               logdir: Path, offline: dict | None) -> dict:
    port = free_port()
    if cmd_extra is None:  # the null server
        cmd = [sys.executable, __file__, "--child", "null-server", "--port", str(port),
               "--texts-per-request", str(args.texts_per_request)]
    else:
        cmd = server_command(args, model, port, cmd_extra)
    env = dict(os.environ)
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    log_path = logdir / f"server-{name}.log"
    result: dict = {"config": name, "command": shlex.join(cmd), "log": str(log_path)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                start_new_session=True)
    try:
        ready = wait_ready(proc, port, args.ready_timeout)
        if ready is None:
            result["error"] = (f"not ready within {args.ready_timeout:.0f} s" if proc.poll() is None
                               else f"exited with code {proc.returncode} before /ready")
            return result
        result["ready_s"] = ready
        result["rss_ready_mb"] = tree_rss_mb(proc.pid)
        classes = offline["classes"] if offline else None
        if args.warmup:
            warm = Load(port, sentences, args, args.warmup, None).run()
            result["warmup"] = {k: warm[k] for k in ("requests", "errors", "error_kinds", "wall_s")}
        load = Load(port, sentences, args, total, seconds, classes)
        sampler = RssSampler(proc.pid, rss_every, load.issued)
        metrics0 = scrape(port) if cmd_extra is not None else None
        cpu0, threads0, machine0 = tree_cpu_s(proc.pid), thread_cpu_s(proc.pid), machine_cpu_s()
        result["rss_start_mb"] = sampler.sample()
        sampler.start()
        result.update(load.run())
        sampler.stop.set()
        sampler.join()
        result["server_cpu_s"] = tree_cpu_s(proc.pid) - cpu0
        result["other_cpu_pct"] = max(0.0, 100 * (machine_cpu_s() - machine0 - result["server_cpu_s"]
                                                  - result["client_cpu_s"]) / result["wall_s"])
        result["server_threads"] = busiest_threads(threads0, thread_cpu_s(proc.pid), result["wall_s"])
        if metrics0 is not None:  # (with several workers a scrape sees one of them)
            result["batching"] = batch_stats(metrics0, scrape(port), result["wall_s"])
        result["rss_end_mb"] = sampler.sample()
        result["rss_peak_mb"] = max(s[2] for s in sampler.samples)
        result["rss_samples"] = [[round(t, 2), n, round(mb, 1)] for t, n, mb in sampler.samples]
        result["server_cpu_pct"] = 100 * result["server_cpu_s"] / result["wall_s"]
        result["client_cpu_pct"] = 100 * result["client_cpu_s"] / result["wall_s"]
        if result["requests"]:
            result["server_cpu_ms_per_request"] = 1000 * result["server_cpu_s"] / result["requests"]
            result["client_cpu_ms_per_request"] = 1000 * result["client_cpu_s"] / result["requests"]
        if offline and cmd_extra is not None:
            result["vs_offline"] = compare(load.seen, offline)
    finally:
        result.update(stop_server(proc, args.stop_timeout))
        result["log_tail"] = log_path.read_text(errors="replace")[-2000:]
    return result


def stop_server(proc: subprocess.Popen, timeout: float) -> dict:
    if proc.poll() is not None:
        return {"exit_code": proc.returncode, "stopped_by": "itself"}
    tree = proc_tree(proc.pid)
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout)
        out = {"exit_code": code, "stop_s": time.perf_counter() - start, "stopped_by": "SIGTERM"}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out = {"exit_code": None, "stop_s": None, "stopped_by": f"SIGKILL after {timeout:.0f} s"}
    time.sleep(0.2)
    left = [p for p in tree[1:] if Path(f"/proc/{p}").exists()]
    if left:  # workers that outlived the server
        out["left_running"] = left
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    return out


def compare(seen: dict[int, dict], offline: dict) -> dict:
    """The server's probabilities against offline `predict_proba` of the same sentences."""
    classes, probs = offline["classes"], offline["probs"]
    diffs, flips, unmatched = [], 0, 0
    for j, got in seen.items():
        if set(got) != set(classes):
            unmatched += 1
            continue
        want = dict(zip(classes, probs[j]))
        diffs.append(max(abs(float(got[c]) - want[c]) for c in classes))
        flips += max(got, key=got.get) != max(want, key=want.get)
    return {"sentences": len(seen), "max_abs_diff": max(diffs) if diffs else None,
            "label_flips": flips, "labels_not_matching_classes": unmatched}


# -- report ---------------------------------------------------------------------------------

def at_share(samples: list[list], total: int, share: float) -> float | None:
    """RSS of the first sample taken once `share` of the requests were sent."""
    for _, n, mb in samples:
        if n >= share * total:
            return mb
    return None


def slope_mb_per_10k(samples: list[list], total: int) -> float | None:
    pts = [(n, mb) for _, n, mb in samples if n >= 0.1 * total]
    if len(pts) < 3:
        return None
    mx = sum(n for n, _ in pts) / len(pts)
    my = sum(mb for _, mb in pts) / len(pts)
    den = sum((n - mx) ** 2 for n, _ in pts)
    return None if den == 0 else 1e4 * sum((n - mx) * (mb - my) for n, mb in pts) / den


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model directory (default: train a quick SST-2 model)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--clients", type=int, default=32, help="concurrent connections (threads)")
    ap.add_argument("--texts-per-request", type=int, default=1)
    ap.add_argument("--requests", type=int, default=3000, help="requests per configuration")
    ap.add_argument("--seconds", type=float, help="run each configuration this long instead")
    ap.add_argument("--warmup", type=int, default=300, help="untimed requests after /ready")
    ap.add_argument("--configs", default="batched,unbatched", help="batched (defaults), unbatched (--max-batch 1)")
    ap.add_argument("--null-requests", type=int, default=20000, help="requests to the null server (0: skip it)")
    ap.add_argument("--long", type=int, metavar="N", help="then N requests to the batched server, RSS sampled")
    ap.add_argument("--rss-every", type=float, default=5.0, help="RSS sampling period of --long (s)")
    ap.add_argument("--client", choices=("raw", "http.client"), default="raw")
    ap.add_argument("--server-arg", action="append", default=[], help="extra argument for every server (repeatable)")
    ap.add_argument("--server-env", action="append", default=[], metavar="K=V", help="environment of the server")
    ap.add_argument("--server-cmd", help="server command template ({python} {model} {port} {host}) instead of textlstm serve")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--stop-timeout", type=float, default=20.0)
    ap.add_argument("--request-timeout", type=float, default=30.0)
    ap.add_argument("--json", type=Path, help="default: benchmarks/results/serve-load-DATE.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n-texts", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--group", type=int, default=32, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "train":
        print(json.dumps(child_train(args.out, args.data_dir)))
        return
    if args.child == "offline":
        print(json.dumps(child_offline(args.model, args.data_dir, args.n_texts, 1000, args.group)))
        return
    if args.child == "null-server":
        child_null_server(args.port, args.texts_per_request)
        return

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"Unknown configuration {', '.join(unknown)}. Choose from: {', '.join(CONFIGS)}.")
    note = busy_note()
    sentences = dev_sentences(args.data_dir)
    total = None if args.seconds else args.requests
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        tmp = Path(tmp)
        model, train_s = args.model, None
        if model is None:
            model = tmp / "model"
            print(f"training a quick SST-2 model in {model} ...", file=sys.stderr)
            train_s = run_child(["--child", "train", "--out", str(model), "--data-dir", str(args.data_dir)], 900)["train_s"]
        n_texts = (total or 3000) * args.texts_per_request
        group = max(1, min(args.clients * args.texts_per_request, DEFAULT_MAX_BATCH))
        print(f"offline baseline over {n_texts:,} texts ...", file=sys.stderr)
        offline = run_child(["--child", "offline", "--model", str(model), "--data-dir", str(args.data_dir),
                             "--n-texts", str(n_texts), "--group", str(group)], 900)
        runs = []
        if args.null_requests:
            print(f"null server: {args.null_requests} requests, {args.clients} clients ...", file=sys.stderr)
            runs.append(run_server("null server", None, args, model, sentences, args.null_requests, None, 0.5,
                                   tmp, offline))
        for name in configs:
            print(f"{name}: {total or args.seconds} {'requests' if total else 's'}, "
                  f"{args.clients} clients ...", file=sys.stderr)
            runs.append(run_server(name, CONFIGS[name], args, model, sentences, total, args.seconds, 0.5, tmp,
                                   offline))
        if args.long:
            print(f"long run: {args.long:,} requests ...", file=sys.stderr)
            runs.append(run_server(f"batched, long {args.long:,}", CONFIGS["batched"], args, model, sentences,
                                   args.long, None, args.rss_every, tmp, offline))
    elapsed = time.perf_counter() - started

    base = offline["texts_per_s"]
    rows = [["offline predict_proba (batch 256)", "—", f"{base:,.0f}", "1.00×", "—", "—", "—", "—"],
            ["offline predict_proba (batch 64)", "—", f"{offline['texts_per_s_batch64']:,.0f}",
             f"{offline['texts_per_s_batch64'] / base:.2f}×", "—", "—", "—", "—"],
            [f"offline, {offline['group']} request texts per call", "—", f"{offline['texts_per_s_group']:,.0f}",
             f"{offline['texts_per_s_group'] / base:.2f}×", "—", "—", "—", "—"],
            ["offline predict_proba, 1 text per call", "—", f"{offline['single_texts_per_s']:,.0f}",
             f"{offline['single_texts_per_s'] / base:.2f}×", fmt(offline["single"]["p50"], 2),
             fmt(offline["single"]["p99"], 2), "—", "—"]]
    mem_rows = [["offline process", fmt(offline["rss_mb"], 0), "—", "—", "—", "—", "—", "—"]]
    notes = []
    if offline.get("other_cpu_pct", 0) >= 15:
        notes.append(f"offline baseline: other processes used {offline['other_cpu_pct']:.0f} % CPU while it was "
                     "timed: its figures are unreliable")
    for r in runs:
        if "error" in r:
            rows.append([r["config"], "—", "failed", "", "", "", "", "see below"])
            notes.append(f"{r['config']}: {r['error']}; log tail: {r.get('log_tail', '')[-300:]!r}")
            continue
        lat = r["latency_ms"]
        rows.append([r["config"], f"{r['requests']:,}", f"{r['texts_per_s']:,.0f}", f"{r['texts_per_s'] / base:.2f}×",
                     fmt(lat["p50"], 2), fmt(lat["p99"], 2), fmt(lat["max"], 1), str(r["errors"])])
        mem_rows.append([r["config"], fmt(r["rss_ready_mb"], 0), fmt(r["rss_start_mb"], 0), fmt(r["rss_peak_mb"], 0),
                         fmt(r["rss_end_mb"], 0), f"{r['server_cpu_pct']:.0f} / {r['client_cpu_pct']:.0f}",
                         f"{r.get('server_cpu_ms_per_request', 0):.3f} / {r.get('client_cpu_ms_per_request', 0):.3f}",
                         str(r["exit_code"]) if r["stopped_by"] == "SIGTERM" else f"{r['exit_code']} ({r['stopped_by']})"])
        if r["errors"]:
            notes.append(f"{r['config']} errors: {r['error_kinds']}")
        if r.get("other_cpu_pct", 0) >= 15:
            notes.append(f"{r['config']}: other processes used {r['other_cpu_pct']:.0f} % CPU during the run "
                         "(of {0} % on {1} cores): its figures are unreliable".format(100 * cores(), cores()))
        if r.get("server_threads") and r["config"] != "null server":
            notes.append(f"{r['config']}: CPU % of the server's busiest threads: " + ", ".join(
                f"{'main' if t['main'] else 'thread'} {t['tid']} {t['cpu_pct']:.0f}" for t in r["server_threads"][:5]))
        if r.get("left_running"):
            notes.append(f"{r['config']}: processes outlived the server: {r['left_running']}")
        if r.get("slow_requests") and r["config"] != "null server":
            starts = r["slow_request_starts_s"]
            notes.append(f"{r['config']}: {r['slow_requests']} requests over {TARGET_P99_MS:.0f} ms, sent "
                         f"{starts[0]:.2f}–{starts[-1]:.2f} s into the {r['wall_s']:.1f} s run"
                         + ("" if len(starts) == r["slow_requests"] else " (the first 50)")
                         + "; p99 by tenth of the run: " + " ".join(fmt(x, 0) for x in r["p99_ms_by_tenth"]))
        if r.get("batching"):
            b = r["batching"]
            notes.append(f"{r['config']}: {b['batches']:,} forward passes of {b['texts_per_batch']:.1f} texts "
                         f"on average, {b['batch_ms']:.2f} ms each (tokenizing included); the model was busy "
                         f"{b['model_busy_pct']:.0f} % of the run"
                         + (f"; the server's own time per request {b['server_request_ms']:.1f} ms"
                            if "server_request_ms" in b else ""))
        if r.get("vs_offline"):
            v = r["vs_offline"]
            notes.append(f"{r['config']} vs offline on {v['sentences']} sentences: max |Δp| "
                         f"{fmt(v['max_abs_diff'], 6)}, label flips {v['label_flips']}"
                         + (f", {v['labels_not_matching_classes']} replies with other label names"
                            if v["labels_not_matching_classes"] else ""))
    long_run = next((r for r in runs if r["config"].startswith("batched, long") and "error" not in r), None)
    if long_run:
        r10 = at_share(long_run["rss_samples"], args.long, 0.1)
        long_run["rss_at_10pct_mb"] = r10
        long_run["rss_slope_mb_per_10k"] = slope_mb_per_10k(long_run["rss_samples"], args.long)
        notes.append(f"long run RSS: {fmt(r10, 1)} MB at 10 % of the requests, {long_run['rss_end_mb']:.1f} MB at "
                     f"the end (peak {long_run['rss_peak_mb']:.1f}); slope after 10 %: "
                     f"{fmt(long_run['rss_slope_mb_per_10k'], 2)} MB per 10k requests")
    kind = f"{args.texts_per_request} sentence{'s' if args.texts_per_request > 1 else ''} per request"
    print_table(f"textlstm serve under load: {args.clients} clients ({args.client}), {kind}, "
                f"{'%d requests' % total if total else '%g s' % args.seconds} per run",
                ["configuration", "requests", "texts/s", "× offline", "p50 ms", "p99 ms", "max ms", "errors"], rows)
    print_table("Server memory (RSS of its process tree, MB), CPU (server / this client) and exit code on SIGTERM",
                ["configuration", "ready MB", "start MB", "peak MB", "end MB", "CPU % srv / cli",
                 "CPU ms/req srv / cli", "exit"], mem_rows, notes + ([note] if note else []))

    targets = targets_report(runs, base, args, long_run)
    for line in targets:
        print(line)
    out = args.json or REPO / "benchmarks" / "results" / f"serve-load-{datetime.date.today().isoformat()}.json"
    offline_out = {k: v for k, v in offline.items() if k != "probs"}
    write_json(out, {"date": today(), "machine": machine_info(), "psutil": psutil is not None,
                     "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                  if k not in ("child", "out", "port", "n_texts")},
                     "model": str(args.model) if args.model else "quick SST-2 model (1 epoch)", "train_s": train_s,
                     "elapsed_s": elapsed, "offline": offline_out, "runs": runs, "targets": targets})
    print(f"results written to {out}")


def targets_report(runs: list[dict], base: float, args: argparse.Namespace, long_run: dict | None) -> list[str]:
    """The issue's targets as PASS / FAIL lines."""
    lines = []
    as_target = args.clients == 32 and args.texts_per_request == 1
    if not as_target:
        lines.append(f"note: the targets assume 32 clients sending 1 sentence; this run: {args.clients} × "
                     f"{args.texts_per_request}")
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    batched = next((r for r in runs if r["config"] == "batched"), None)
    if batched and "error" not in batched:
        share = batched["texts_per_s"] / base
        lines.append(f"{verdict(share >= TARGET_SHARE)}  throughput ≥ {TARGET_SHARE:.0%} of offline predict_proba: "
                     f"{batched['texts_per_s']:,.0f} / {base:,.0f} texts/s = {share:.0%} (batched)")
        p99 = batched["latency_ms"]["p99"]
        lines.append(f"{verdict(p99 <= TARGET_P99_MS)}  p99 ≤ {TARGET_P99_MS:.0f} ms: {p99:.1f} ms (batched)")
    else:
        lines.append("FAIL  throughput and p99: the batched server did not run")
    servers = [r for r in runs if r["config"] != "null server"]
    failed = sum(r.get("errors", 0) for r in servers) + sum(1 for r in servers if "error" in r)
    sent = sum(r.get("requests", 0) for r in servers)
    lines.append(f"{verdict(failed == 0)}  no failed request: {failed} failed of {sent:,} "
                 f"(+ {sum(r.get('warmup', {}).get('errors', 0) for r in servers)} in warm-ups)")
    if long_run:
        r10, end = long_run["rss_at_10pct_mb"], long_run["rss_end_mb"]
        growth = (end - r10) / r10 if r10 else None
        ok = growth is not None and growth <= FLAT_SHARE
        small = "" if args.long >= 100_000 else f" (only {args.long:,} requests: indicative)"
        lines.append(f"{verdict(ok)}  memory flat (≤ {FLAT_SHARE:.0%} growth from 10 % of the requests to the "
                     f"end): {fmt(r10, 1)} → {end:.1f} MB ({fmt(None if growth is None else 100 * growth, 1)} %)"
                     f"{small}")
    else:
        lines.append("n/a   memory flat over 100,000 requests: not run (--long 100000)")
    codes = [(r["config"], r.get("exit_code")) for r in servers]
    lines.append(f"{verdict(all(c == 0 for _, c in codes))}  exit code 0 on SIGTERM: "
                 + ", ".join(f"{n} {c}" for n, c in codes))
    return lines


if __name__ == "__main__":
    main()
