"""Compression benchmark on IMDB: dynamic int8 quantisation and 50 % magnitude pruning (with
and without fine-tuning) of a trained textlstm model, through `textlstm.compress`.

The fixed IMDB split (common.py: `imdb/train.csv.gz` less a stratified 20 % for evaluation)
is written to CSV files in the work folder; the model is trained on the 80 % part (or given
with --model, trained on that same part), fine-tuning reads the same part, and every number
is measured on the 20 %.

    python benchmarks/compress.py --model /tmp/imdb_model --json out/compress.json
    python benchmarks/compress.py --quick           # trains a small model first: a smoke test

Runs (each starts from the same model):
  quantize    `CompressOptions(quantize="dynamic-int8")`
  prune       `prune=0.5, prune_steps=2, train=<80 % part>, finetune_epochs=1`
  prune-only  `prune=0.5` in one step, no fine-tuning (what fine-tuning buys)
Then the float and the quantised model are timed again in turn, `--rounds` times, so that
load from other processes hits both alike (the speed-up is the median of the per-round ratios),
in PyTorch and, with onnxruntime installed, exported to ONNX (`textlstm export`, float and
`--quantize dynamic-int8`) and run by onnxruntime with the same threads and batches.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from common import (DATA_DIR, PRESETS, VECTORS, busy_note, fmt, load_split, machine_info,  # noqa: E402
                    print_table, today, write_json)

SPEED_TARGET, QUANT_LOSS, PRUNE_LOSS = 1.5, 0.5, 1.0  # acceptance: ×, accuracy points, points


def write_split(work: Path, data_dir: Path, quick: bool) -> tuple[Path, Path]:
    split = load_split("imdb", data_dir, quick=quick)
    paths = []
    for name, texts, labels in (("train", split.train_texts, split.train_labels),
                                ("eval", split.eval_texts, split.eval_labels)):
        path = work / f"imdb-{name}{'-quick' if quick else ''}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, labels))
        paths.append(path)
    print(split.describe(), file=sys.stderr)
    return paths[0], paths[1]


def train_model(train: Path, out: Path, data_dir: Path, threads: int, quick: bool) -> Path:
    from textlstm import TextClassifier, make_config

    cfg = make_config(preset=PRESETS["imdb"])
    cfg.train.threads = threads
    if quick:
        cfg.train.epochs = 1
    TextClassifier(cfg).train(train, vectors=data_dir / VECTORS).save(out)
    return out


def run(model: Path, out: Path, threads: int, repeats: int, **options) -> dict:
    from textlstm.jobs.compress import CompressOptions, compress

    opts = CompressOptions(threads=threads, timing_repeats=repeats, **options)
    start = time.perf_counter()
    result = compress(model, out, opts, overwrite=True)
    return result.to_dict() | {"seconds": time.perf_counter() - start}


def runners(model: Path, quantized: Path, work: Path, threads: int, batch_size: int) -> dict:
    """`{name: (run(data) -> logits, file bytes)}` for the float and the int8 model in PyTorch
    and, when onnxruntime is installed, both exported to ONNX and run by onnxruntime."""
    import numpy as np

    from textlstm import TextClassifier
    from textlstm.data.batching import iterate, sorted_batches
    from textlstm.model.infer import predict_logits

    out = {}
    for name, path in (("pytorch float", model), ("pytorch dynamic-int8", quantized)):
        clf = TextClassifier.load(path)
        size = (path / "model.safetensors").stat().st_size
        out[name] = (lambda data, m=clf.model_: predict_logits(m, data, batch_size)[0]), size
    try:
        import onnxruntime
        from textlstm.jobs.export import export_onnx
    except ImportError as exc:
        print(f"onnxruntime rows left out: {exc}", file=sys.stderr)
        return out
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    for name, quantize in (("onnxruntime float", "none"), ("onnxruntime dynamic-int8", "dynamic-int8")):
        path = export_onnx(TextClassifier.load(model), work / f"model-{quantize}.onnx", quantize=quantize,
                           overwrite=True).path
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(data, session=session):
            logits = np.empty((len(data), 2), dtype=np.float32)
            for index, ids, lengths, _ in iterate(data, sorted_batches(data.lengths, batch_size)):
                logits[index] = session.run(["logits"], {"ids": ids.numpy(), "lengths": lengths.numpy()})[0]
            return logits
        out[name] = run, path.stat().st_size
    return out


def interleaved(model: Path, quantized: Path, eval_path: Path, work: Path, threads: int, rounds: int,
                batch_size: int) -> dict:
    """Accuracy and docs/s of every runner, timed alternately `rounds` times; speed-ups are
    medians of the per-round ratios to PyTorch float."""
    from textlstm import TextClassifier
    from textlstm.metrics import evaluate
    from textlstm.training.trainer import setup_threads

    setup_threads(threads)
    clf = TextClassifier.load(model)
    with open(eval_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    data, labels = clf.encode([r["text"] for r in rows]), [r["label"] for r in rows]
    runs = runners(model, quantized, work, threads, batch_size)
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    for name, (run, size) in runs.items():  # warm-up, and the accuracy
        run(data.subset(range(64)))
        pred = [clf.classes_[i] for i in run(data).argmax(axis=1)]
        report = evaluate(labels, pred, clf.classes_)
        results[name] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "file_bytes": size}
    for _ in range(rounds):
        for name, (run, _) in runs.items():
            start = time.perf_counter()
            run(data)
            speeds[name].append(len(data) / (time.perf_counter() - start))
    base = speeds["pytorch float"]
    for name, values in speeds.items():
        results[name] |= {"docs_per_s": statistics.median(values), "all_docs_per_s": values,
                          "speedup": statistics.median([v / b for v, b in zip(values, base)])}
    return results


def report(runs: dict[str, dict], timed: dict[str, dict], notes: list[str]) -> dict:
    base = runs["quantize"]["steps"][0]
    rows = []
    for name, r in runs.items():
        for s in r["steps"][1:] if name != "quantize" else r["steps"]:
            rows.append([name, s["step"], fmt(100 * s["accuracy"], 2), fmt(100 * s["macro_f1"], 2),
                         f"{100 * (s['accuracy'] - base['accuracy']):+.2f}", fmt(100 * s["zero_share"], 1),
                         fmt(s["file_bytes"] / 2**20, 2), fmt(s["docs_per_s"], 0), fmt(s["finetune_seconds"], 0)])
    print_table("textlstm compress on the IMDB evaluation split",
                ["run", "step", "accuracy %", "macro-F1 %", "Δ acc. points", "zeros %", "MiB", "docs/s",
                 "fine-tune s"], rows)
    print_table("Float against int8, timed alternately (model only, no tokenization)",
                ["runtime", "model", "accuracy %", "macro-F1 %", "Δ acc. points", "file MiB", "docs/s", "speed-up"],
                [[*name.split(" ", 1), fmt(100 * r["accuracy"], 2), fmt(100 * r["macro_f1"], 2),
                  f"{100 * (r['accuracy'] - base['accuracy']):+.2f}", fmt(r["file_bytes"] / 2**20, 2),
                  fmt(r["docs_per_s"], 0), f"{r['speedup']:.2f}×"] for name, r in timed.items()], notes)
    quant, pruned = timed["pytorch dynamic-int8"], runs["prune"]["steps"][-1]
    checks = {"quantize_speedup": quant["speedup"],
              "quantize_accuracy_change_points": 100 * (quant["accuracy"] - base["accuracy"]),
              "prune_accuracy_change_points": 100 * (pruned["accuracy"] - base["accuracy"])}
    if "onnxruntime dynamic-int8" in timed:
        checks["onnxruntime_int8_speedup"] = timed["onnxruntime dynamic-int8"]["speedup"]
    checks["quantize_speed_ok"] = checks["quantize_speedup"] >= SPEED_TARGET
    checks["quantize_accuracy_ok"] = -checks["quantize_accuracy_change_points"] <= QUANT_LOSS
    checks["prune_accuracy_ok"] = -checks["prune_accuracy_change_points"] <= PRUNE_LOSS
    print(f"PyTorch dynamic int8: {checks['quantize_speedup']:.2f}× docs/s (target ≥ {SPEED_TARGET}×), accuracy "
          f"{checks['quantize_accuracy_change_points']:+.2f} points (target: loss ≤ {QUANT_LOSS})")
    if "onnxruntime_int8_speedup" in checks:
        print(f"onnxruntime dynamic int8: {checks['onnxruntime_int8_speedup']:.2f}× PyTorch float docs/s")
    print(f"50 % pruning with fine-tuning: accuracy {checks['prune_accuracy_change_points']:+.2f} points "
          f"(target: loss ≤ {PRUNE_LOSS})")
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="trained IMDB model directory (default: train one, ~15 min)")
    ap.add_argument("--work", type=Path, help="folder for the split files and compressed models (default: temporary)")
    ap.add_argument("--quick", action="store_true", help="2,000 / 500 texts and a 1-epoch model: a smoke test")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--batch-size", type=int, default=256, help="texts per forward pass when timing")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per step inside compress (best is kept)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating timing rounds, float vs int8")
    ap.add_argument("--finetune-epochs", type=int, default=1, help="epochs of fine-tuning per pruning step")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default {DATA_DIR}")
    args = ap.parse_args()
    notes = [n for n in [busy_note()] if n]
    machine = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train, evaluation = write_split(work, args.data_dir, args.quick)
        model = args.model or train_model(train, work / "model", args.data_dir, args.threads, args.quick)
        common = {"eval": evaluation, "batch_size": args.batch_size}
        runs = {}
        for name, options in (("quantize", {"quantize": "dynamic-int8"}),
                              ("prune", {"prune": 0.5, "prune_steps": 2, "train": train,
                                         "finetune_epochs": args.finetune_epochs}),
                              ("prune-only", {"prune": 0.5})):
            print(f"[{name}] ...", file=sys.stderr, flush=True)
            runs[name] = run(model, work / name, args.threads, args.repeats, **common, **options)
        print("[timing float against int8] ...", file=sys.stderr, flush=True)
        timed = interleaved(model, work / "quantize", evaluation, work, args.threads, args.rounds,
                            args.batch_size)
        checks = report(runs, timed, notes)
    if args.json:
        write_json(args.json, {"date": today(), "machine": machine, "notes": notes,
                               "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                               "model": str(model), "runs": runs, "interleaved": timed, "checks": checks})


if __name__ == "__main__":
    main()
