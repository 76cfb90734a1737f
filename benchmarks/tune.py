"""Compare preset variants on the training part's own validation split (never the evaluation split).

    python benchmarks/tune.py imdb --seeds 1,2 base= "t800=tokenizer.max_tokens=800"
    python benchmarks/tune.py trec --seeds 1,2,3 base= "cf=vocab.case_fallback=true;train.lr=3e-3"

Each variant is the data set's preset plus `;`-separated overrides, fitted on the benchmark's
training part (`common.load_split`) with `data.val_split = 0.1` and `train.seed = SEED`, so each
seed also draws its own validation split and the variants of one seed share it. Reported: the
best validation macro-F1 (`meta_["best_val_macro_f1"]`), its epoch and the training seconds, per
run and as means. `--show-eval` also scores the evaluation split, for the record only: choose
on the validation column. `--json PATH` writes every run.

`--inner SHARE` holds out a fixed stratified share of the training part (the same texts for every
seed and variant) and scores each fit on it: a larger held-out set than the validation split,
still drawn from the training data only, and the column to choose on when it is given.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DATA_DIR, PRESETS, VECTORS, load_split, stratified_part  # noqa: E402


def run(dataset: str, seeds: list[int], variants: dict[str, str], show_eval: bool,
        data_dir: Path, inner: float = 0.0) -> list[dict]:
    from sklearn.metrics import accuracy_score, f1_score

    from textlstm import TextClassifier
    from textlstm.config import make_config

    split = load_split(dataset, data_dir)
    fit_x, fit_y = split.train_texts, split.train_labels
    scored = {}
    if inner:
        fit_x, fit_y, in_x, in_y = stratified_part(fit_x, fit_y, inner)
        scored["inner"] = (in_x, in_y)
    if show_eval:
        scored["eval"] = (split.eval_texts, split.eval_labels)
    runs = []
    for seed in seeds:
        for name, overrides in variants.items():
            items = [o for o in overrides.split(";") if o] + [f"train.seed={seed}", "data.val_split=0.1"]
            cfg = make_config(preset=PRESETS[dataset], overrides=items)
            start = time.perf_counter()
            clf = TextClassifier(cfg).fit(fit_x, fit_y, vectors=data_dir / VECTORS)
            rec = {"seed": seed, "variant": name, "overrides": overrides,
                   "val_macro_f1": clf.meta_["best_val_macro_f1"], "best_epoch": clf.meta_["best_epoch"],
                   "train_s": time.perf_counter() - start}
            for part, (texts, gold) in scored.items():
                pred = clf.predict(texts)
                rec[f"{part}_accuracy"] = accuracy_score(gold, pred)
                rec[f"{part}_macro_f1"] = f1_score(gold, pred, average="macro")
            print(json.dumps(rec), flush=True)
            runs.append(rec)
    return runs


def summarize(runs: list[dict]) -> None:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by[r["variant"]].append(r)
    extra = [k for k in ("inner_accuracy", "inner_macro_f1", "eval_accuracy") if k in runs[0]]
    print(f"{'variant':<16} {'val macro-F1':>13} {'train s':>8}" + "".join(f" {k:>15}" for k in extra))
    for name, rs in by.items():
        line = (f"{name:<16} {statistics.mean(r['val_macro_f1'] for r in rs):>13.4f} "
                f"{statistics.mean(r['train_s'] for r in rs):>8.0f}")
        line += "".join(f" {statistics.mean(r[k] for r in rs):>15.4f}" for k in extra)
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=sorted(PRESETS))
    ap.add_argument("variants", nargs="+", help="NAME=override;override ... (NAME= is the preset)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--show-eval", action="store_true", help="also score the evaluation split (record only)")
    ap.add_argument("--inner", type=float, default=0.0,
                    help="hold out this share of the training part and score every fit on it")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    a = ap.parse_args()
    variants = {}
    for v in a.variants:
        if "=" not in v:
            ap.error(f"variant {v!r}: write NAME=overrides (NAME= for the preset as it is)")
        name, overrides = v.split("=", 1)
        variants[name] = overrides
    if not 0.0 <= a.inner < 1.0:
        ap.error("--inner: a share in [0, 1)")
    runs = run(a.dataset, [int(s) for s in a.seeds.split(",")], variants, a.show_eval, a.data_dir, a.inner)
    summarize(runs)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"dataset": a.dataset, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
