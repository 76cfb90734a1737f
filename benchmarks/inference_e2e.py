"""End-to-end inference of one trained model through each runtime: texts in, tokenized with the
model's own tokenizer, probabilities out — PyTorch (`TextClassifier`), and the ONNX files from
`textlstm export` (float and `--quantize dynamic-int8`) through onnxruntime (`OnnxClassifier`).
Reading the file is timed separately. Each runtime is warmed up on 500 texts, then timed over
all texts, best of `--repeats`.

    python benchmarks/inference_e2e.py --model M --onnx M.onnx --onnx M-int8.onnx \\
        --data ../shared/data/sst2/train.tsv --json benchmarks/results/e2e.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import busy_note, machine_info, print_table, today, write_json  # noqa: E402


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="textlstm model directory")
    ap.add_argument("--onnx", action="append", default=[], help="exported ONNX file (repeatable)")
    ap.add_argument("--data", required=True, help="data file whose texts are classified")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import torch
    from textlstm import TextClassifier
    from textlstm.data import read_dataset
    from textlstm.jobs.export import OnnxClassifier

    torch.set_num_threads(args.threads)
    note = busy_note()
    start = time.perf_counter()
    examples, _ = read_dataset(args.data)
    texts = [e.text for e in examples]
    read_s = time.perf_counter() - start
    clf = TextClassifier.load(args.model)
    clf.config.train.threads = args.threads
    tok = clf.tokenizer
    tok_s = best_time(lambda: list(tok.pipe(texts)), args.repeats)
    runtimes = [("pytorch float", clf)] + [(f"onnxruntime {Path(p).name}", OnnxClassifier(p)) for p in args.onnx]
    rows, results = [], {}
    base = None
    for name, model in runtimes:
        model.predict_proba(texts[:500], args.batch_size)
        seconds = best_time(lambda: model.predict_proba(texts, args.batch_size), args.repeats)
        rate = len(texts) / seconds
        base = base or rate
        results[name] = {"texts_per_s": rate, "seconds": seconds, "ratio": rate / base}
        rows.append((name, f"{rate:,.0f}", f"{rate / base:.2f}×", f"{seconds:.2f}"))
    rows.append(("tokenizing alone", f"{len(texts) / tok_s:,.0f}", "", f"{tok_s:.2f}"))
    rows.append(("reading the file", f"{len(texts) / read_s:,.0f}", "", f"{read_s:.2f}"))
    print_table(f"End-to-end inference, {len(texts):,} texts of {args.data}",
                ["runtime", "texts/s", "× pytorch", "seconds"],
                rows, [note] if note else [])
    if args.json:
        write_json(args.json, {"date": today(), "machine": machine_info(), "data": args.data,
                               "n_texts": len(texts), "read_s": read_s, "tokenize_s": tok_s,
                               "results": results})


if __name__ == "__main__":
    main()
