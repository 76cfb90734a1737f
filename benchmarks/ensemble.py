"""Does averaging several seeds pay? Single models against their probability-averaging ensemble,
scored on a held-out share of the training part (never the evaluation split).

    python benchmarks/ensemble.py trec --members 3 --repeats 3 --overrides "train.adversarial=1.0"
    python benchmarks/ensemble.py sst2 --members 3 --repeats 3 --show-eval --json benchmarks/results/ensemble-sst2.json

`--inner SHARE` (default 0.15) holds out a fixed stratified share of the benchmark's training part
(`common.load_split`), the same texts for every fit; each member is fitted on the rest with the data
set's preset, `data.val_split = 0.1`, `train.seed = SEED` and the `--overrides` (`;`-separated, as
in tune.py's variants). Repeat r (of `--repeats R`) uses its own `--members K` seeds, r*K+1 ..
(r+1)*K, so the groups are disjoint. Every member and `TextClassifier.ensemble(members)` (the mean
of the members' probabilities) is scored on the inner texts: accuracy and macro-F1, the columns to
judge by. `--show-eval` also scores the evaluation split, for the record only.

Reported per repeat: each member's inner scores, the ensemble's, the members' mean and the gain
(ensemble - members' mean); then over repeats: single models (all members pooled) mean ± sd,
ensembles mean ± sd, the gain (mean ± sd of the per-repeat gains), training seconds per member, and
prediction seconds on the inner texts for one model against the ensemble (best of five calls,
the models taking turns). `--json PATH` writes every fit and the summary, rewritten after each repeat.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (DATA_DIR, PRESETS, VECTORS, busy_note, fmt, load_split, machine_info,  # noqa: E402
                    print_table, stratified_part, today, write_json)

METRICS = ("accuracy", "macro_f1")


def scores(clf, texts: list[str], gold: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score
    pred = clf.predict(texts)
    return {"accuracy": float(accuracy_score(gold, pred)),
            "macro_f1": float(f1_score(gold, pred, average="macro"))}


def predict_seconds(models: list, texts: list[str], rounds: int = 5) -> list[float]:
    """Per model, the best of `rounds` wall-clock seconds for `model.predict(texts)`, the models
    taking turns in each round (after one warm-up call each) so that load from other processes
    falls on all of them alike."""
    for m in models:
        m.predict(texts[:8])
    best = [float("inf")] * len(models)
    for _ in range(rounds):
        for i, m in enumerate(models):
            start = time.perf_counter()
            m.predict(texts)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def proba_check(ens, members, texts: list[str]) -> float:
    got = ens.predict_proba(texts)
    want = np.zeros_like(got, dtype=np.float64)
    for m in members:
        p = m.predict_proba(texts)
        order = [m.classes_.index(c) for c in ens.classes_]
        want += p[:, order]
    want /= len(members)
    return float(np.max(np.abs(got - want)))


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(repeats: list[dict], parts: list[str]) -> dict:
    out: dict = {}
    for part in parts:
        for metric in METRICS:
            key = f"{part}_{metric}"
            single = [m[part][metric] for r in repeats for m in r["members"]]
            ens = [r["ensemble"][part][metric] for r in repeats]
            gains = [r["ensemble"][part][metric] - statistics.mean(m[part][metric] for m in r["members"])
                     for r in repeats]
            s_mean, s_sd = mean_sd(single)
            e_mean, e_sd = mean_sd(ens)
            g_mean, g_sd = mean_sd(gains)
            out[key] = {"single_mean": s_mean, "single_sd": s_sd, "ensemble_mean": e_mean, "ensemble_sd": e_sd,
                        "gain": e_mean - s_mean, "gain_per_repeat_mean": g_mean, "gain_per_repeat_sd": g_sd,
                        "ensemble_beats_best_member": sum(r["ensemble"][part][metric]
                                                          >= max(m[part][metric] for m in r["members"])
                                                          for r in repeats),
                        "n_single": len(single), "n_ensembles": len(ens)}
    train = [m["train_s"] for r in repeats for m in r["members"]]
    loop = [m["fit_train_seconds"] for r in repeats for m in r["members"] if m.get("fit_train_seconds") is not None]
    single_pred = [m["predict_s"] for r in repeats for m in r["members"]]
    ens_pred = [r["ensemble"]["predict_s"] for r in repeats]
    out["train_s_per_member"] = dict(zip(("mean", "sd"), mean_sd(train)), median=statistics.median(train))
    if loop:
        out["train_loop_s_per_member"] = dict(zip(("mean", "sd"), mean_sd(loop)), median=statistics.median(loop))
    out["predict_s_single"] = statistics.mean(single_pred)
    out["predict_s_ensemble"] = statistics.mean(ens_pred)
    out["predict_ratio"] = out["predict_s_ensemble"] / out["predict_s_single"]
    out["predict_ratio_per_repeat"] = [r["ensemble"]["predict_s"] / statistics.mean(m["predict_s"] for m in r["members"])
                                       for r in repeats]
    return out


def run(a: argparse.Namespace) -> dict:
    from textlstm import TextClassifier
    from textlstm.config import make_config

    split = load_split(a.dataset, a.data_dir)
    fit_x, fit_y, in_x, in_y = stratified_part(split.train_texts, split.train_labels, a.inner)
    scored = {"inner": (in_x, in_y)}
    if a.show_eval:
        scored["eval"] = (split.eval_texts, split.eval_labels)
    extra = [o.strip() for o in a.overrides.split(";") if o.strip()]
    payload = {"benchmark": "ensemble", "dataset": a.dataset, "preset": PRESETS[a.dataset],
               "overrides": extra, "members": a.members, "repeats": a.repeats, "inner_share": a.inner,
               "n_fit": len(fit_x), "n_inner": len(in_x), "n_eval": len(split.eval_texts) if a.show_eval else None,
               "vectors": VECTORS, "started": today(), "machine": machine_info(), "busy": busy_note(),
               "command": " ".join(sys.argv), "runs": []}
    print(f"{a.dataset}: fit on {len(fit_x):,}, inner {len(in_x):,}"
          + (f", eval {len(split.eval_texts):,}" if a.show_eval else "")
          + f"; preset {PRESETS[a.dataset]}, overrides {extra or 'none'}", flush=True)
    for r in range(a.repeats):
        seeds = list(range(r * a.members + 1, (r + 1) * a.members + 1))
        members, records = [], []
        for seed in seeds:
            cfg = make_config(preset=PRESETS[a.dataset],
                              overrides=extra + [f"train.seed={seed}", "data.val_split=0.1"])
            start = time.perf_counter()
            clf = TextClassifier(cfg).fit(fit_x, fit_y, vectors=a.data_dir / VECTORS)
            rec = {"seed": seed, "train_s": time.perf_counter() - start,
                   "fit_train_seconds": clf.meta_.get("train_seconds"),
                   "val_macro_f1": clf.meta_.get("best_val_macro_f1"), "best_epoch": clf.meta_.get("best_epoch")}
            for part, (texts, gold) in scored.items():
                rec[part] = scores(clf, texts, gold)
            print(f"  repeat {r + 1} seed {seed}: inner acc {rec['inner']['accuracy']:.4f} "
                  f"F1 {rec['inner']['macro_f1']:.4f}  train {rec['train_s']:.0f} s", flush=True)
            members.append(clf)
            records.append(rec)
        ens = TextClassifier.ensemble(members)
        erec = {part: scores(ens, texts, gold) for part, (texts, gold) in scored.items()}
        *single_s, erec["predict_s"] = predict_seconds(members + [ens], in_x)
        for rec, sec in zip(records, single_s):
            rec["predict_s"] = sec
        erec["proba_mean_gap"] = proba_check(ens, members, in_x[:200])
        rep = {"repeat": r + 1, "seeds": seeds, "members": records, "ensemble": erec}
        for part in scored:
            rep[f"{part}_members_mean"] = {k: statistics.mean(m[part][k] for m in records) for k in METRICS}
        print(f"  repeat {r + 1} ensemble: inner acc {erec['inner']['accuracy']:.4f} "
              f"F1 {erec['inner']['macro_f1']:.4f} (members' mean {rep['inner_members_mean']['accuracy']:.4f} / "
              f"{rep['inner_members_mean']['macro_f1']:.4f}); proba gap {erec['proba_mean_gap']:.1e}", flush=True)
        payload["runs"].append(rep)
        payload["summary"] = summarize(payload["runs"], list(scored))
        payload["finished"] = today()
        if a.json:
            write_json(a.json, payload)
    return payload


def report(p: dict) -> None:
    parts = ["inner"] + (["eval"] if p["n_eval"] else [])
    rows = []
    for rep in p["runs"]:
        for m in rep["members"]:
            rows.append([f"repeat {rep['repeat']}", f"seed {m['seed']}"]
                        + [fmt(m[part][k], 4) for part in parts for k in METRICS]
                        + [fmt(m["train_s"], 0), fmt(m["predict_s"], 3)])
        rows.append([f"repeat {rep['repeat']}", "members' mean"]
                    + [fmt(rep[f"{part}_members_mean"][k], 4) for part in parts for k in METRICS]
                    + [fmt(statistics.mean(m["train_s"] for m in rep["members"]), 0),
                       fmt(statistics.mean(m["predict_s"] for m in rep["members"]), 3)])
        rows.append([f"repeat {rep['repeat']}", f"ensemble of {len(rep['members'])}"]
                    + [fmt(rep["ensemble"][part][k], 4) for part in parts for k in METRICS]
                    + ["—", fmt(rep["ensemble"]["predict_s"], 3)])
    cols = ["repeat", "model"] + [f"{part} {k.replace('_', '-')}" for part in parts for k in METRICS] \
        + ["train s", "predict s (inner)"]
    title = (f"{p['dataset']}: {p['repeats']} × ensembles of {p['members']} seeds, overrides "
             f"{';'.join(p['overrides']) or 'none'}")
    print_table(title, cols, rows)

    s = p["summary"]
    srows = []
    for part in parts:
        for k in METRICS:
            v = s[f"{part}_{k}"]
            srows.append([part + ("" if part == "inner" else " (record only)"), k.replace("_", "-"),
                          f"{v['single_mean']:.4f} ± {v['single_sd']:.4f}",
                          f"{v['ensemble_mean']:.4f} ± {v['ensemble_sd']:.4f}",
                          f"{v['gain']:+.4f}", f"{v['gain_per_repeat_mean']:+.4f} ± {v['gain_per_repeat_sd']:.4f}",
                          f"{v['ensemble_beats_best_member']}/{v['n_ensembles']}"])
    loop = s.get("train_loop_s_per_member")
    notes = [f"training: {s['train_s_per_member']['mean']:.0f} ± {s['train_s_per_member']['sd']:.0f} s per member "
             f"(median {s['train_s_per_member']['median']:.0f} s"
             + (f"; training loop alone {loop['mean']:.0f} s" if loop else "") + "); "
             f"predicting the {p['n_inner']:,} inner texts: single {s['predict_s_single']:.3f} s, ensemble "
             f"{s['predict_s_ensemble']:.3f} s ({s['predict_ratio']:.2f}×)",
             f"single: all {s['inner_accuracy']['n_single']} members pooled; ensemble: {s['inner_accuracy']['n_ensembles']} "
             "groups of disjoint seeds; judge on the inner rows"]
    if p.get("busy"):
        notes.append(p["busy"])
    print_table(f"{p['dataset']}: summary", ["part", "metric", "single mean ± sd", "ensemble mean ± sd", "gain",
                                            "per-repeat gain ± sd", "ens ≥ best member"], srows, notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=sorted(PRESETS))
    ap.add_argument("--members", type=int, default=3, help="seeds per ensemble (K)")
    ap.add_argument("--repeats", type=int, default=3, help="ensembles of disjoint seeds (R)")
    ap.add_argument("--overrides", default="", help="config overrides for every member, 'a=b;c=d'")
    ap.add_argument("--inner", type=float, default=0.15,
                    help="share of the training part held out and scored on (the column to judge by)")
    ap.add_argument("--show-eval", action="store_true", help="also score the evaluation split (record only)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    a = ap.parse_args()
    if a.members < 2:
        ap.error("--members: at least 2")
    if a.repeats < 1:
        ap.error("--repeats: at least 1")
    if not 0.0 < a.inner < 1.0:
        ap.error("--inner: a share in (0, 1)")
    report(run(a))


if __name__ == "__main__":
    main()
