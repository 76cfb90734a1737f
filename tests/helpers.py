"""Tiny data sets shared by several test files (imported as `helpers`: pytest puts tests/ on
the path)."""
import random
from pathlib import Path

ROWS = [("a wonderful warm film", "positive"), ("great acting and a great story", "positive"),
        ("I loved every minute", "positive"), ("brilliant and moving", "positive"),
        ("a dull boring mess", "negative"), ("awful acting and a bad story", "negative"),
        ("I hated every minute", "negative"), ("tedious and flat", "negative")]
"""Eight (text, label) pairs, four "positive" then four "negative", for TSV files and the CLI."""

# Two sentiment sets: POS / NEG (six texts each, long enough for a classifier to overfit) and
# TRAIN (six shorter texts, for tests that just need some fitted model).
POS = ["a wonderful warm film", "great acting and a great story", "I loved every minute",
       "brilliant and moving", "superb fun from start to end", "a delight, truly great"]
"""Six positive texts (the first four are ROWS' positive ones)."""
NEG = ["a dull boring mess", "awful acting and a bad story", "I hated every minute",
       "tedious and flat", "terrible from start to end", "a bore, truly bad"]
"""Six negative texts, mirroring POS (the first four are ROWS' negative ones)."""
TEXTS = POS + NEG
"""The twelve texts POS + NEG, positive first."""
LABELS = ["pos"] * 6 + ["neg"] * 6
"""The labels of TEXTS: six "pos" then six "neg"."""
TRAIN = ["a wonderful warm film", "great acting", "I loved it", "a dull boring mess",
         "awful acting", "I hated it"]
"""Six short texts, three positive then three negative, for the jobs and robustness tests."""


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
