"""`Tokenizer`: text to a list of token strings, the same way at training and prediction time.

Two kinds: `spacy` (the rule-based tokenizer of `spacy.blank(lang)`: no model download) and
`regex` (a compiled regular expression, 10-20x faster, English-oriented: it splits "don't" into
"do" "n't" and "it's" into "it" "'s" as spaCy does, keeps "3.5" and "..." whole, and puts every
other symbol in a token of its own). Both first `clean` the text. Tokens never contain
whitespace and are never empty, so a vocabulary can be saved one token per line.

>>> tok = Tokenizer(TokenizerConfig(kind="regex"))
>>> tok.tokenize("I don't like it.<br /><br />Not at ALL!")
['i', 'do', "n't", 'like', 'it', '.', 'not', 'at', 'all', '!']
"""
from __future__ import annotations

import dataclasses
import functools
import html
import itertools
import logging
import multiprocessing
import os
import pkgutil
import re
import sys
import threading
import unicodedata
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..config import TokenizerConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # `<br />`, `<p class=x>`, `</i>`
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")  # dropped
_SPACE_LIKE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f]")  # other whitespace, controls -> " "
MAX_RUN = 100  # longest whitespace-free run spaCy sees; its affix loop is quadratic in it
_LONG_RUN = re.compile(rf"(?<!\S)\S{{{MAX_RUN + 1},}}")  # tried at run starts only: linear
_CHARS_PER_TOKEN = 50  # generous: English averages ~5 characters per token
# The most tokens any text gives (training and prediction alike), whatever `max_tokens` says:
# memory stays bounded and the LSTM kernel's limit (2**20 steps) is never reached.
MAX_TEXT_TOKENS = 100_000
RULES_VERSION = 4  # bump when cleaning or splitting changes: it invalidates cached tokens
# Space-separated pieces whose spaCy tokens a tokenizer keeps. IMDB's 265,000 distinct pieces
# grew a process by 150 MB, spaCy's own vocabulary included (whole-text spaCy: 470 MB).
PIECE_CACHE_SIZE = 300_000
# The name prefix of textlstm's own helper threads (`model.directions`), which the pool forks past.
HELPER_THREAD_PREFIX = "textlstm-direction"
POOL_MIN_TEXTS = 2000  # fewer texts than this are tokenized in process: a pool would not pay
_IN_FLIGHT_PER_WORKER = 2  # batches queued per worker process: bounds memory while streaming


class Tokenizer:
    """Cleans and splits text into tokens as `config` (a `TokenizerConfig`) says.

    `clean` removes HTML and invisible or control characters; `tokenize` cleans, splits, drops
    whitespace, lowercases when `config.lower` and truncates to `config.max_tokens`; `pipe`
    does the same for many texts, in worker processes when there are enough of them.

    >>> Tokenizer(TokenizerConfig(kind="regex", max_tokens=3, truncation="tail")).tokenize("a b c d")
    ['b', 'c', 'd']
    """

    def __init__(self, config: TokenizerConfig):
        self.config = config
        _validate(config)
        self.limit = config.max_tokens or MAX_TEXT_TOKENS
        self._split = (_spacy_split(config.lang, config.lower) if config.kind == "spacy"
                       else _regex_split(config.lower))

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> "Tokenizer":
        """The tokenizer `to_dict` describes (unknown keys are a `ConfigError`)."""
        known = {f.name for f in dataclasses.fields(TokenizerConfig)}
        unknown = set(settings) - known
        if unknown:
            raise ConfigError(f"Unknown tokenizer settings {sorted(unknown)}. Keys: {', '.join(sorted(known))}.")
        return cls(TokenizerConfig(**settings))

    def to_dict(self) -> dict[str, Any]:
        """The settings, to be saved with a model so that prediction tokenizes as training did."""
        return dataclasses.asdict(self.config)

    def __repr__(self) -> str:
        return f"Tokenizer({self.config!r})"

    def __reduce__(self) -> tuple:
        """Pickled as its settings (spaCy objects are not sent between processes)."""
        return (Tokenizer.from_dict, (self.to_dict(),))

    def clean(self, text: str) -> str:
        """HTML tags (with `strip_html`) become spaces and entities are unescaped; zero-width
        characters, soft hyphens and lone surrogates are dropped; control characters and every
        whitespace character but " " become " "; the text is NFC-normalized.

        >>> Tokenizer(TokenizerConfig(kind="regex")).clean("a<br />b &amp; c\\u200bd\\te")
        'a b & cd e'
        """
        if self.config.strip_html:
            if "<" in text:
                text = _TAG.sub(" ", text)
            text = html.unescape(text)
        if not text.isprintable():  # fast check: false for every character handled here
            text = _SPACE_LIKE.sub(" ", _INVISIBLE.sub("", text))
        return unicodedata.normalize("NFC", text)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text`, truncated to `config.max_tokens` (0: `MAX_TEXT_TOKENS`) keeping
        the head, the tail or half of each (head+tail; the head gets the odd one).

        With a limit, only generous pieces at the kept end(s) of a long text are split (cut at a
        space, so the tokens are those of the whole text), which keeps enormous texts fast."""
        text = self.clean(text)
        limit = self.limit
        if len(text) > _CHARS_PER_TOKEN * limit:
            tokens = self._split_ends(text, limit)
            if tokens is not None:
                return tokens
        return self._truncate(self._split(text))

    def pipe(self, texts: Iterable[str], *, batch_size: int = 1000,
             n_process: int = 0) -> Iterator[list[str]]:
        """`tokenize` each text, in order, streaming. `n_process` 1 stays in this process; 0
        uses every usable core for spaCy, but stays in process for the regex kind, which is
        about as fast as sending texts to workers and tokens back. Worker processes start only
        for more than `POOL_MIN_TEXTS` texts; each gets this tokenizer (forked, or rebuilt from
        its settings when spawned) and `batch_size` texts at a time, at most two batches per
        worker in flight.

        >>> list(Tokenizer(TokenizerConfig(kind="regex")).pipe(["A b", "c"], n_process=1))
        [['a', 'b'], ['c']]
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}.")
        workers = n_process if n_process > 0 else _usable_cores() if self.config.kind == "spacy" else 1
        stream = iter(texts)
        if workers <= 1:
            return map(self.tokenize, stream)
        head = list(itertools.islice(stream, POOL_MIN_TEXTS + 1))
        if len(head) <= POOL_MIN_TEXTS:
            return map(self.tokenize, head)
        return _pooled(self, itertools.chain(head, stream), batch_size, workers)

    def _truncate(self, tokens: list[str]) -> list[str]:
        limit = self.limit
        if len(tokens) <= limit:
            return tokens
        head, tail = self._shares(limit)
        return tokens[:head] + tokens[len(tokens) - tail:]

    def _shares(self, limit: int) -> tuple[int, int]:
        """How many tokens to keep from the head and from the tail."""
        mode = self.config.truncation
        head = limit if mode == "head" else 0 if mode == "tail" else limit - limit // 2
        return head, limit - head

    def _split_ends(self, text: str, limit: int) -> list[str] | None:
        """The truncated tokens of a long cleaned text from pieces at its kept end(s), or None
        if the pieces would cover the whole text. Pieces grow until they hold enough tokens."""
        head_n, tail_n = self._shares(limit)
        ends = (head_n > 0) + (tail_n > 0)
        width = _CHARS_PER_TOKEN * limit
        while width * ends < len(text):
            head = self._head_tokens(text, width, head_n)
            tail = self._tail_tokens(text, width, tail_n)
            if head is not None and tail is not None:
                return head + tail
            width *= 4
        return None

    def _head_tokens(self, text: str, width: int, n: int) -> list[str] | None:
        if n == 0:
            return []
        cut = text.rfind(" ", 0, width)  # cut at a space: the piece's tokens are the text's
        tokens = self._split(text[:cut]) if cut > 0 else []
        return tokens[:n] if len(tokens) >= n else None

    def _tail_tokens(self, text: str, width: int, n: int) -> list[str] | None:
        if n == 0:
            return []
        cut = text.find(" ", len(text) - width)
        tokens = self._split(text[cut:]) if cut >= 0 else []
        return tokens[len(tokens) - n:] if len(tokens) >= n else None


def _broken_runs(text: str) -> str:
    """Break runs of more than `MAX_RUN` non-space characters every `MAX_RUN` characters."""
    return _LONG_RUN.sub(_break_run, text) if len(text) > MAX_RUN else text


def _break_run(match: re.Match[str]) -> str:
    run = match.group()
    return " ".join(run[i:i + MAX_RUN] for i in range(0, len(run), MAX_RUN))


def _validate(config: TokenizerConfig) -> None:
    """Values a TOML file or a hand-made config may get wrong."""
    for f in dataclasses.fields(TokenizerConfig):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices and value not in choices:
            raise ConfigError(f"tokenizer.{f.name} = {value!r} is not allowed. Allowed: {', '.join(choices)}.")
    m = config.max_tokens
    if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= MAX_TEXT_TOKENS:
        raise ConfigError(f"tokenizer.max_tokens must be an integer from 0 to {MAX_TEXT_TOKENS:,} "
                          f"(0: up to {MAX_TEXT_TOKENS:,}, the most any text gives), got {m!r}.")


def _spacy_split(lang: str, lower: bool) -> Callable[[str], list[str]]:
    """Cleaned text to tokens with spaCy's tokenizer for `lang`: by pieces (`SpacyPieces`) for
    its rule-based tokenizer, whole texts for a language whose tokenizer segments words."""
    import spacy  # slow to import: only when a spaCy tokenizer is asked for
    import spacy.lang
    import spacy.tokenizer
    languages = sorted(m.name for m in pkgutil.iter_modules(spacy.lang.__path__) if m.ispkg)
    if lang not in languages:
        raise ConfigError(f"spaCy has no language {lang!r} (tokenizer.lang). spaCy languages: "
                          f"{', '.join(languages)}. Or use tokenizer.kind = \"regex\".")
    try:
        spacy_tokenizer = spacy.blank(lang).tokenizer
    except ImportError as exc:  # e.g. ja, ko, zh, th, vi need extra packages
        raise ConfigError(f"spaCy's {lang!r} tokenizer needs a package that is not installed: {exc}") from None
    if isinstance(spacy_tokenizer, spacy.tokenizer.Tokenizer):
        return SpacyPieces(spacy_tokenizer, lower)

    def whole_texts(text: str) -> list[str]:  # a word segmenter (zh, ja, ...): pieces need not stand alone
        return [t.lower_ if lower else t.text for t in spacy_tokenizer(_broken_runs(text)) if not t.is_space]
    return whole_texts


class SpacyPieces:
    """Cleaned text to tokens with a spaCy tokenizer: whitespace tokens dropped, lowercased
    (each token, as spaCy's `lower_`) with `lower`.

    Each space-separated piece of the text is tokenized on its own and its tokens are kept in
    `cache`, at most `PIECE_CACHE_SIZE` pieces (emptied when full): most pieces of a corpus
    recur ("the", "movie.", "don't"), and a hit skips spaCy's per-text work (a `Doc`, its
    special-case matcher over the whole text). IMDB's reviews tokenize 2-2.5x faster in a fresh
    process and 11x once their pieces are cached. The pieces a text misses go to spaCy in one
    call, but for ASCII words that are no special case, which no rule splits. Tokenizing whole
    texts gives the same tokens but where spaCy's special-case matcher matches across a space
    and so blocks a case inside a piece (5 of 75,000 IMDB reviews: "'' ''" became "''" "'"
    "'"). Pieces of more than `MAX_RUN` characters are first broken every `MAX_RUN` characters:
    spaCy's affix loop is quadratic in a run's length (200,000 "!" take minutes)."""

    def __init__(self, spacy_tokenizer: Any, lower: bool):
        self.spacy_tokenizer, self.lower = spacy_tokenizer, lower
        self.cache: dict[str, tuple[str, ...]] = {}
        self._interned: dict[str, str] = {}  # one string per distinct token, shared by the pieces
        self._specials = frozenset(spacy_tokenizer.rules)  # pieces spaCy's exceptions split or change

    def __call__(self, text: str) -> list[str]:
        pieces = text.split()  # cleaned text: " " is its only whitespace
        cache = self.cache
        missing = [p for p in dict.fromkeys(pieces) if p not in cache]
        if len(cache) + len(missing) > PIECE_CACHE_SIZE:  # full: start again
            cache.clear()
            self._interned.clear()
            missing = list(dict.fromkeys(pieces))
        if missing:
            self._add(missing)
        tokens: list[str] = []
        for piece in pieces:
            tokens += cache[piece]
        return tokens

    def _add(self, pieces: list[str]) -> None:
        """Cache `pieces` (distinct, none cached) from one spaCy call: joined by newlines, which
        spaCy keeps as whitespace tokens that no special case spans, so each piece gets the
        tokens it gets alone."""
        lower, interned, specials = self.lower, self._interned, self._specials
        rest = []
        for piece in pieces:  # no prefix, suffix or infix rule splits ASCII letters: one token
            if len(piece) <= MAX_RUN and piece.isascii() and piece.isalpha() and piece not in specials:
                text = piece.lower() if lower else piece
                self.cache[piece] = (interned.setdefault(text, text),)
            else:
                rest.append(piece)
        if not rest:
            return
        pieces = rest
        groups: list[list[str]] = [[]]
        for t in self.spacy_tokenizer("\n".join(map(_broken_runs, pieces))):
            if t.is_space:
                if "\n" in t.text:  # the next piece (a broken run's spaces stay inside it)
                    groups.append([])
                continue
            text = t.lower_ if lower else t.text
            groups[-1].append(interned.setdefault(text, text))
        if len(groups) != len(pieces) or not all(groups):  # never seen; one call per piece then
            groups = [[t.lower_ if lower else t.text for t in self.spacy_tokenizer(_broken_runs(p))
                       if not t.is_space] for p in pieces]
        self.cache.update(zip(pieces, map(tuple, groups)))


def _regex_split(lower: bool) -> Callable[[str], list[str]]:
    """Cleaned text to tokens with `_regex()`; with `lower` the text is lowercased before it is
    split (much faster than token by token; the same tokens but in contrived cases such as a
    Greek final sigma)."""
    findall = _regex().findall

    def split(text: str) -> list[str]:
        return findall(_broken_runs(text.lower() if lower else text))
    return split


@functools.lru_cache(maxsize=1)
def _regex() -> re.Pattern[str]:
    """The regex tokenizer. Combining marks of the BMP count as word characters (Python's
    `\\w` lacks them), so words in scripts such as Devanagari stay whole; marks beyond the BMP
    (rare scripts) would make every match much slower and are left out."""
    word = f"[\\w{_mark_ranges()}]"
    return re.compile(rf"""
        \d+(?:[.,]\d+)+                      # 3.5  1,000
      | (?:[^\W\d_]\.){{2,}}                  # U.S.  e.g.
      | [nN]['’][tT]\b                       # "n't"
      | ['’](?i:s|m|d|ll|re|ve)\b            # clitics: "'s" "'m" "'d" "'ll" "'re" "'ve"
      | {word}+(?<![nN](?=['’][tT]\b))       # words; "do" of "don't", "ca" of "can't" as spaCy
      | \.{{2,}} | -{{2,}}                   # "..." and "--" stay whole
      | [^\w\s]                              # any other symbol on its own
    """, re.X)


def _mark_ranges() -> str:
    """A character-class body of the combining marks (Unicode category M*) of the BMP."""
    ranges, start = [], None
    for cp in range(0x10001):
        is_mark = cp < 0x10000 and unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            ranges.append(f"{chr(start)}-{chr(cp - 1)}")
            start = None
    return "".join(ranges)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# -- worker processes -----------------------------------------------------------------------

_worker_tokenizer: Tokenizer | None = None


def _init_worker(tokenizer: Tokenizer) -> None:
    """A forked worker gets the caller's tokenizer as is (spaCy loaded, its cache warm); a
    spawned one gets it pickled, i.e. rebuilt from its settings."""
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _tokenize_batch(texts: list[str]) -> str:
    """The batch's tokens packed in one string, a line per text and a space between tokens:
    tokens hold no whitespace, so this is lossless, and far cheaper to send back than lists."""
    if _worker_tokenizer is None:
        raise RuntimeError("a tokenizer worker was started without _init_worker")
    return "\n".join(" ".join(_worker_tokenizer.tokenize(t)) for t in texts)


def _unpack(packed: str) -> list[list[str]]:
    return [line.split(" ") if line else [] for line in packed.split("\n")]


def _mp_context() -> multiprocessing.context.BaseContext:
    """`fork` on Linux when this process runs no other Python thread: workers start at once,
    with spaCy already imported (a spawned worker spends seconds importing spaCy and torch,
    which on 2 cores eats most of the gain). Otherwise `spawn`, as a lock held by another thread
    (a progress bar's, say) could stay held forever in a forked child. textlstm's own idle
    helper thread (`model.directions`, named `HELPER_THREAD_PREFIX`...) does not count: it runs
    only while this thread waits on it, and a child never uses it. Workers rebuild the
    tokenizer from its settings either way."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()
              and not t.name.startswith(HELPER_THREAD_PREFIX)]
    forkable = (sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
                and not others)
    return multiprocessing.get_context("fork" if forkable else "spawn")


def _pooled(tokenizer: Tokenizer, texts: Iterator[str], batch_size: int,
            workers: int) -> Iterator[list[str]]:
    """Token lists of `texts` in order, from a pool of `workers` processes."""
    batches = iter(lambda: list(itertools.islice(texts, batch_size)), [])
    log.debug("tokenizing in %d processes, %d texts per batch", workers, batch_size)
    with _mp_context().Pool(workers, _init_worker, (tokenizer,)) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.apply_async(_tokenize_batch, (batch,)))
            if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
                yield from _unpack(pending.popleft().get())
        while pending:
            yield from _unpack(pending.popleft().get())
