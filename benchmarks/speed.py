"""Speed benchmark: textlstm's model against the tutorial BiLSTM at equal size, plus the pieces
around it (GEMM ceiling, tokenizers, corpus cache).

    python benchmarks/speed.py --quick                    # smoke test, ~1-2 min
    python benchmarks/speed.py --json out/speed.json      # 2,000 docs, 30 steps; full IMDB start-up

Training: a fixed number of steps (forward, cross-entropy, backward, AdamW step) after a few
untimed warm-up steps, on a stratified subsample of IMDB and SST-2 training texts, tokenized
once with textlstm's regex tokenizer and the preset's truncation mode (IMDB: head+tail) at the
tutorial's length (400 / 60 tokens, so both models read the same tokens), one shared
vocabulary (words seen twice), the preset's embedding and hidden sizes and the same
batch size for both. textlstm batches with `bucket_batches` + `collate`; the tutorial pads /
truncates every text to 400 (IMDB) or 60 (SST-2) tokens. Real tokens are the texts' own tokens;
LSTM positions are those the recurrent layers compute, counted by a hook on textlstm's encoder
(batch × longest text of a padded batch; real tokens only if it packs).

Recurrent FLOPs (multiply and add counted as 2): one LSTM layer and direction does, per token,
x·W_ih (4H×I) and h·W_hh (4H×H), i.e. 8·H·(I+H) FLOPs, I = E for the first layer and
2H (bidirectional) above; element-wise gate math is left out. Backward ≈ 2× forward, so a
training step costs 3× forward, counted over the LSTM positions. GFLOP/s divides by the whole
step time (embedding, pooling, head and optimizer included), so it is a lower bound of the
LSTM's own rate.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
import tutorial_bilstm as tb  # noqa: E402
from common import (DATA_DIR, PRESETS, SEED, busy_note, fmt, limit_threads, machine_info,  # noqa: E402
                    make_tokenizer, preset_model_sizes, print_table, read_imdb, read_sst2,
                    stratified_part, timer, today, write_json)

TUTORIAL_MAX_LEN = {"imdb": 400, "sst2": 60}


@dataclass
class Settings:
    docs: int  # training subsample per data set
    warmup: int  # untimed steps
    steps: int  # timed steps
    batch_size: int
    tokenize_docs: int
    startup_docs: int  # 0: the whole IMDB training file
    threads: int


QUICK = dict(docs=500, warmup=1, steps=5, tokenize_docs=500, startup_docs=500)
FULL = dict(docs=2000, warmup=2, steps=30, tokenize_docs=2000, startup_docs=0)


def lstm_flops_per_token(emb: int, hidden: int, layers: int = 1, directions: int = 2) -> int:
    """Forward FLOPs of the recurrent layers per token (see the module docstring)."""
    inputs = [emb] + [directions * hidden] * (layers - 1)
    return directions * sum(8 * hidden * (i + hidden) for i in inputs)


def gemm_gflops(size: int = 1024, rounds: int = 5, reps: int = 10,
                dtype: torch.dtype = torch.float32) -> float:
    """Best of `rounds` of `reps` `size`² matmuls: the ceiling for the recurrent math (float32,
    the issue's yardstick; bfloat16 too, the type textlstm's mixed precision computes in)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(rounds):
        with timer() as t:
            for _ in range(reps):
                a @ b
        best = min(best, t["s"] / reps)
    return 2 * size ** 3 / best / 1e9


# -- training and inference ------------------------------------------------------------------

def load_texts(dataset: str, data_dir: Path, n: int) -> tuple[list[str], list[str]]:
    texts, labels = read_imdb(data_dir) if dataset == "imdb" else read_sst2(data_dir / "sst2" / "train.tsv")
    if n < len(texts):
        _, _, texts, labels = stratified_part(texts, labels, n)
    return texts, labels


def timed_steps(step: Callable[[int], tuple[int, int]], s: Settings) -> dict[str, float]:
    """Run `s.warmup` steps and one untimed pass over the timed batches (so every batch shape
    has met oneDNN once: otherwise a system pays per-shape set-up that a later one with the same
    shapes skips), then time `s.steps` training steps; `step(i)` returns (real tokens,
    processed recurrent positions) of its batch."""
    for i in range(s.warmup + s.steps):
        step(i)
    real = processed = 0
    with timer() as t:
        for i in range(s.warmup, s.warmup + s.steps):
            r, p = step(i)
            real, processed = real + r, processed + p
    return {"seconds": t["s"], "real_tokens": real, "recurrent_positions": processed}


def count_positions(encoder: nn.Module) -> dict[str, int]:
    """A counter, updated on every call of `encoder`, of the positions its recurrent layers
    compute: batch × seq of a padded input, the real steps of a packed one."""
    counter = {"n": 0}

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0]
        counter["n"] += x.data.shape[0] if isinstance(x, PackedSequence) else x.shape[0] * x.shape[1]

    encoder.register_forward_pre_hook(hook)
    return counter


def bench_textlstm(ids: list[np.ndarray], y: np.ndarray, vocab_size: int, n_labels: int, preset: str,
                   s: Settings, amp: bool | None = None, schedule: str = "auto") -> dict:
    """textlstm's own training step (`Trainer.train_step`: the preset's optimiser, clipping,
    schedule and mixed precision, or `amp` if given), with the embeddings trainable (as after
    unfreezing). `schedule` is `textlstm.model.directions.SCHEDULE`: "auto" (the default: each
    kind of call times both schedules on its first calls and keeps the faster), "side-by-side"
    or "in-turn" (the two directions one after the other)."""
    from textlstm.model import directions

    original = directions.SCHEDULE
    directions.SCHEDULE = schedule
    try:
        return _bench_textlstm(ids, y, vocab_size, n_labels, preset, s, amp)
    finally:
        directions.SCHEDULE = original


def _bench_textlstm(ids: list[np.ndarray], y: np.ndarray, vocab_size: int, n_labels: int, preset: str,
                    s: Settings, amp: bool | None) -> dict:
    from textlstm.data.batching import EncodedDataset, bucket_batches, padding_share
    from textlstm.config import make_config
    from textlstm.model.infer import predict_logits
    from textlstm.model import TextLSTM
    from textlstm.training.trainer import Trainer

    cfg = make_config(preset=preset)
    cfg.train.batch_size, cfg.train.threads = s.batch_size, s.threads
    if amp is not None:
        cfg.train.amp = amp
    data = EncodedDataset(ids, y)
    torch.manual_seed(SEED)
    model = TextLSTM(cfg.model, vocab_size, n_labels).train()
    positions = count_positions(model.encoder)
    trainer = Trainer(model, cfg.train, data, n_labels=n_labels)
    rng = np.random.default_rng(SEED)
    batches = bucket_batches(data.lengths, s.batch_size, cfg.train.bucket_chunk, rng)
    batches = [batches[i % len(batches)] for i in range(s.warmup + s.steps)]

    def step(i: int) -> tuple[int, int]:
        _, tokens, _ = trainer.train_step(batches[i], 1, i + 1)
        before, positions["n"] = positions["n"], 0
        return tokens, before

    out = timed_steps(step, s)
    positions["n"] = 0
    with timer() as t:
        predict_logits(model, data, batch_size=256)
    timed = batches[s.warmup:]
    return out | {"padding_share": padding_share(timed, data.lengths), "infer_s": t["s"],
                  "infer_positions": positions["n"],
                  "amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "float32"}


def bench_tutorial(ids: torch.Tensor, y: np.ndarray, vocab_size: int, n_labels: int, preset: str,
                   s: Settings) -> dict:
    emb, hidden = preset_model_sizes(preset)
    torch.manual_seed(SEED)
    model = tb.TutorialBiLSTM(vocab_size, emb, hidden, n_labels).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    labels = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    order = torch.cat([torch.randperm(len(ids), generator=gen)
                       for _ in range(1 + (s.warmup + s.steps) * s.batch_size // len(ids))])

    def step(i: int) -> tuple[int, int]:
        batch = order[i * s.batch_size:(i + 1) * s.batch_size]
        loss = nn.functional.cross_entropy(model(ids[batch]), labels[batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return int((ids[batch] != tb.PAD).sum()), ids[batch].numel()

    out = timed_steps(step, s)
    with timer() as t:
        tb.predict(model, ids, batch_size=256)
    return out | {"padding_share": 1 - out["real_tokens"] / out["recurrent_positions"],
                  "infer_s": t["s"], "infer_positions": ids.numel()}


def bench_dataset(dataset: str, s: Settings, data_dir: Path, notes: list[str]) -> dict[str, dict]:
    preset = PRESETS[dataset]
    texts, labels = load_texts(dataset, data_dir, s.docs)
    tokenize, tok_note = make_tokenizer(preset, kind="regex", max_tokens=TUTORIAL_MAX_LEN[dataset])
    tokens = tokenize(texts)
    vocab = tb.build_vocab(tokens, min_count=2)
    classes = sorted(set(labels))
    y = np.array([classes.index(lab) for lab in labels], dtype=np.int64)
    emb, hidden = preset_model_sizes(preset)
    flops = lstm_flops_per_token(emb, hidden)
    notes.append(f"{dataset}: {len(texts):,} texts, {sum(map(len, tokens)):,} tokens, {tok_note}")
    encoded = [np.asarray([vocab.get(t, tb.UNK) for t in doc] or [tb.UNK], dtype=np.int64) for doc in tokens]
    runs = {
        "textlstm": lambda: bench_textlstm(encoded, y, len(vocab), len(classes), preset, s),
        # the same in float32: what mixed precision adds
        "textlstm-float32": lambda: bench_textlstm(encoded, y, len(vocab), len(classes), preset, s, amp=False),
        # the directions' two schedules forced: what "auto" chose between
        "textlstm-side-by-side": lambda: bench_textlstm(encoded, y, len(vocab), len(classes), preset, s,
                                                        schedule="side-by-side"),
        "textlstm-in-turn": lambda: bench_textlstm(encoded, y, len(vocab), len(classes), preset, s,
                                                   schedule="in-turn"),
        "tutorial": lambda: bench_tutorial(tb.encode(tokens, vocab, TUTORIAL_MAX_LEN[dataset]),
                                           y, len(vocab), len(classes), preset, s),
    }
    results = {}
    for system, run in runs.items():
        try:
            r = run()
        except Exception as exc:  # noqa: BLE001 - recorded per row; the suite goes on
            traceback.print_exc()
            results[system] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        results[system] = summarize(r, flops, len(texts), s.batch_size)
    return results


def summarize(r: dict, flops: int, n_docs: int, batch_size: int) -> dict:
    sec, isec = r["seconds"], r["infer_s"]
    return {"precision": r.get("amp", "float32"), "batch_size": batch_size, "padding_share": r["padding_share"],
            "train_real_tokens_per_s": r["real_tokens"] / sec,
            "train_processed_positions_per_s": r["recurrent_positions"] / sec,
            "train_recurrent_gflops": 3 * flops * r["recurrent_positions"] / sec / 1e9,
            "infer_docs_per_s": n_docs / isec,
            "infer_recurrent_gflops": flops * r["infer_positions"] / isec / 1e9,
            "timed_steps_s": sec}


# -- tokenizers and the corpus cache ---------------------------------------------------------

def bench_tokenizers(texts: list[str]) -> dict[str, dict]:
    """Tokens/s of textlstm's spaCy and regex tokenizers, in this process (one core)."""
    from textlstm.config import TokenizerConfig
    from textlstm.data.tokenize import Tokenizer

    out = {}
    for kind in ("spacy", "regex"):
        tok = Tokenizer(TokenizerConfig(kind=kind, max_tokens=0))
        tok.tokenize(texts[0])  # warm-up
        with timer() as t:
            n = sum(len(x) for x in tok.pipe(texts, n_process=1))
        out[kind] = {"tokens_per_s": n / t["s"], "docs_per_s": len(texts) / t["s"], "tokens": n}
    return out


def bench_startup(data_dir: Path, docs: int) -> dict:
    """`load_corpus` of IMDB train (or its first `docs` reviews) with the document-sentiment
    preset's settings: the first time into an empty cache, then from the cache."""
    from textlstm.config import make_config
    from textlstm.data.tokencache import load_corpus
    from textlstm.data.tokenize import Tokenizer

    cfg = make_config(preset=PRESETS["imdb"])
    tok = Tokenizer(cfg.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        path = data_dir / "imdb" / "train.csv.gz"
        if docs:
            path = Path(tmp) / "imdb-head.csv"
            with gzip.open(data_dir / "imdb" / "train.csv.gz", "rt", encoding="utf-8", newline="") as src, \
                    open(path, "w", encoding="utf-8", newline="") as dst:
                csv.writer(dst).writerows(row for _, row in zip(range(docs + 1), csv.reader(src)))
        cache = Path(tmp) / "cache"
        times, flags = [], []
        for _ in range(2):
            with timer() as t:
                corpus = load_corpus(path, cfg.data, tok, cache_dir=cache)
            times.append(t["s"])
            flags.append(corpus.from_cache)
    return {"file": "imdb/train.csv.gz" + (f" (first {docs:,} reviews)" if docs else ""),
            "docs": len(corpus.tokens), "tokenizer": cfg.tokenizer.kind, "cold_s": times[0],
            "cached_s": times[1], "from_cache": flags}


def guarded(name: str, fn: Callable[[], dict], notes: list[str]) -> dict:
    """Run one measurement; an exception becomes `{"error": ...}` and a note."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recorded per row; the suite goes on
        traceback.print_exc()
        notes.append(f"{name} skipped: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- output ---------------------------------------------------------------------------------

def report(res: dict) -> None:
    gemm = res["gemm_gflops"]
    rows = []
    for dataset, systems in res["training"].items():
        for system, r in systems.items():
            if "error" in r:
                rows.append([dataset, system, "error", *[""] * 8])
                continue
            rows.append([dataset, system, r["precision"], r["batch_size"], fmt(100 * r["padding_share"]),
                         fmt(r["train_real_tokens_per_s"], 0), fmt(r["train_processed_positions_per_s"], 0),
                         fmt(r["train_recurrent_gflops"]), fmt(100 * r["train_recurrent_gflops"] / gemm, 0),
                         fmt(100 * r["train_recurrent_gflops"] / res["gemm_bf16_gflops"], 0),
                         fmt(r["infer_docs_per_s"], 0), fmt(r["infer_recurrent_gflops"])])
    print_table("Training and inference (model only, no tokenization)",
                ["data set", "system", "precision", "batch", "padding %", "train real tok/s", "LSTM pos/s",
                 "train GFLOP/s", "% of f32 GEMM", "% of bf16 GEMM", "infer docs/s", "infer GFLOP/s"], rows)
    other = [["GEMM", "float32 1024² matmul, best of 5×10 (start and end)", f"{gemm:,.1f} GFLOP/s"],
             ["GEMM", "bfloat16 1024² matmul, the same", f"{res['gemm_bf16_gflops']:,.1f} GFLOP/s"]]
    for kind, r in res["tokenization"].items():
        value = r["error"] if "error" in r else f"{r['tokens_per_s']:,.0f} tokens/s ({r['docs_per_s']:,.0f} docs/s)"
        other.append(["tokenizer", f"{kind}, one process", value])
    st = res["startup"]
    if "error" in st:
        other.append(["load_corpus", "cold / cached", st["error"]])
    else:
        other.append(["load_corpus", f"cold: {st['file']}", f"{st['cold_s']:.2f} s"])
        other.append(["load_corpus", "cached: the same again",
                      f"{st['cached_s']:.2f} s (from cache: {st['from_cache'][1]})"])
    print_table("Other measurements", ["what", "how", "result"], other, res["notes"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 500 docs, 5 timed steps, start-up on 500 reviews")
    ap.add_argument("--batch-size", type=int, default=64, help="training batch size of both models (default 64)")
    ap.add_argument("--steps", type=int, help="timed training steps (default 30; --quick 5)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default {DATA_DIR}")
    args = ap.parse_args()
    base = QUICK if args.quick else FULL
    s = Settings(**base | ({"steps": args.steps} if args.steps else {}),
                 batch_size=args.batch_size, threads=args.threads)
    torch.set_num_threads(s.threads)
    torch.set_flush_denormal(True)  # both models: denormal LSTM activations are slow on x86
    limit_threads(s.threads)
    notes: list[str] = [n for n in [busy_note()] if n]
    res: dict = {"date": today(), "machine": machine_info(), "settings": vars(s),
                 "flops_formula": "forward recurrent FLOPs per token = directions * sum over layers of "
                                  "8*H*(I+H); training step = 3x forward; divided by whole-step time",
                 "gemm_gflops": gemm_gflops(),  # measured again at the end; the best counts
                 "gemm_bf16_gflops": gemm_gflops(dtype=torch.bfloat16)}
    res["training"] = {d: bench_dataset(d, s, args.data_dir, notes) for d in ("imdb", "sst2")}
    for d, systems in res["training"].items():
        notes += [f"{d} {name}: {r['error']}" for name, r in systems.items() if "error" in r]
    imdb_texts, _ = load_texts("imdb", args.data_dir, s.tokenize_docs)
    tokenization = guarded("tokenization", lambda: bench_tokenizers(imdb_texts), notes)
    res["tokenization"] = tokenization if "error" not in tokenization else {"spacy": tokenization,
                                                                             "regex": tokenization}
    res["startup"] = guarded("load_corpus start-up", lambda: bench_startup(args.data_dir, s.startup_docs), notes)
    res["gemm_gflops"] = max(res["gemm_gflops"], gemm_gflops())
    res["gemm_bf16_gflops"] = max(res["gemm_bf16_gflops"], gemm_gflops(dtype=torch.bfloat16))
    res["notes"] = notes
    report(res)
    if args.json:
        write_json(args.json, res)


if __name__ == "__main__":
    main()
