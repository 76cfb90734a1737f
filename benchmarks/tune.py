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

`--unlabelled PATH` reads a text file (one document a line, `.gz` read as gzip; UTF-8, lines
stripped, empty ones skipped; `--unlabelled-limit N`: the first N texts only) and passes its texts
as `unlabelled_texts` to every fit of the invocation, for `train.vat` / `train.entropy_min` (without
it those run on the labelled batch). Each run's record also holds `n_unlabelled` and, where the
fit's `meta_` has them, its training tokens per second (labelled tokens, from the per-epoch
history).
"""
from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DATA_DIR, PRESETS, VECTORS, load_split, stratified_part  # noqa: E402


def read_unlabelled(path: Path, limit: int = 0) -> list[str]:
    """The non-empty stripped lines of a text file (`.gz`: gzip), the first `limit` if > 0."""
    opener = gzip.open if path.suffix == ".gz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                texts.append(line)
                if limit and len(texts) >= limit:
                    break
    return texts


def run(dataset: str, seeds: list[int], variants: dict[str, str], show_eval: bool,
        data_dir: Path, inner: float = 0.0, unlabelled: list[str] | None = None) -> list[dict]:
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
            clf = TextClassifier(cfg).fit(fit_x, fit_y, vectors=data_dir / VECTORS,
                                          unlabelled_texts=unlabelled)
            rec = {"seed": seed, "variant": name, "overrides": overrides,
                   "val_macro_f1": clf.meta_["best_val_macro_f1"], "best_epoch": clf.meta_["best_epoch"],
                   "train_s": time.perf_counter() - start,
                   "n_unlabelled": clf.meta_.get("n_unlabelled", len(unlabelled or []))}
            rec.update(_throughput(clf.meta_))
            for part, (texts, gold) in scored.items():
                pred = clf.predict(texts)
                rec[f"{part}_accuracy"] = accuracy_score(gold, pred)
                rec[f"{part}_macro_f1"] = f1_score(gold, pred, average="macro")
            print(json.dumps(rec), flush=True)
            runs.append(rec)
    return runs


def _throughput(meta: dict) -> dict:
    """From a fit's meta_: the trainer's seconds and, from the per-epoch history (`tokens_per_s`,
    `seconds`: labelled tokens only, validation excluded), the training tokens and tokens/s."""
    out = {"fit_train_seconds": meta["train_seconds"]} if "train_seconds" in meta else {}
    epochs = [h for h in meta.get("history") or [] if "tokens_per_s" in h and "seconds" in h]
    seconds = sum(h["seconds"] for h in epochs)
    if epochs and seconds > 0:
        tokens = sum(h["tokens_per_s"] * h["seconds"] for h in epochs)
        out.update(train_tokens=round(tokens), train_tokens_per_s=tokens / seconds, epochs_run=len(epochs))
    return out


def summarize(runs: list[dict]) -> None:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by[r["variant"]].append(r)
    extra = [k for k in ("inner_accuracy", "inner_macro_f1", "eval_accuracy") if k in runs[0]]
    print(f"{'variant':<16} {'val macro-F1':>13} {'sd':>7} {'train s':>8}"
          + "".join(f" {k:>15}" for k in extra))
    for name, rs in by.items():
        f1 = [r["val_macro_f1"] for r in rs]
        sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
        line = (f"{name:<16} {statistics.mean(f1):>13.4f} {sd:>7.4f} "
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
    ap.add_argument("--unlabelled", type=Path,
                    help="text file (.gz too), one document a line, passed as unlabelled_texts to every fit")
    ap.add_argument("--unlabelled-limit", type=int, default=0,
                    help="take the first N unlabelled texts (0: all)")
    a = ap.parse_args()
    variants = {}
    for v in a.variants:
        if "=" not in v:
            ap.error(f"variant {v!r}: write NAME=overrides (NAME= for the preset as it is)")
        name, overrides = v.split("=", 1)
        variants[name] = overrides
    if not 0.0 <= a.inner < 1.0:
        ap.error("--inner: a share in [0, 1)")
    if a.unlabelled_limit < 0:
        ap.error("--unlabelled-limit: 0 (all) or more")
    unlabelled = read_unlabelled(a.unlabelled, a.unlabelled_limit) if a.unlabelled else None
    if unlabelled is not None:
        if not unlabelled:
            ap.error(f"--unlabelled {a.unlabelled}: no non-empty lines")
        print(f"unlabelled: {len(unlabelled)} texts from {a.unlabelled}", flush=True)
    runs = run(a.dataset, [int(s) for s in a.seeds.split(",")], variants, a.show_eval, a.data_dir, a.inner,
               unlabelled)
    summarize(runs)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"dataset": a.dataset, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
