"""Accuracy benchmark: textlstm against TF-IDF + logistic regression, fastText and the tutorial
BiLSTM on IMDB, SST-2 and TREC (fixed splits: see common.py).

Every (data set, system) pair trains and evaluates in a fresh subprocess of this script
(`--only DATASET:SYSTEM`), so its peak RSS is its own; a failing pair is recorded with its
error and the others go on.

    python benchmarks/accuracy.py --quick --datasets sst2,trec        # smoke test, a few minutes
    python benchmarks/accuracy.py --json out/accuracy.json            # everything (hours)
    python benchmarks/accuracy.py --datasets imdb --systems tfidf-lr,fasttext
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from resource import RUSAGE_CHILDREN
from typing import Callable

# Run as a script: `common` lies beside it, and textlstm is imported from this checkout.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from common import (DATA_DIR, DATASETS, PRESETS, SEED, VECTORS, Split, busy_note,  # noqa: E402
                    fallback_tokenize, fmt, load_split, machine_info, make_tokenizer,
                    parse_list, peak_mb, preset_model_sizes, print_table, stratified_part, timer,
                    today, write_json)

SYSTEMS = ("textlstm-w2v", "textlstm-glove", "textlstm-glove+w2v", "textlstm-random", "tfidf-lr", "fasttext", "tutorial-random", "tutorial-w2v",
           "textlstm-lm")
DEFAULT_SYSTEMS = SYSTEMS[:-1]  # textlstm-lm needs --encoder DATASET=DIR
TUTORIAL_MAX_LEN = {"imdb": 400, "sst2": 60, "trec": 40}  # tokens; see README
TUTORIAL_EPOCHS = {"imdb": 4, "sst2": 10, "trec": 10}
LR_C = (1.0, 4.0, 16.0)
FASTTEXT_EPOCHS = (5, 10, 25)
TUNE_SHARE = 0.1  # stratified share of train that picks C / fastText's epochs
WARMUP_TEXTS = 8  # predicted once before the timed inference
PREDICT_PASSES = 3  # timed passes over the evaluation texts: docs_per_s is the best, docs_per_s_first the first
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

Predictor = Callable[[list[str]], list[str]]
_TAG = re.compile(r"<[^<>]*>")


class Skip(Exception):
    """The system cannot run here (an optional package is missing)."""


@dataclass
class Options:
    quick: bool
    threads: int
    data_dir: Path
    encoders: dict[str, str]  # data set -> pretrained encoder directory (textlstm pretrain-lm)
    seeds: int = 1  # training runs per seeded system (textlstm, fastText, the tutorial BiLSTMs)


# -- the systems: each trains on split.train_* and returns (predict, details) ----------------

def fit_textlstm(split: Split, opts: Options, vectors: list, encoder: bool = False, run: int = 0
                 ) -> tuple[Predictor, dict]:
    from textlstm import TextClassifier, make_config

    cfg = make_config(preset=PRESETS[split.name])
    cfg.train.threads = opts.threads
    cfg.train.seed += run  # run 0: the preset's own seed
    extra = {}
    if encoder:
        if split.name not in opts.encoders:
            raise Skip(f"no pretrained encoder for {split.name}: pass --encoder {split.name}=DIR "
                       "(made by textlstm pretrain-lm)")
        import json

        cfg.embeddings.encoder = opts.encoders[split.name]  # the classifier loads and checks it
        meta = json.loads((Path(cfg.embeddings.encoder) / "config.json").read_text())["meta"]
        extra = {"encoder": cfg.embeddings.encoder, "encoder_texts": meta.get("n_texts"),
                 "encoder_pretrain_s": sum(h["seconds"] for h in meta.get("history", [])),
                 "encoder_val_perplexity": (meta.get("history") or [{}])[-1].get("val_perplexity")}
    if opts.quick:
        cfg.train.epochs = 1
    clf = TextClassifier(cfg).fit(split.train_texts, split.train_labels, vectors=vectors)
    keys = ("best_epoch", "stopped_early", "padding_share", "n_train", "n_val", "coverage", "vector_sources")
    return clf.predict, {k: clf.meta_.get(k) for k in keys} | {"epochs": cfg.train.epochs,
                                                                "seed": cfg.train.seed} | extra


def _untag(text: str) -> str:
    return _TAG.sub(" ", text.lower())


def fit_tfidf(split: Split, opts: Options) -> tuple[Predictor, dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline

    def pipeline(c: float):
        # sklearn's word pattern (2+ word characters) over lowercased text without HTML tags
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, preprocessor=_untag),
            LogisticRegression(C=c, max_iter=2000))

    fit_x, fit_y, dev_x, dev_y = stratified_part(split.train_texts, split.train_labels, TUNE_SHARE)
    scores = {c: accuracy_score(dev_y, pipeline(c).fit(fit_x, fit_y).predict(dev_x)) for c in LR_C}
    best = max(LR_C, key=lambda c: (scores[c], -c))
    model = pipeline(best).fit(split.train_texts, split.train_labels)
    return (lambda texts: list(model.predict(texts))), {"C": best, "dev_accuracy": scores}


def fit_fasttext(split: Split, opts: Options, run: int = 0) -> tuple[Predictor, dict]:
    try:
        import fasttext
    except ImportError as exc:
        raise Skip(f"fastText is not installed ({exc}); pip install fasttext-wheel") from None
    from sklearn.metrics import accuracy_score

    line = lambda text: " ".join(fallback_tokenize(text))  # noqa: E731 - fastText splits on spaces

    def train(texts, labels, epoch):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as fh:
            fh.writelines(f"__label__{y} {line(x)}\n" for x, y in zip(texts, labels))
            fh.flush()
            return fasttext.train_supervised(fh.name, wordNgrams=2, dim=100, lr=0.1, epoch=epoch,
                                             minCount=1, thread=opts.threads, seed=SEED + run, verbose=0)

    def predictor(model) -> Predictor:
        def predict(texts):
            labels, _ = model.predict([line(t) for t in texts], k=1)
            return [lab[0].removeprefix("__label__") for lab in labels]
        return predict

    fit_x, fit_y, dev_x, dev_y = stratified_part(split.train_texts, split.train_labels, TUNE_SHARE)
    scores = {e: accuracy_score(dev_y, predictor(train(fit_x, fit_y, e))(dev_x)) for e in FASTTEXT_EPOCHS}
    best = max(FASTTEXT_EPOCHS, key=lambda e: (scores[e], -e))
    return predictor(train(split.train_texts, split.train_labels, best)), {"epoch": best, "dev_accuracy": scores}


def fit_tutorial(split: Split, opts: Options, vectors: Path | None, run: int = 0) -> tuple[Predictor, dict]:
    import numpy as np
    import torch
    import tutorial_bilstm as tb

    torch.set_num_threads(opts.threads)
    torch.set_flush_denormal(True)  # textlstm does this too (train.setup_threads): fair
    preset = PRESETS[split.name]
    tokenize, tok_note = make_tokenizer(preset, max_tokens=0)  # the tutorial truncates itself
    max_len, epochs = TUTORIAL_MAX_LEN[split.name], 1 if opts.quick else TUTORIAL_EPOCHS[split.name]
    tokens = tokenize(split.train_texts)
    vocab = tb.build_vocab(tokens, min_count=2)
    classes = sorted(set(split.train_labels))
    y = torch.tensor([classes.index(lab) for lab in split.train_labels])
    emb_dim, hidden = preset_model_sizes(preset)
    matrix, found = tb.load_vectors(vectors, vocab, emb_dim) if vectors else (None, None)
    torch.manual_seed(SEED + run)
    model = tb.TutorialBiLSTM(len(vocab), emb_dim, hidden, len(classes), vectors=matrix)
    losses = tb.train(model, tb.encode(tokens, vocab, max_len), y, epochs, seed=SEED + run)

    def predict(texts: list[str]) -> list[str]:
        return [classes[i] for i in tb.predict(model, tb.encode(tokenize(texts), vocab, max_len))]

    lengths = np.array([len(t) for t in tokens])
    return predict, {"tokenizer": tok_note, "max_len": max_len, "epochs": epochs,
                     "p95_tokens": float(np.percentile(lengths, 95)),
                     "truncated_share": float((lengths > max_len).mean()),
                     "padding_share": float(1 - np.minimum(lengths, max_len).sum() / (len(lengths) * max_len)),
                     "vocab_size": len(vocab), "vectors_found": found, "losses": losses,
                     "embedding_dim": emb_dim, "hidden_size": hidden}


SEEDED = {"textlstm-w2v", "textlstm-glove", "textlstm-glove+w2v", "textlstm-random", "textlstm-lm", "fasttext", "tutorial-random", "tutorial-w2v"}


def fitter(system: str, opts: Options, run: int = 0) -> Callable[[Split], tuple[Predictor, dict]]:
    """The system's training function; `run` shifts its random seed (see `--seeds`)."""
    vectors = opts.data_dir / VECTORS
    return {
        # vector sources given explicitly ([]: none), whatever the preset names
        "textlstm-w2v": lambda s: fit_textlstm(s, opts, [vectors], run=run),
        "textlstm-glove": lambda s: fit_textlstm(s, opts, ["glove-6b-50d"], run=run),
        "textlstm-glove+w2v": lambda s: fit_textlstm(s, opts, ["glove-6b-50d", vectors], run=run),
        "textlstm-random": lambda s: fit_textlstm(s, opts, [], run=run),
        "textlstm-lm": lambda s: fit_textlstm(s, opts, [], encoder=True, run=run),
        "tfidf-lr": lambda s: fit_tfidf(s, opts),
        "fasttext": lambda s: fit_fasttext(s, opts, run),
        "tutorial-random": lambda s: fit_tutorial(s, opts, None, run),
        "tutorial-w2v": lambda s: fit_tutorial(s, opts, vectors, run),
    }[system]


# -- one pair, in this process (the child) ----------------------------------------------------

def run_pair(dataset: str, system: str, opts: Options) -> dict:
    """Train, predict the evaluation texts end to end, score; the peak RSS of this process.
    A seeded system trains `opts.seeds` times (seeds shifted by 0, 1, ...): the scores and
    training time are the means, each run's are kept; inference is timed on the first model."""
    import statistics

    from sklearn.metrics import accuracy_score, f1_score

    split = load_split(dataset, opts.data_dir, opts.quick)
    n = len(split.eval_texts)
    runs, first = [], {}
    for run in range(opts.seeds if system in SEEDED else 1):
        with timer() as t_train:
            predict, details = fitter(system, opts, run)(split)
        if run == 0:
            with timer() as t_warm:  # one-time lazy set-up (spaCy pipeline, first torch call): untimed
                predict(split.eval_texts[:WARMUP_TEXTS])
            seconds = []
            for _ in range(PREDICT_PASSES):  # the first pass also pays per-shape kernel set-up (oneDNN)
                with timer() as t_pred:
                    pred = predict(split.eval_texts)
                seconds.append(t_pred["s"])
            first = {"details": details, "warmup_s": t_warm["s"], "predict_s": seconds}
        else:
            pred = predict(split.eval_texts)
        runs.append({"accuracy": float(accuracy_score(split.eval_labels, pred)),
                     "macro_f1": float(f1_score(split.eval_labels, pred, average="macro")),
                     "train_s": t_train["s"], "seed": details.get("seed")})
    seconds = first["predict_s"]
    mean = {k: statistics.fmean(r[k] for r in runs) for k in ("accuracy", "macro_f1", "train_s")}
    spread = {f"{k}_sd": statistics.stdev(r[k] for r in runs) if len(runs) > 1 else None
              for k in ("accuracy", "macro_f1")}
    return mean | spread | {
        "seeds": len(runs), "docs_per_s": n / min(seconds), "docs_per_s_first": n / seconds[0],
        "peak_mb": peak_mb(),
        "details": first["details"] | {"train_texts": len(split.train_texts), "eval_texts": n,
                                       "warmup_s": first["warmup_s"], "predict_s": seconds, "runs": runs,
                                       "peak_children_mb": peak_mb(RUSAGE_CHILDREN)}}


def child_main(pair: str, result_file: Path, opts: Options) -> None:
    dataset, _, system = pair.partition(":")
    try:
        result = run_pair(dataset, system, opts)
    except Skip as exc:
        result = {"skipped": str(exc)}
    except Exception as exc:  # noqa: BLE001 - recorded per row; the suite goes on
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["peak_mb"] = peak_mb()
    write_json(result_file, result)


# -- the suite (the parent) -----------------------------------------------------------------

def run_isolated(dataset: str, system: str, opts: Options, timeout: float | None) -> dict:
    import json

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--only", f"{dataset}:{system}", "--result-file", str(out),
               "--threads", str(opts.threads), "--data-dir", str(opts.data_dir), "--seeds", str(opts.seeds)]
        cmd += [a for name, path in opts.encoders.items() for a in ("--encoder", f"{name}={path}")]
        cmd += ["--quick"] if opts.quick else []
        # BLAS / OpenMP pools (scikit-learn, numpy) get the same thread count as torch
        env = os.environ | {var: str(opts.threads) for var in THREAD_VARS}
        try:
            proc = subprocess.run(cmd, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if not out.exists():
            return {"error": f"the child process exited with code {proc.returncode} without a result"}
        return json.loads(out.read_text())


def report(results: dict[str, dict[str, dict]], notes: list[str]) -> None:
    rows = []
    for dataset, systems in results.items():
        for system, r in systems.items():
            if "error" in r or "skipped" in r:
                notes.append(f"{dataset} {system}: {r.get('error') or 'skipped: ' + r['skipped']}")
                rows.append([dataset, system, "", "error" if "error" in r else "skipped", "", "", "", "", ""])
                continue
            sd = r.get("accuracy_sd")
            rows.append([dataset, system, r.get("seeds", 1),
                         fmt(100 * r["accuracy"], 2) + (f" ± {100 * sd:.2f}" if sd is not None else ""),
                         fmt(100 * r["macro_f1"], 2), fmt(r["train_s"]), fmt(r["docs_per_s"], 0),
                         fmt(r.get("docs_per_s_first"), 0), fmt(r["peak_mb"], 0)])
    print_table("Accuracy on the evaluation splits (seeded systems: mean ± sd over --seeds runs)",
                ["data set", "system", "runs", "accuracy %", "macro-F1 %", "train s", "docs/s",
                 "first pass docs/s", "peak MB"],
                rows, notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: imdb,sst2,trec")
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS), help=f"comma-separated: {','.join(SYSTEMS)}")
    ap.add_argument("--encoder", action="append", default=[], metavar="DATASET=DIR",
                    help="pretrained encoder (textlstm pretrain-lm) for the textlstm-lm system; repeatable")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2,000 training / 500 evaluation texts, 1 epoch for the BiLSTMs")
    ap.add_argument("--threads", type=int, default=2, help="torch, fastText and BLAS / OpenMP threads (default 2)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default {DATA_DIR}")
    ap.add_argument("--timeout", type=float, help="seconds allowed to each (data set, system)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="train each seeded system this many times and report the means (default 1)")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # internal: DATASET:SYSTEM in a child
    ap.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    opts = Options(args.quick, args.threads, args.data_dir,
                   dict(item.split("=", 1) for item in args.encoder if "=" in item), max(1, args.seeds))
    if args.only:
        return child_main(args.only, args.result_file, opts)
    if not (opts.data_dir / "sst2").is_dir():
        sys.exit(f"Data folder {opts.data_dir} not found (it should hold imdb/, sst2/, trec/). Use --data-dir.")
    datasets = parse_list(args.datasets, DATASETS, "data set")
    systems = parse_list(args.systems, SYSTEMS, "system")
    results: dict[str, dict[str, dict]] = {}
    machine, notes = machine_info(), [n for n in [busy_note()] if n]
    for dataset in datasets:
        for system in systems:
            print(f"[{dataset}] {system} ...", file=sys.stderr, flush=True)
            r = run_isolated(dataset, system, opts, args.timeout)
            results.setdefault(dataset, {})[system] = r
            summary = r.get("error") or r.get("skipped") or (
                f"accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}, train {r['train_s']:.1f} s")
            print(f"[{dataset}] {system}: {summary}", file=sys.stderr, flush=True)
    report(results, notes)
    if args.json:
        empty = dict.fromkeys(("accuracy", "macro_f1", "train_s", "docs_per_s", "docs_per_s_first", "peak_mb"))
        write_json(args.json, {"date": today(), "machine": machine, "notes": notes,
                               "settings": {"quick": opts.quick, "threads": opts.threads, "seeds": opts.seeds},
                               "results": {d: {s: empty | r for s, r in rs.items()} for d, rs in results.items()}})


if __name__ == "__main__":
    main()
