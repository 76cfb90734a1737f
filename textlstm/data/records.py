"""What the readers produce: `Example` (one document) and `ReadReport` (what a read saw)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..errors import where


@dataclass(frozen=True, slots=True)
class Example:
    """One document: its text, its label (None when unlabelled) and where it came from."""

    text: str
    label: str | None
    line: int | None  # 1-based line where the record starts; None for the folder format
    source: str
    error: str | None = None  # why the record is unusable (on_bad_lines="report"); text is ""


@dataclass
class ReadReport:
    """What a read saw: the fields chosen, and how many records were kept or skipped (and why).

    `read_examples(..., report=r)` fills it as examples stream; once read,
    `n_records == n_kept + sum(skipped.values()) + sum(reported.values())`, where `reported`
    counts the bad records passed on as error examples (`on_bad_lines="report"`).
    """

    path: str = ""
    format: str = ""
    text_field: str | None = None
    label_field: str | None = None
    fields_detected: bool = False  # a field was chosen by its name: callers should say which
    n_records: int = 0
    n_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    reported: Counter = field(default_factory=Counter)
    examples_of_skips: list[tuple[str, int | None, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. "read 6920 examples from x.tsv (text='sentence', label='label')"."""
        fields = (f"text={self.text_field!r}, label={self.label_field!r}"
                  if self.text_field else self.format)
        out = f"read {self.n_kept} examples from {self.path} ({fields})"
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            source, line, _ = self.examples_of_skips[0]
            out += f"; skipped {sum(self.skipped.values())}: {reasons} (first at {where(source, line)})"
        if self.reported:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.reported.most_common())
            source, line, _ = next((s for s in self.examples_of_skips if s[2] in self.reported),
                                   ("?", None, ""))
            out += (f"; {sum(self.reported.values())} bad records kept as errors: {reasons} "
                    f"(first at {where(source, line)})")
        return out
