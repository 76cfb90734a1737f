"""The recurrent cells side by side: `model.cell` = lstm (nn.LSTM), gru (nn.GRU) and peephole
(textlstm.cells.PeepholeLSTM, a Python time loop with a hand-written backward).

1. Layer speed: forward + backward tokens/s of one layer and direction (batch 64, input 100,
   hidden 128; 25 and 250 steps), the three cells interleaved round by round, best round kept.
2. Accuracy: each cell trained with a project preset and the IMDB word2vec vectors, scored on
   the fixed evaluation splits (common.py): SST-2 with the full `sentence-sentiment` preset;
   IMDB with the `document-sentiment` preset reduced equally for all cells (by default a
   stratified 10,000 of the 20,000 training reviews, 200 tokens per review, head+tail, and 3
   epochs) to keep the slower peephole run affordable; always all 5,000 evaluation reviews.
   Training tokens/s counts real tokens over the epochs' training steps (no validation).

    python benchmarks/cells.py --quick                                  # smoke test, minutes
    python benchmarks/cells.py --threads 1 --json out/cells.json        # ~30 min
    python benchmarks/cells.py --datasets sst2 --cells lstm,peephole --skip-layer-speed
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

# Run as a script: `common` lies beside it, and textlstm is imported from this checkout.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from common import (DATA_DIR, PRESETS, VECTORS, Split, busy_note, fmt, limit_threads,  # noqa: E402
                    load_split, machine_info, parse_list, print_table, stratified_part, timer,
                    today, write_json)

CELLS = ("lstm", "gru", "peephole")
DATASETS = ("sst2", "imdb")
LAYER_SIZES = dict(batch=64, input_size=100, hidden=128)


# -- 1. layer speed -------------------------------------------------------------------------

def make_layer(cell: str, input_size: int, hidden: int) -> torch.nn.Module:
    from textlstm.model import CELLS as MODULES
    return MODULES[cell](input_size, hidden, batch_first=True)


def layer_speed(cells: list[str], seqs: list[int], rounds: int, tokens_per_round: int) -> dict:
    """`{seq: {cell: tokens/s}}`: forward + backward of `out.sum()`, one layer, one direction."""
    b, i, h = LAYER_SIZES["batch"], LAYER_SIZES["input_size"], LAYER_SIZES["hidden"]
    result: dict[str, dict[str, float]] = {}
    for seq in seqs:
        torch.manual_seed(0)
        layers = {c: make_layer(c, i, h) for c in cells}
        x = torch.randn(b, seq, i, requires_grad=True)
        steps = max(1, tokens_per_round // (b * seq))
        best = dict.fromkeys(cells, 0.0)
        for r in range(rounds + 1):  # round 0 warms up
            for cell, layer in layers.items():
                with timer() as t:
                    for _ in range(steps):
                        layer(x)[0].sum().backward()
                if r:
                    best[cell] = max(best[cell], b * seq * steps / t["s"])
        result[str(seq)] = best
    return result


# -- 2. accuracy ----------------------------------------------------------------------------

def load_reduced(dataset: str, args: argparse.Namespace) -> Split:
    """The fixed split; for IMDB with a stratified `--imdb-train-texts` of the training part."""
    split = load_split(dataset, args.data_dir, args.quick)
    if dataset == "imdb" and 0 < args.imdb_train_texts < len(split.train_texts):
        _, _, split.train_texts, split.train_labels = stratified_part(
            split.train_texts, split.train_labels, args.imdb_train_texts)
    return split


def train_and_score(split: Split, cell: str, args: argparse.Namespace) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    from textlstm import TextClassifier, make_config

    dataset = split.name
    cfg = make_config(preset=PRESETS[dataset])
    cfg.model.cell, cfg.train.threads = cell, args.threads
    if dataset == "imdb":
        cfg.tokenizer.max_tokens = args.imdb_max_tokens
        cfg.train.epochs = args.imdb_epochs
    if args.quick:
        cfg.train.epochs = 1
    with timer() as t_train:
        clf = TextClassifier(cfg).fit(split.train_texts, split.train_labels,
                                      vectors=args.data_dir / VECTORS)
    with timer() as t_pred:
        pred = clf.predict(split.eval_texts)
    history = clf.meta_["history"]
    seconds = sum(h["seconds"] for h in history)  # training steps only, no validation
    tokens = sum(h["tokens_per_s"] * h["seconds"] for h in history)
    return {"accuracy": float(accuracy_score(split.eval_labels, pred)),
            "macro_f1": float(f1_score(split.eval_labels, pred, average="macro")),
            "train_s": t_train["s"], "train_tokens_per_s": tokens / seconds if seconds else None,
            "predict_s": t_pred["s"], "epochs_run": len(history), "best_epoch": clf.meta_["best_epoch"],
            "settings": {"preset": PRESETS[dataset], "max_tokens": cfg.tokenizer.max_tokens,
                         "truncation": cfg.tokenizer.truncation, "epochs": cfg.train.epochs,
                         "train_texts": len(split.train_texts), "eval_texts": len(split.eval_texts)}}


# -- output ---------------------------------------------------------------------------------

def report(speed: dict, results: dict, notes: list[str]) -> None:
    if speed:
        rows = [[f"{seq} steps", cell, fmt(tps, 0), fmt(tps / by_cell["lstm"], 2) if by_cell.get("lstm") else "—"]
                for seq, by_cell in speed.items() for cell, tps in by_cell.items()]
        print_table("Layer speed: forward + backward, batch 64, input 100, hidden 128",
                    ["sequence", "cell", "tokens/s", "× nn.LSTM"], rows)
    rows = []
    for dataset, cells in results.items():
        for cell, r in cells.items():
            if "error" in r:
                notes.append(f"{dataset} {cell}: {r['error']}")
                rows.append([dataset, cell, "error", "", "", ""])
                continue
            rows.append([dataset, cell, fmt(100 * r["accuracy"], 2), fmt(100 * r["macro_f1"], 2),
                         fmt(r["train_s"]), fmt(r["train_tokens_per_s"], 0)])
    print_table("Accuracy on the evaluation splits", ["data set", "cell", "accuracy %", "macro-F1 %",
                                                     "train s", "train real tok/s"], rows, notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default=",".join(CELLS), help=f"comma-separated: {','.join(CELLS)}")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: sst2,imdb ('' for none)")
    ap.add_argument("--imdb-max-tokens", type=int, default=200, help="IMDB tokens per review (preset: 400)")
    ap.add_argument("--imdb-epochs", type=int, default=3, help="IMDB epochs (preset: 6)")
    ap.add_argument("--imdb-train-texts", type=int, default=10_000,
                    help="IMDB training reviews, a stratified sample (0: all 20,000)")
    ap.add_argument("--skip-layer-speed", action="store_true", help="only the accuracy runs")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2,000 / 500 texts, 1 epoch, short timing")
    ap.add_argument("--threads", type=int, default=2, help="torch and BLAS threads (default 2)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default {DATA_DIR}")
    args = ap.parse_args()
    cells = parse_list(args.cells, CELLS, "cell")
    datasets = parse_list(args.datasets, DATASETS, "data set")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as textlstm's training does
    limit_threads(args.threads)
    machine, notes = machine_info(), [n for n in [busy_note()] if n]
    settings = {k: getattr(args, k) for k in ("cells", "datasets", "imdb_max_tokens", "imdb_epochs",
                                              "imdb_train_texts", "quick", "threads")}
    speed: dict = {}
    results: dict[str, dict[str, dict]] = {}

    def save() -> None:
        if args.json:
            write_json(args.json, {"date": today(), "machine": machine, "notes": notes, "settings": settings,
                                   "layer_speed_tokens_per_s": speed, "results": results})

    if not args.skip_layer_speed:
        print("layer speed ...", file=sys.stderr, flush=True)
        speed = layer_speed(cells, [25, 250], rounds=1 if args.quick else 3,
                            tokens_per_round=16_000 if args.quick else 64_000)
        save()
    for dataset in datasets:
        split = load_reduced(dataset, args)
        for cell in cells:
            results.setdefault(dataset, {})[cell] = run_one(split, cell, args)
            save()
    report(speed, results, notes)


def run_one(split: Split, cell: str, args: argparse.Namespace) -> dict:
    print(f"[{split.name}] {cell} ...", file=sys.stderr, flush=True)
    try:
        r = train_and_score(split, cell, args)
    except Exception as exc:  # noqa: BLE001 - recorded per row; the others go on
        r = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"[{split.name}] {cell}: " + (r.get("error") or f"accuracy {r['accuracy']:.4f}, "
          f"train {r['train_s']:.0f} s, {r['train_tokens_per_s']:,.0f} tok/s"), file=sys.stderr, flush=True)
    return r


if __name__ == "__main__":
    main()
