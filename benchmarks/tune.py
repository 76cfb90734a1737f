"""Compare preset variants on the training part's own validation split (never the evaluation split).

    python benchmarks/tune.py imdb --seeds 1,2 base= "t800=tokenizer.max_tokens=800"
    python benchmarks/tune.py trec --seeds 1,2,3 base= "cf=vocab.case_fallback=true;train.lr=3e-3"

Each variant is the data set's preset plus `;`-separated overrides, fitted on the benchmark's
training part (`common.load_split`) with `data.val_split = 0.1` and `train.seed = SEED`, so each
seed also draws its own validation split and the variants of one seed share it. Reported: the
best validation macro-F1 (`meta_["best_val_macro_f1"]`), its epoch and the training seconds, per
run and as means. `--show-eval` also scores the evaluation split, for the record only: choose
on the validation column. `--json PATH` writes every run.
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

from common import DATA_DIR, PRESETS, VECTORS, load_split  # noqa: E402


def run(dataset: str, seeds: list[int], variants: dict[str, str], show_eval: bool,
        data_dir: Path) -> list[dict]:
    from sklearn.metrics import accuracy_score, f1_score

    from textlstm import TextClassifier
    from textlstm.config import make_config

    split = load_split(dataset, data_dir)
    runs = []
    for seed in seeds:
        for name, overrides in variants.items():
            items = [o for o in overrides.split(";") if o] + [f"train.seed={seed}", "data.val_split=0.1"]
            cfg = make_config(preset=PRESETS[dataset], overrides=items)
            start = time.perf_counter()
            clf = TextClassifier(cfg).fit(split.train_texts, split.train_labels, vectors=data_dir / VECTORS)
            rec = {"seed": seed, "variant": name, "overrides": overrides,
                   "val_macro_f1": clf.meta_["best_val_macro_f1"], "best_epoch": clf.meta_["best_epoch"],
                   "train_s": time.perf_counter() - start}
            if show_eval:
                pred = clf.predict(split.eval_texts)
                rec["eval_accuracy"] = accuracy_score(split.eval_labels, pred)
                rec["eval_macro_f1"] = f1_score(split.eval_labels, pred, average="macro")
            print(json.dumps(rec), flush=True)
            runs.append(rec)
    return runs


def summarize(runs: list[dict]) -> None:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by[r["variant"]].append(r)
    print(f"{'variant':<16} {'val macro-F1':>13} {'train s':>8}" + ("  eval acc" if "eval_accuracy" in runs[0] else ""))
    for name, rs in by.items():
        line = (f"{name:<16} {statistics.mean(r['val_macro_f1'] for r in rs):>13.4f} "
                f"{statistics.mean(r['train_s'] for r in rs):>8.0f}")
        if "eval_accuracy" in rs[0]:
            line += f"  {statistics.mean(r['eval_accuracy'] for r in rs):.4f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=sorted(PRESETS))
    ap.add_argument("variants", nargs="+", help="NAME=override;override ... (NAME= is the preset)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--show-eval", action="store_true", help="also score the evaluation split (record only)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    a = ap.parse_args()
    variants = {}
    for v in a.variants:
        if "=" not in v:
            ap.error(f"variant {v!r}: write NAME=overrides (NAME= for the preset as it is)")
        name, overrides = v.split("=", 1)
        variants[name] = overrides
    runs = run(a.dataset, [int(s) for s in a.seeds.split(",")], variants, a.show_eval, a.data_dir)
    summarize(runs)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"dataset": a.dataset, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
