"""Benchmark: multi-label classification on GoEmotions against TF-IDF + one-vs-rest logistic
regression with a tuned threshold, in the same run.

    python benchmarks/multilabel.py --data-dir ../shared/data                 # 3 seeds
    python benchmarks/multilabel.py --seeds 1 --epochs 4 --json out.json      # quicker

Data: `goemotions/train.jsonl` (3,798 Reddit comments, 28 labels, 1.18 per comment). A fixed
20 % test part is held out (seed 0, stratified by each comment's rarest label, as textlstm
splits multi-label data); each seed then draws its own validation part (10 % of the rest,
the same way) from the remaining comments. Both systems see exactly the same texts:

- **baseline**: TF-IDF of word 1-2-grams (sublinear tf, min_df 2) and scikit-learn's
  `OneVsRestClassifier(LogisticRegression)`; C from {1, 4, 16, 64} and one global threshold
  from 0.01-0.99 chosen on the validation part for the best micro-F1.
- **textlstm**: `TextClassifier` fitted on the training part with the validation part (early
  stopping, best epoch, a global threshold tuned for micro-F1), from the `short-multilabel`
  preset (built-in GloVe 6B 50d, BiLSTM 128, attention+max pooling, lr 5e-3, up to 25 epochs)
  with `--set` overrides.

Reported on the test part per seed and as mean ± std: micro-F1, macro-F1, samples-F1, subset
accuracy, Hamming loss, macro ROC-AUC and training seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, REPO, machine_info, print_table, today, write_json  # noqa: E402

METRICS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss", "macro_roc_auc")


def read(data_dir: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    texts, labels = [], []
    with open(data_dir / "goemotions" / "train.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            texts.append(doc["text"])
            labels.append(tuple(doc["labels"]))
    return texts, labels


def split(index: np.ndarray, labels: list[tuple[str, ...]], share: float, seed: int):
    from textlstm.data.multilabel import strata

    groups = strata([labels[i] for i in index])
    return train_test_split(index, test_size=share, random_state=seed, stratify=groups)


def baseline(train, val, test, classes, seed: int) -> tuple[dict, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from textlstm.data.multilabel import multi_hot
    from textlstm.metrics import evaluate_multilabel
    from textlstm.thresholds import decide, f1_score, tune

    index = {c: i for i, c in enumerate(classes)}
    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train, x_val, x_test = vec.fit_transform(train[0]), vec.transform(val[0]), vec.transform(test[0])
    y_train, y_val, y_test = (multi_hot(part[1], index) for part in (train, val, test))
    best = None
    for c in (1.0, 4.0, 16.0, 64.0):
        model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000, random_state=seed)).fit(x_train, y_train)
        proba = model.predict_proba(x_val).astype(np.float32)
        t = tune(y_val, proba, "global", "micro_f1")
        score = f1_score(y_val, decide(proba, t), "micro_f1")
        if best is None or score > best[0]:
            best = (score, c, t, model)
    _, c, t, model = best
    seconds = time.perf_counter() - start
    proba = model.predict_proba(x_test).astype(np.float32)
    report = evaluate_multilabel(y_test, decide(proba, t), classes, proba, t)
    report["chosen"] = {"C": c, "threshold": float(t[0])}
    return report, seconds


def textlstm_run(train, val, test, preset: str, overrides: list[str], seed: int) -> tuple[dict, float, dict]:
    from textlstm import TextClassifier
    from textlstm.config import make_config

    cfg = make_config(preset=preset, overrides=[f"train.seed={seed}", *overrides])
    start = time.perf_counter()
    clf = TextClassifier(cfg).fit(train[0], [list(x) for x in train[1]], val_texts=val[0],
                                  val_labels=[list(x) for x in val[1]])
    seconds = time.perf_counter() - start
    report = clf.evaluate(test[0], [list(x) for x in test[1]])
    info = {"best_epoch": clf.meta_["best_epoch"], "thresholds": clf.meta_["threshold_tuning"],
            "threshold": float(clf.thresholds_[0]), "epochs_run": len(clf.meta_["history"])}
    return report, seconds, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds")
    ap.add_argument("--preset", default="short-multilabel", help="textlstm preset (default short-multilabel)")
    ap.add_argument("--epochs", type=int, help="train.epochs for textlstm (default: the preset's)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="textlstm setting, section.key=value")
    ap.add_argument("--json", type=Path, help="default: benchmarks/results/multilabel-goemotions-DATE.json")
    args = ap.parse_args()
    overrides = list(args.overrides) + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    texts, labels = read(args.data_dir)
    classes = sorted({lab for labs in labels for lab in labs})
    rest, test_idx = split(np.arange(len(texts)), labels, 0.2, 0)
    part = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    test = part(test_idx)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        train_idx, val_idx = split(rest, labels, 0.1, seed)
        train, val = part(train_idx), part(val_idx)
        print(f"seed {seed}: {len(train_idx)} train, {len(val_idx)} validation, {len(test_idx)} test", flush=True)
        base, base_s = baseline(train, val, test, classes, seed)
        ours, ours_s, info = textlstm_run(train, val, test, args.preset, overrides, seed)
        runs.append({"seed": seed, "baseline": {**{m: base[m] for m in METRICS}, "seconds": base_s, **base["chosen"]},
                     "textlstm": {**{m: ours[m] for m in METRICS}, "seconds": ours_s, **info},
                     "textlstm_per_label_f1": {c: ours["per_class"][c]["f1"] for c in classes},
                     "baseline_per_label_f1": {c: base["per_class"][c]["f1"] for c in classes}})
        print(f"  baseline micro-F1 {base['micro_f1']:.4f} macro-F1 {base['macro_f1']:.4f} ({base_s:.0f} s); "
              f"textlstm micro-F1 {ours['micro_f1']:.4f} macro-F1 {ours['macro_f1']:.4f} ({ours_s:.0f} s)", flush=True)

    def cell(system: str, metric: str) -> str:
        values = [r[system][metric] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {sd:.4f}"
    rows = [[system, "test", *(cell(system, m) for m in (*METRICS, "seconds"))] for system in ("baseline", "textlstm")]
    print_table(f"GoEmotions multi-label ({len(classes)} labels), {len(runs)} seeds, test part of {len(test_idx)}",
                ["system", "part", *METRICS, "train s"], rows,
                notes=["baseline: TF-IDF 1-2-grams + one-vs-rest logistic regression, C and threshold tuned on validation",
                       f"textlstm: {args.preset} preset, global threshold tuned for micro-F1 on validation"])
    path = args.json or REPO / "benchmarks" / "results" / f"multilabel-goemotions-{today()[:10]}.json"
    write_json(path, {"benchmark": "multilabel", "data": "goemotions/train.jsonl", "classes": classes,
                      "n": {"rest": len(rest), "test": len(test_idx)}, "preset": args.preset, "overrides": overrides,
                      "machine": machine_info(), "runs": runs})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
