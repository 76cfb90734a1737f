"""What the readers produce: `Example` (one document) and `ReadReport` (what a read saw)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..errors import where


@dataclass(frozen=True, slots=True)
class Example:
    """One document: its text, its label (None when unlabelled; a tuple of labels in
    multi-label data, `()` for none of them) and where it came from."""

    text: str
    label: str | tuple[str, ...] | None
    line: int | None  # 1-based line where the record starts; None for the folder format
    source: str
    error: str | None = None  # why the record is unusable (on_bad_lines="report"); text is ""
    id: str | None = None  # the value of the reader's id field, when one was asked for


@dataclass
class ReadReport:
    """What a read saw: the fields chosen, and how many records were kept or skipped (and why).

    `read_examples(..., report=r)` fills it as examples stream; once read,
    `n_records == n_kept + sum(skipped.values()) + sum(reported.values())`, where `reported`
    counts the bad records passed on as error examples (`on_bad_lines="report"`). Blank lines
    are not records; `n_blank` counts them. A read that met no record says why in
    `empty_reason()`.
    """

    path: str = ""
    format: str = ""
    text_field: str | None = None
    label_field: str | None = None
    fields_detected: bool = False  # a field was chosen by its name: callers should say which
    n_records: int = 0
    n_kept: int = 0
    n_blank: int = 0  # blank lines passed over (before a header: lines of only spaces too)
    skipped: Counter = field(default_factory=Counter)
    reported: Counter = field(default_factory=Counter)
    examples_of_skips: list[tuple[str, int | None, str]] = field(default_factory=list)
    n_multi: int = 0  # records with several labels (multi-label syntax)
    n_no_label: int = 0  # records whose multi-label syntax names no label (all negative)
    first_no_label: tuple[str, int | None] | None = None  # where the first of them is

    def empty_reason(self) -> str | None:
        """Why a finished read met no record at all: "the file is empty", "the file has only a
        header row" or "every line is blank"; None once it met any record, kept or not (then
        `summary()` says why records were skipped).

        >>> ReadReport(path="x.csv").empty_reason()
        'the file is empty'
        """
        if self.n_records:
            return None
        if self.text_field is not None:  # only a CSV/TSV header chooses fields without a record
            return "the file has only a header row"
        return "every line is blank" if self.n_blank else "the file is empty"

    def summary(self) -> str:
        """One line, e.g. "read 6920 examples from x.tsv (text='sentence', label='label')", or
        "read 0 examples from x.tsv: the file is empty"."""
        fields = (f"text={self.text_field!r}, label={self.label_field!r}"
                  if self.text_field else self.format)
        empty = self.empty_reason()
        if empty is not None:
            chosen = f" ({fields})" if self.text_field else ""
            return f"read 0 examples from {self.path}{chosen}: {empty}"
        out = f"read {self.n_kept} examples from {self.path} ({fields})"
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            source, line, _ = self.examples_of_skips[0]
            out += f"; skipped {sum(self.skipped.values())}: {reasons} (first at {where(source, line)})"
        if self.n_no_label:
            source, line = self.first_no_label or ("?", None)
            out += f"; {self.n_no_label} with no label (first at {where(source, line)})"
        if self.reported:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.reported.most_common())
            source, line, _ = next((s for s in self.examples_of_skips if s[2] in self.reported),
                                   ("?", None, ""))
            out += (f"; {sum(self.reported.values())} bad records kept as errors: {reasons} "
                    f"(first at {where(source, line)})")
        return out
