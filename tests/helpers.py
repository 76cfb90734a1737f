"""Tiny data sets shared by several test files (imported as `helpers`: pytest puts tests/ on
the path)."""
import random
from pathlib import Path

ROWS = [("a wonderful warm film", "positive"), ("great acting and a great story", "positive"),
        ("I loved every minute", "positive"), ("brilliant and moving", "positive"),
        ("a dull boring mess", "negative"), ("awful acting and a bad story", "negative"),
        ("I hated every minute", "negative"), ("tedious and flat", "negative")]


def write_tsv(path: Path, rows) -> Path:
    """`rows` of (text, label) as a TSV with a `sentence\\tlabel` header."""
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    return path


def write_corpus(path: Path, n: int = 1500, max_words: int = 8) -> Path:
    """`n` generated sentences of 3..`max_words` filler words plus one cue word of their label
    (pos / neg, alternating), as a `text\\tlabel` TSV."""
    rng = random.Random(0)
    filler = "the a film movie story plot acting was is and it this".split()
    cues = {"pos": "good great fine lovely superb nice warm".split(),
            "neg": "bad awful dull boring poor weak flat".split()}
    rows = []
    for i in range(n):
        label = ("neg", "pos")[i % 2]
        words = rng.choices(filler, k=rng.randint(3, max_words)) + [rng.choice(cues[label])]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)}\t{label}\n")
    path.write_text("text\tlabel\n" + "".join(rows), encoding="utf-8")
    return path
