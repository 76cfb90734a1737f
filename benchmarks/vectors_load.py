"""Benchmark: `load_vectors` (fast path) against gensim's full text load, on a GloVe-like file.

Generates, in a temporary folder, a GloVe-format file (`--words` x `--dim`, random words,
random numbers with 5 decimals) and a `--vocab`-word vocabulary of which half is in the file.
Each contender runs in a fresh subprocess that reports its time and its memory from
/proc/self/status: VmHWM (peak RSS) and VmRSS right after imports. "load MiB", the compared
figure, is the peak minus that after-imports RSS (what the load itself costs); absolute peaks
are shown too (they include imports: `import textlstm` currently pulls in torch).
Both matrices are saved and compared (rows found in the file must agree exactly).

    python benchmarks/vectors_load.py                      # 400k x 300, 20k vocabulary
    python benchmarks/vectors_load.py --words 50000 --dim 100 --json out.json
    python benchmarks/vectors_load.py --builtin glove-6b-50d      # the built-in source against
                                                                   # the same vectors as a text file

With `--builtin NAME` the vocabulary is half the source's own words, half words it lacks; the
built-in source (memory-mapped `.npy`, only the vocabulary's rows read) is timed against the
fast text path on a GloVe text file written from the same matrix.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def random_words(rng: np.random.Generator, n: int, exclude: set[str] = frozenset()) -> list[str]:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    words: dict[str, None] = {}
    while len(words) < n:
        lengths = rng.integers(3, 13, size=n)
        codes = letters[rng.integers(0, 26, size=(n, 12))]
        for row, k in zip(codes, lengths):
            w = row[:k].tobytes().decode()
            if w not in exclude:
                words[w] = None
    return list(words)[:n]


def write_glove(path: Path, words: list[str], dim: int, rng: np.random.Generator) -> None:
    """Vectorised writer: every number is 9 byte slots (sign, digit, '.', 5 digits, separator);
    unused slots are 0 and dropped before writing."""
    chunk = 10_000
    with open(path, "wb") as fh:
        for start in range(0, len(words), chunk):
            block = words[start:start + chunk]
            width = max(map(len, block)) + 1
            wbytes = np.zeros((len(block), width), np.uint8)
            for r, w in enumerate(block):
                wbytes[r, :len(w) + 1] = np.frombuffer(w.encode() + b" ", np.uint8)
            v = np.clip(np.rint(rng.normal(0, 0.4, (len(block), dim)) * 1e5), -999999, 999999)
            v = v.astype(np.int64)
            a = np.abs(v)
            nums = np.zeros((len(block), dim, 9), np.uint8)
            nums[..., 0] = np.where(v < 0, ord("-"), 0)
            nums[..., 1] = ord("0") + a // 100000
            nums[..., 2] = ord(".")
            for d in range(5):
                nums[..., 3 + d] = ord("0") + (a // 10 ** (4 - d)) % 10
            nums[..., 8] = ord(" ")
            nums[:, -1, 8] = ord("\n")
            rows = np.concatenate([wbytes, nums.reshape(len(block), -1)], axis=1).ravel()
            fh.write(rows[rows != 0].tobytes())


def child(kind: str, vectors: str, vocab_file: str, out_npy: str) -> None:
    """Runs in the subprocess: load, build the matrix, report time and memory as JSON.
    The gensim child does not import textlstm, so its absolute peak is gensim's alone."""
    itos = Path(vocab_file).read_text(encoding="utf-8").split("\n")[:-1]
    if kind in ("fast", "builtin"):
        from textlstm.embeddings import load_vectors
        from textlstm.data.vocab import Vocab

        vocab = Vocab(itos)
    else:
        from gensim.models import KeyedVectors
    rss_after_imports = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if kind in ("fast", "builtin"):
        vec = load_vectors(vectors, vocab)  # the default: random rows for missing words
        matrix, found = vec.matrix, vec.found
    else:
        kv = KeyedVectors.load_word2vec_format(vectors, binary=False, no_header=True)
        matrix = np.zeros((len(itos), kv.vector_size), np.float32)
        found = np.zeros(len(itos), bool)
        for i, w in enumerate(itos[2:], 2):
            key = w if w in kv.key_to_index else w.lower()
            if key in kv.key_to_index:
                matrix[i], found[i] = kv.get_vector(key), True
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")  # before the comparison copy below
    np.save(out_npy, np.where(found[:, None], matrix, np.nan))
    print(json.dumps({"seconds": seconds, "rss_after_imports_mb": rss_after_imports,
                      "peak_abs_mb": peak, "found": int(found.sum())}))


def run_child(kind: str, vectors: Path, vocab_file: Path, out_npy: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(vectors), str(vocab_file), str(out_npy)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["peak_mb"] = result["peak_abs_mb"] - result["rss_after_imports_mb"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--words", type=int, default=400_000, help="words in the vectors file")
    ap.add_argument("--dim", type=int, default=300, help="dimensions")
    ap.add_argument("--vocab", type=int, default=20_000, help="vocabulary size (half in the file)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--builtin", help="time this built-in source (e.g. glove-6b-50d) instead")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    if args.builtin:
        return builtin_main(args)

    from textlstm.data.vocab import Vocab

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        words = random_words(rng, args.words)
        vectors = tmp / f"bench.{args.words}.{args.dim}d.txt"
        write_glove(vectors, words, args.dim, rng)
        inside = list(rng.choice(words, args.vocab // 2, replace=False))
        outside = random_words(rng, args.vocab - len(inside), exclude=set(words))
        Vocab(["<pad>", "<unk>", *inside, *outside]).save(tmp / "vocab.txt")
        gen_s = time.perf_counter() - t0
        size_mb = vectors.stat().st_size / 2**20
        fast = run_child("fast", vectors, tmp / "vocab.txt", tmp / "fast.npy")
        slow = run_child("gensim", vectors, tmp / "vocab.txt", tmp / "gensim.npy")
        agree = np.array_equal(np.load(tmp / "fast.npy"), np.load(tmp / "gensim.npy"),
                               equal_nan=True)
    report = {
        "words": args.words, "dim": args.dim, "vocab": args.vocab, "file_mb": round(size_mb, 1),
        "generate_s": round(gen_s, 2),
        "fast_s": fast["seconds"], "gensim_s": slow["seconds"],
        "speedup": slow["seconds"] / fast["seconds"],
        "fast_peak_mb": fast["peak_mb"], "gensim_peak_mb": slow["peak_mb"],
        "memory_ratio": slow["peak_mb"] / max(fast["peak_mb"], 1e-9),
        "fast_peak_abs_mb": fast["peak_abs_mb"], "gensim_peak_abs_mb": slow["peak_abs_mb"],
        "memory_ratio_abs": slow["peak_abs_mb"] / fast["peak_abs_mb"],
        "found": fast["found"], "matrices_agree": bool(agree),
    }
    _print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def builtin_main(args) -> None:
    """The built-in source against the same vectors read from a GloVe text file."""
    from textlstm.data.vocab import Vocab
    from textlstm.embeddings import read_vector_words
    from textlstm.embeddings.builtin import BUILTINS

    src = BUILTINS[args.builtin]
    rng = np.random.default_rng(args.seed)
    words = read_vector_words(src.name)
    matrix = np.load(src.root() / src.matrix_file, mmap_mode="r")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = tmp / f"{src.name}.txt"
        with open(text, "w", encoding="utf-8") as fh:  # float32 repr: the same values back
            for start in range(0, len(words), 20_000):
                block = np.asarray(matrix[start:start + 20_000])
                fh.writelines(f"{w} " + " ".join(map(repr, map(float, row))) + "\n"
                              for w, row in zip(words[start:start + 20_000], block.tolist()))
        inside = list(rng.choice(words, args.vocab // 2, replace=False))
        outside = random_words(rng, args.vocab - len(inside), exclude=set(words))
        Vocab(["<pad>", "<unk>", *inside, *outside]).save(tmp / "vocab.txt")
        named = run_child("builtin", src.name, tmp / "vocab.txt", tmp / "builtin.npy")
        fast = run_child("fast", text, tmp / "vocab.txt", tmp / "fast.npy")
        agree = np.allclose(np.load(tmp / "builtin.npy"), np.load(tmp / "fast.npy"), equal_nan=True,
                            rtol=0, atol=0)
        size_mb = text.stat().st_size / 2**20
    report = {"builtin": src.name, "words": len(words), "dim": src.dim, "vocab": args.vocab,
              "text_file_mb": round(size_mb, 1), "builtin_s": named["seconds"], "text_s": fast["seconds"],
              "speedup": fast["seconds"] / named["seconds"], "builtin_peak_mb": named["peak_mb"],
              "text_peak_mb": fast["peak_mb"], "found": named["found"], "matrices_agree": bool(agree)}
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{src.name}: {len(words):,} x {src.dim}, vocabulary {args.vocab:,} "
                        f"(half in the source)")
    for col in ("", "seconds", "load MiB"):
        table.add_column(col, justify="right")
    table.add_row(f"built-in ({src.name})", f"{named['seconds']:.2f}", f"{named['peak_mb']:.0f}")
    table.add_row(f"GloVe text file ({size_mb:,.0f} MiB)", f"{fast['seconds']:.2f}", f"{fast['peak_mb']:.0f}")
    table.add_row("ratio (text / built-in)", f"{report['speedup']:.1f}x",
                  f"{fast['peak_mb'] / max(named['peak_mb'], 1e-9):.1f}x")
    Console().print(table)
    print(f"rows found: {named['found']:,}; matrices agree exactly: {agree}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{r['words']:,} x {r['dim']} GloVe text ({r['file_mb']:,} MiB), "
                        f"vocabulary {r['vocab']:,}")
    for col in ("", "seconds", "load MiB", "peak MiB"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_row("load_vectors", f"{r['fast_s']:.2f}", f"{r['fast_peak_mb']:.0f}",
                  f"{r['fast_peak_abs_mb']:.0f}")
    table.add_row("gensim, full load", f"{r['gensim_s']:.2f}",
                  f"{r['gensim_peak_mb']:.0f}", f"{r['gensim_peak_abs_mb']:.0f}")
    table.add_row("ratio (gensim / fast)", f"{r['speedup']:.1f}x", f"{r['memory_ratio']:.1f}x",
                  f"{r['memory_ratio_abs']:.1f}x")
    console = Console()
    console.print(table)
    console.print("load MiB: peak RSS minus RSS after imports (the compared figure); peak MiB: "
                  "peak RSS, including imports (textlstm pulls in torch, the gensim child not).")
    console.print(f"rows found: {r['found']:,}; matrices agree exactly: {r['matrices_agree']}; "
                    f"file generated in {r['generate_s']:.1f}s")


if __name__ == "__main__":
    main()
