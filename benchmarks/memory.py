"""Benchmark: peak memory of training in float32 and in bfloat16 mixed precision, and what
oneDNN's primitive cache adds to the latter.

Each variant trains `TextClassifier` with the `document-sentiment` preset and the IMDB word2vec
vectors on the first `--docs` reviews of the fixed IMDB training part (`common.py`), in a fresh
subprocess of this script, and reports its time and memory from /proc/self/status: VmHWM (peak
RSS) and VmRSS after the data is read, and both after training.

    python benchmarks/memory.py                          # 4,000 reviews, 2 epochs, ~3 minutes
    python benchmarks/memory.py --docs 2000 --json out/memory.json
    python benchmarks/memory.py --docs 20000 --epochs 2 --variants "float32;bfloat16"   # all of IMDB's training part

Variants: `float32` (`train.amp = false`), `bfloat16` (`train.amp = true`, the presets'
setting, with textlstm's default ONEDNN_PRIMITIVE_CACHE_CAPACITY of 8), `bfloat16, cache 64`
and `bfloat16, cache 1024` (oneDNN's own default, which textlstm kept before 2026-12-07): oneDNN
caches that many primitives, each LSTM primitive holding scratch memory for its batch shape.
Batches are padded to `textlstm.data.batching.padded_length`, which bounds the distinct shapes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DATA_DIR, VECTORS, busy_note, fmt, load_split, machine_info, print_table,  # noqa: E402
                    status_mb, today, write_json)

VARIANTS = {"float32": ("false", None), "bfloat16": ("true", None), "bfloat16, cache 64": ("true", "64"),
            "bfloat16, cache 1024": ("true", "1024")}


def child(amp: str, docs: int, epochs: int, threads: int, data_dir: Path) -> dict:
    from textlstm import TextClassifier
    from textlstm.config import make_config

    split = load_split("imdb", data_dir)
    texts, labels = split.train_texts[:docs], split.train_labels[:docs]
    rss_after_data = status_mb("VmRSS")
    cfg = make_config(preset="document-sentiment", overrides=[
        f"train.amp={amp}", f"train.epochs={epochs}", 'train.freeze="never"', f"train.threads={threads}",
        "train.patience=0"])
    start = time.perf_counter()
    TextClassifier(cfg).fit(texts, labels, vectors=data_dir / VECTORS)
    seconds = time.perf_counter() - start
    return {"train_s": seconds, "rss_after_data_mb": rss_after_data, "peak_mb": status_mb("VmHWM"),
            "rss_after_training_mb": status_mb("VmRSS")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--variants", default=";".join(VARIANTS),
                    help=f"';'-separated, of: {'; '.join(VARIANTS)} (default all)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    chosen = [v.strip() for v in args.variants.split(";") if v.strip()]
    if unknown := [v for v in chosen if v not in VARIANTS]:
        ap.error(f"unknown variants {unknown}; known: {'; '.join(VARIANTS)}")
    if args.child:
        print(json.dumps(child(args.child, args.docs, args.epochs, args.threads, args.data_dir)))
        return
    note = busy_note()
    results = {}
    for name in chosen:
        amp, cache = VARIANTS[name]
        env = dict(os.environ)
        env.pop("ONEDNN_PRIMITIVE_CACHE_CAPACITY", None)
        if cache:
            env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = cache
        cmd = [sys.executable, __file__, "--child", amp, "--variants", name, "--docs", str(args.docs), "--epochs", str(args.epochs),
               "--threads", str(args.threads), "--data-dir", str(args.data_dir)]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if run.returncode:
            results[name] = {"error": run.stderr.strip().splitlines()[-1:] or ["failed"]}
            continue
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    rows = [[name, fmt(r.get("train_s")), fmt(r.get("rss_after_data_mb"), 0), fmt(r.get("peak_mb"), 0),
             fmt(r.get("rss_after_training_mb"), 0)] for name, r in results.items()]
    notes = [f"{name}: {r['error'][0]}" for name, r in results.items() if "error" in r] + ([note] if note else [])
    print_table(f"Training memory: {args.docs:,} IMDB reviews, {args.epochs} epochs, document-sentiment",
                ["variant", "train s", "RSS after data MB", "peak MB", "RSS after training MB"], rows, notes)
    if args.json:
        write_json(args.json, {"date": today(), "machine": machine_info(), "settings": vars(args) | {
            "data_dir": str(args.data_dir), "json": str(args.json)}, "results": results,
            "notes": notes})


if __name__ == "__main__":
    main()
