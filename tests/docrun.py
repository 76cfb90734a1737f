"""Run the documentation's shell examples the way a reader would, and check the outputs it shows.

A page's fenced blocks run in order, in one bash session, in a sandbox of their own:

- a `bash` block runs line by line under `set -euo pipefail`; a `textlstm serve` line starts the
  server in the background (stopping the one before) and waits until `/ready` answers;
- a `text` or `console` block whose first line starts with `$ ` is a transcript: each `$ `
  command runs, and what it prints must match the lines below it, numbers aside (they are
  timings and scores), box-drawing aside, and with a line `…` standing for any number of lines;
- `<!-- file: NAME -->` just above a block writes the block to NAME in the sandbox first (a grid
  file, a configuration), `<!-- not run: WHY -->` skips the block and says why.

The sandbox is the repository's `corpora/`, a trained `model/`, and small stand-ins for every
file the examples name (reviews.csv, unsup.txt.gz, goemotions.jsonl, ../shared/data/…), so a
command that works on them works on a reader's files of the same shape.

    python tests/docrun.py docs/cli.md            # run a page's examples and report
    python tests/docrun.py --update docs/cli.md   # rewrite its transcripts from a fresh run
"""
from __future__ import annotations

import argparse
import csv
import functools
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = 8000  # the port the docs use; the sandbox serves on a free one instead
ELLIPSIS = "…"
NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")
BOX = re.compile(r"[\u2500-\u257f]")
SERVE = re.compile(r"(^|\s)textlstm serve\s")
ABSOLUTE = re.compile(r"(?<![\w.])/[\w.-]+(?:/[\w.-]+)+")  # an absolute path: where the repository is


@dataclass
class Block:
    lang: str
    body: str
    first: int  # index of the body's first line in the page's lines
    last: int  # index one past the body's last line
    directive: tuple[str, str] | None = None

    @property
    def is_transcript(self) -> bool:
        return self.lang in ("text", "console") and self.body.startswith("$ ")


@dataclass
class Transcript:
    block: Block
    commands: list[tuple[str, list[str]]] = field(default_factory=list)  # (command, shown output)


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a page (any language), with the directive comment above each."""
    lines, found, i = text.split("\n"), [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        above = re.match(r"^<!-- (not run|file): (.+?) -->$", lines[i - 1]) if i else None
        found.append(Block(m.group(1), "\n".join(lines[i + 1:end]), i + 1, end,
                           (above.group(1), above.group(2)) if above else None))
        i = end + 1
    return found


def transcript(block: Block) -> Transcript:
    t = Transcript(block)
    for line in block.body.split("\n"):
        if line.startswith("$ "):
            t.commands.append((line[2:], []))
        else:
            t.commands[-1][1].append(line)
    return t


def logical_lines(body: str) -> list[str]:
    """A shell block's commands, continuation lines joined."""
    out, buf = [], ""
    for line in body.split("\n"):
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
        else:
            out.append(buf + line)
            buf = ""
    return [line for line in out if line.strip() and not line.lstrip().startswith("#")]


PRELUDE = """set -euo pipefail
__pids=()
__stop() { for p in "${__pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; __pids=(); }
__ready() {
  for _ in $(seq 600); do curl -sf "localhost:__PORT__/ready" >/dev/null && return 0; sleep 0.1; done
  echo "the server did not get ready on port __PORT__:" >&2; cat "$1" >&2; return 1
}
trap __stop EXIT
"""


def _serve(line: str, log: str) -> str:
    """A `textlstm serve` line: stop the server before, start this one in the background, and
    wait until it is ready (its log, on failure)."""
    command = re.sub(r"&\s*(#.*)?$", "", line.split("  #")[0]).strip()
    if "--port" not in command:
        command += f" --port {PORT}"
    return f"__stop\n{command} > {log} 2>&1 &\n__pids+=($!)\n__ready {log}\n"


def script(page_blocks: list[Block], port: int) -> str:
    parts, serves = [PRELUDE.replace("__PORT__", str(port))], 0
    for n, b in enumerate(page_blocks):
        if b.directive or not (b.lang in ("bash", "console", "text")):
            continue
        if b.is_transcript:
            for k, (command, _) in enumerate(transcript(b).commands):
                if SERVE.search(command):  # what it prints until it is ready
                    serves += 1
                    run = _serve(command, f"serve-{serves}.log") + f"cat serve-{serves}.log\n"
                else:
                    run = f"set +e\n( {command}\n) 2>&1\n__rc=$?\nset -e\n"
                parts.append(f'echo\necho "@@begin {n} {k}"\n__rc=0\n{run}echo\necho "@@end {n} {k} $__rc"\n')
        elif b.lang == "bash":
            parts.append(f'echo\necho "@@block {n}"\n')
            for line in logical_lines(b.body):
                if SERVE.search(line):
                    serves += 1
                    parts.append(_serve(line, f"serve-{serves}.log"))
                else:
                    parts.append(line + "\n")
    return "".join(parts).replace(f":{PORT}", f":{port}").replace(f"--port {PORT}", f"--port {port}")


def norm(line: str) -> str:
    return " ".join(NUMBER.sub("#", ABSOLUTE.sub("/…", BOX.sub(" ", line))).split())


def align(shown: list[str], actual: list[str]) -> list[int | None] | None:
    """For each shown line, the actual line it matches (None for `…`), or None if they differ."""
    shown = [line for line in shown if line.strip()] if shown else []
    want, got = [norm(s) for s in shown], [norm(a) for a in actual]

    @functools.lru_cache(maxsize=None)
    def match(i: int, j: int) -> tuple | None:
        if i == len(want):
            return () if j == len(got) else None
        if want[i] == ELLIPSIS:
            for k in range(j, len(got) + 1):
                rest = match(i + 1, k)
                if rest is not None:
                    return (None, *rest)
            return None
        if j < len(got) and want[i] == got[j]:
            rest = match(i + 1, j + 1)
            return None if rest is None else (j, *rest)
        return None

    found = match(0, 0)
    return None if found is None else list(found)


def parse_output(stdout: str) -> dict[tuple[int, int], tuple[list[str], int]]:
    """Each transcript command's output lines and exit status, keyed by (block, command)."""
    outputs, current, lines = {}, None, []
    for line in stdout.split("\n"):
        if m := re.match(r"^@@begin (\d+) (\d+)$", line):
            current, lines = (int(m.group(1)), int(m.group(2))), []
        elif (m := re.match(r"^@@end (\d+) (\d+) (\d+)$", line)) and current:
            outputs[current] = ([x for x in lines if x.strip()], int(m.group(3)))
            current = None
        elif current:
            lines.append(line)
    return outputs


@dataclass
class PageRun:
    page: Path
    returncode: int
    log: str
    problems: list[str]
    skipped: list[str]
    updated_text: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_page(page: Path, sandbox: Path, timeout: float = 900) -> PageRun:
    """Run every example of a page in `sandbox` (made by `make_sandbox`)."""
    text = page.read_text(encoding="utf-8")
    page_blocks = blocks(text)
    skipped = []
    for b in page_blocks:
        if b.directive and b.directive[0] == "file":
            (sandbox / b.directive[1]).write_text(b.body + "\n", encoding="utf-8")
        elif b.directive:
            skipped.append(f"{page.name}:{b.first}: {b.directive[1]}")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1",
           "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb", "TEXTLSTM_CACHE": str(sandbox / ".cache")}
    env.pop("TEXTLSTM_SERVE_TOKEN", None)
    port = free_port()
    res = subprocess.run(["bash", "-c", script(page_blocks, port)], cwd=sandbox, env=env, timeout=timeout,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = res.stdout.replace(str(sandbox) + os.sep, "").replace(f":{port}", f":{PORT}")
    outputs = parse_output(log)
    problems, lines = [], text.split("\n")
    for b in page_blocks:
        if not (b.directive or b.lang in ("bash", "python", "text")):
            problems.append(f"{page.name}:{b.first}: a ```{b.lang} block that is neither Python, bash, a transcript "
                            "or figure (text), nor marked <!-- file: NAME --> or <!-- not run: WHY -->")
    if res.returncode:
        problems.append(f"{page.name}: the examples stopped with status {res.returncode}:\n{log[-4000:]}")
    for n, b in reversed(list(enumerate(page_blocks))):
        if b.directive or not b.is_transcript:
            continue
        new_body = []
        for k, (command, shown) in enumerate(transcript(b).commands):
            actual, rc = outputs.get((n, k), ([], None))
            where = f"{page.name}:{b.first + 1}: `$ {command}`"
            if rc is None:
                problems.append(f"{where} did not run")
            elif rc:
                problems.append(f"{where} exited with status {rc}:\n" + "\n".join(actual[-40:]))
            fit = align(shown, actual)
            if fit is None and rc is not None:
                problems.append(f"{where} printed something else than the page shows:\n" + "\n".join(actual))
            kept = [s for s in shown if s.strip()]
            if fit is None or kept == [ELLIPSIS]:  # a new transcript: all of it, to cut by hand
                new_body += [f"$ {command}", *actual]
            else:
                new_body += [f"$ {command}"] + [ELLIPSIS if j is None else actual[j] for j in fit]
        lines[b.first:b.last] = new_body
    return PageRun(page, res.returncode, log, problems, skipped, "\n".join(lines))


# --- the sandbox -------------------------------------------------------------------------------

def _rows(name: str) -> list[tuple[str, str]]:
    with open(ROOT / "corpora" / "sentiment" / name, encoding="utf-8", newline="") as fh:
        return [(r["sentence"], r["label"]) for r in csv.DictReader(fh, delimiter="\t")]


EMOTIONS = {
    "joy": ["this made my day", "what a lovely surprise", "i am so happy for you"],
    "gratitude": ["thank you so much", "thanks for the help", "really appreciate it"],
    "anger": ["this is infuriating", "i am so angry right now", "stop doing that"],
    "sadness": ["i miss them so much", "that is heartbreaking", "i feel so alone"],
}


def _emotion_rows(n: int) -> list[dict]:
    names, rows = list(EMOTIONS), []
    for i in range(n):
        a, b = names[i % 4], names[(i // 4) % 4]
        labels = sorted({a, b}) if i % 3 == 0 else [a]
        text = " and ".join(EMOTIONS[x][(i // 16 + k) % 3] for k, x in enumerate(labels))
        rows.append({"text": text, "labels": labels})
    return rows


def _write_csv(path: Path, header: list[str], rows: list[tuple], delimiter: str = ",") -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


def make_sandbox(root: Path, model: Path | None) -> Path:
    """root/work: corpora/, model/ (a copy of `model`), and the files the examples name; root/shared/data:
    stand-ins for the data sets under ../shared/data. Returns root/work."""
    work = root / "work"
    shutil.copytree(ROOT / "corpora", work / "corpora")
    if model is not None:
        shutil.copytree(model, work / "model")
    train, test = _rows("train.tsv"), _rows("test.tsv")
    small = train[::6]  # 86 balanced sentences: the examples train in seconds
    for name in ("data.csv", "train.csv", "imdb.csv"):
        _write_csv(work / name, ["text", "label"], small)
    _write_csv(work / "reviews.csv", ["review_id", "text", "label"], [(f"r{i}", t, y) for i, (t, y) in enumerate(small)])
    for name in ("test.csv", "dev.csv", "val.csv"):
        _write_csv(work / name, ["text", "label"], test[::3])
    _write_csv(work / "data.tsv", ["sentence", "label"], small, delimiter="\t")
    _write_csv(work / "tickets.csv", ["text", "label"],
               [(t, "billing|urgent" if i % 3 == 0 else "billing" if y == "negative" else "praise")
                for i, (t, y) in enumerate(small)])
    unsup = "".join(t + "\n" for t, _ in train[1::6])
    data = root / "shared" / "data"
    for d in ("imdb", "embeddings", "sst2"):
        (data / d).mkdir(parents=True)
    for path in (work / "unsup.txt.gz", data / "imdb" / "unsup.txt.gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(unsup)
    words = sorted({w for t, _ in train for w in re.findall(r"[a-z']+", t.lower())})
    rows = "".join(f"{w} " + " ".join(f"{((hash_(w) >> k) % 200 - 100) / 100:.2f}" for k in range(100)) + "\n"
                   for w in words)
    for path in (work / "my-w2v.txt.gz", data / "embeddings" / "imdb-w2v-100d.txt.gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(rows)
    _write_csv(data / "sst2" / "train.tsv", ["sentence", "label"],
               [(t, int(y == "positive")) for t, y in small], delimiter="\t")
    emotions = _emotion_rows(96)
    for name, part in (("goemotions.jsonl", emotions), ("dev.jsonl", emotions[::2]), ("test.jsonl", emotions[1::2])):
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return work


def model_for(page: Path, model: Path) -> Path | None:
    """The trained `model/` for a page, unless the page trains its own."""
    return None if re.search(r"--out model/?(\s|$)", page.read_text(encoding="utf-8"), flags=re.M) else model


def hash_(word: str) -> int:
    """A stable, seed-free hash (Python's own is salted per process)."""
    return int.from_bytes(word.encode("utf-8")[:16].ljust(16, b"\0"), "big") * 2654435761 % (1 << 61)


def train_model(out: Path) -> Path:
    """The `model/` the examples use: small-sentiment on the bundled corpus."""
    subprocess.run([str(Path(sys.executable).parent / "textlstm"), "train", "--out", str(out), "--quiet"],
                   cwd=ROOT, check=True, env={**os.environ, "TEXTLSTM_CACHE": str(out.parent / ".cache")},
                   stdout=subprocess.DEVNULL)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true", help="rewrite the transcripts with this run's output")
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        model = train_model(Path(tmp) / "model")
        for i, page in enumerate(args.pages):
            run = run_page(page.resolve(), make_sandbox(Path(tmp) / f"page{i}", model_for(page, model)))
            print(f"{page}: {'ok' if not run.problems else 'FAILED'}; skipped: {run.skipped or 'none'}")
            for p in run.problems:
                print(p, file=sys.stderr)
            if args.update and run.returncode == 0:
                page.write_text(run.updated_text, encoding="utf-8")
            failed += bool(run.problems)
    return 1 if failed and not args.update else 0


if __name__ == "__main__":
    sys.exit(main())
