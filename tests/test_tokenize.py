import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textlstm.config import TokenizerConfig
from textlstm.data.tokenize import POOL_MIN_TEXTS, Tokenizer
from textlstm.errors import ConfigError

KINDS = ["spacy", "regex"]


@pytest.fixture(scope="module")
def tokenizers():
    """Built once: spaCy's blank pipeline takes a moment."""
    return {(kind, lower): Tokenizer(TokenizerConfig(kind=kind, lower=lower))
            for kind in KINDS for lower in (True, False)}


def make(**settings) -> Tokenizer:
    return Tokenizer(TokenizerConfig(**settings))


def assert_clean_tokens(tokens):
    for tok in tokens:
        assert tok, tokens
        assert not any(ch.isspace() for ch in tok), tokens


@pytest.mark.parametrize("kind", KINDS)
def test_lowercasing_on_and_off(tokenizers, kind):
    text = "The Movie was GREAT, Bob."
    assert tokenizers[kind, True].tokenize(text) == ["the", "movie", "was", "great", ",", "bob", "."]
    assert tokenizers[kind, False].tokenize(text) == ["The", "Movie", "was", "GREAT", ",", "Bob", "."]


@pytest.mark.parametrize("kind", KINDS)
def test_html_breaks_and_tags_are_removed(tokenizers, kind):
    text = "Great film.<br /><br />I <i>loved</i> it<br>really<p class=\"x\">a &amp; b &quot;c&quot; it&#39;s"
    tokens = tokenizers[kind, True].tokenize(text)
    assert tokens[:9] == ["great", "film", ".", "i", "loved", "it", "really", "a", "&"]
    assert not any(t in {"<", ">", "br", "/>", "i>", "p"} for t in tokens)
    assert '"' in tokens and "'s" in tokens
    assert "&amp;" not in "".join(tokens)


def test_strip_html_off_keeps_markup():
    tokens = make(kind="regex", strip_html=False).tokenize("a<br />b &amp;")
    assert "br" in tokens and "amp" in tokens


def test_clean_removes_invisible_and_control_characters(tokenizers):
    tok = tokenizers["regex", True]
    assert tok.clean("zero\u200bwidth\ufeff a\x00b\tc\u2028d\r\ne") == "zerowidth a b c d  e"
    assert tok.clean("lone \ud800 surrogate") == "lone  surrogate"
    assert tok.clean("cafe\u0301") == "caf\u00e9"  # NFC


def test_regex_splits_english_like_spacy(tokenizers):
    text = "I don't think it's 3.5 stars... can't say -- the U.S. version"
    assert tokenizers["regex", False].tokenize(text) == tokenizers["spacy", False].tokenize(text)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("truncation, expected", [
    ("head", [str(i) for i in range(7)]),
    ("tail", [str(i) for i in range(13, 20)]),
    ("head+tail", ["0", "1", "2", "3", "17", "18", "19"]),  # the head gets the odd token
])
def test_truncation_keeps_the_right_tokens(kind, truncation, expected):
    tok = make(kind=kind, max_tokens=7, truncation=truncation)
    assert tok.tokenize(" ".join(str(i) for i in range(20))) == expected
    assert tok.tokenize("1 2 3") == ["1", "2", "3"]  # short texts are untouched


@pytest.mark.parametrize("truncation", ["head+tail", "head", "tail"])
def test_truncation_of_one_and_two_tokens(truncation):
    words = "a b c d e".split()
    for n in (1, 2):
        tokens = make(kind="regex", max_tokens=n, truncation=truncation).tokenize(" ".join(words))
        assert len(tokens) == n
        if truncation == "head":
            assert tokens == words[:n]
        elif truncation == "tail":
            assert tokens == words[-n:]
        else:
            assert tokens == words[:n - n // 2] + words[len(words) - n // 2:]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("truncation", ["head", "tail", "head+tail"])
def test_long_text_shortcut_gives_the_same_tokens(kind, truncation):
    """Long texts are cut before splitting; the tokens must be those of the whole text."""
    sentence = "It's a <b>film</b>, isn't it? Well... no!!! 3.5/10 &amp; a half.<br />"
    text = " ".join(f"{sentence} word{i}" for i in range(300))
    limited = make(kind=kind, max_tokens=40, truncation=truncation)
    full = make(kind=kind)
    assert len(text) > 50 * 40
    expected = full.tokenize(text)
    expected = {"head": expected[:40], "tail": expected[-40:],
                "head+tail": expected[:20] + expected[-20:]}[truncation]
    assert limited.tokenize(text) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_enormous_text_with_a_limit_is_fast(kind):
    text = "This film is a long one, isn't it? " * 60_000  # 2.1M characters
    assert len(text) > 2_000_000
    for truncation in ("head", "tail", "head+tail"):
        tokens = make(kind=kind, max_tokens=100, truncation=truncation).tokenize(text)
        assert len(tokens) == 100


def test_pathological_runs_stay_fast_with_spacy():
    """spaCy's affix loop is quadratic in the length of a whitespace-free run."""
    start = time.perf_counter()
    tokens = make(kind="spacy").tokenize("!" * 50_000)
    assert tokens == ["!"] * 50_000
    assert time.perf_counter() - start < 30  # quadratic would be ~minutes


@pytest.mark.parametrize("kind", KINDS)
def test_tokens_never_hold_whitespace(tokenizers, kind):
    text = "a\u00a0b\tc\nd\u2028e\u3000f  g\u200bh \x0bi\x1cj\u0085k <br/>l"
    tokens = tokenizers[kind, True].tokenize(text)
    assert_clean_tokens(tokens)
    assert tokens == ["a", "b", "c", "d", "e", "f", "g" + "h", "i", "j", "k", "l"]


@given(st.text())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_text_never_crashes(tokenizers, text):
    for kind in KINDS:
        tok = tokenizers[kind, True]
        cleaned = tok.clean(text)
        assert isinstance(cleaned, str)
        assert_clean_tokens(tok.tokenize(text))


_NASTY = st.lists(st.one_of(
    st.characters(),
    st.sampled_from(list("\u200b\u200c\u200d\ufeff\u2060\u00ad\x00\x1f\x7f\x85\u2028\u2029\u00a0"
                         "\u0301\u0308\u0903\u093f\u20dd\ud800\udfff<>/&;#'’n t .-İΣ")),
    st.sampled_from(["<br />", "<p>", "</i>", "&amp;", "&#39;", "&quot;", "n't", "'s", "..."]),
)).map("".join)


@given(_NASTY, st.integers(0, 5), st.sampled_from(["head", "tail", "head+tail"]))
@settings(max_examples=300, deadline=None)
def test_control_zero_width_and_combining_text_never_crashes(text, max_tokens, truncation):
    for kind in KINDS:
        tok = _cached(kind, max_tokens, truncation)
        tokens = tok.tokenize(text)
        assert_clean_tokens(tokens)
        if max_tokens:
            assert len(tokens) <= max_tokens


_CACHE: dict = {}


def _cached(kind, max_tokens, truncation) -> Tokenizer:
    key = (kind, max_tokens, truncation)
    if key not in _CACHE:
        _CACHE[key] = make(kind=kind, max_tokens=max_tokens, truncation=truncation)
    return _CACHE[key]


@pytest.mark.parametrize("kind", KINDS)
def test_pipe_with_two_processes_equals_tokenize(kind):
    tok = make(kind=kind, max_tokens=12, truncation="head+tail")
    words = ["Good", "bad", "don't", "<br />", "3.5", "film!", "it's", "", "  ", "\u200b", "&amp;"]
    texts = [" ".join(words[(i * j) % len(words)] for j in range(i % 23)) for i in range(POOL_MIN_TEXTS + 500)]
    expected = [tok.tokenize(t) for t in texts]
    assert list(tok.pipe(iter(texts), batch_size=97, n_process=2)) == expected
    assert list(tok.pipe(texts, n_process=1)) == expected
    assert list(tok.pipe(texts[:50], n_process=2)) == expected[:50]  # small: in process


def test_pipe_stops_early_without_hanging():
    tok = make(kind="regex")
    stream = tok.pipe((f"text {i}" for i in range(10 * POOL_MIN_TEXTS)), batch_size=100, n_process=2)
    assert next(stream) == ["text", "0"]
    stream.close()


def test_pipe_rejects_a_bad_batch_size():
    with pytest.raises(ConfigError):
        make(kind="regex").pipe(["a"], batch_size=0)


def test_unknown_language_is_a_config_error():
    with pytest.raises(ConfigError, match="spaCy has no language 'zz'.*en"):
        make(kind="spacy", lang="zz")


@pytest.mark.parametrize("settings", [{"kind": "nltk"}, {"truncation": "middle"}, {"max_tokens": -1}])
def test_invalid_settings_are_config_errors(settings):
    with pytest.raises(ConfigError):
        make(**settings)


def test_to_dict_round_trips():
    tok = make(kind="regex", lower=False, max_tokens=9, truncation="tail")
    again = Tokenizer.from_dict(tok.to_dict())
    assert again.config == tok.config
    assert again.tokenize("A b C d") == tok.tokenize("A b C d")
    with pytest.raises(ConfigError, match="Unknown tokenizer settings"):
        Tokenizer.from_dict({**tok.to_dict(), "bogus": 1})


def test_pipe_works_with_spawned_workers(monkeypatch):
    """Workers rebuild the tokenizer from its settings, so `spawn` (macOS, Windows) works."""
    import multiprocessing

    import textlstm.data.tokenize as tokenize_module
    monkeypatch.setattr(tokenize_module, "_mp_context", lambda: multiprocessing.get_context("spawn"))
    tok = make(kind="regex")
    texts = [f"Text number {i}, isn't it?" for i in range(POOL_MIN_TEXTS + 10)]
    assert list(tok.pipe(texts, batch_size=500, n_process=2)) == [tok.tokenize(t) for t in texts]


def test_workers_fork_past_textlstms_idle_direction_thread_but_not_past_others(monkeypatch):
    """After a model ran its directions side by side, its idle helper thread must not turn the
    next pool into spawned workers (seconds each, and a script without a main guard re-runs)."""
    import sys
    import threading

    import textlstm.data.tokenize as tokenize_module
    from textlstm.model import directions

    if not sys.platform.startswith("linux"):
        pytest.skip("workers fork on Linux only")
    directions._executor().submit(lambda: None).result()  # the helper thread exists now
    helper = [t for t in threading.enumerate() if t.name.startswith(tokenize_module.HELPER_THREAD_PREFIX)]
    assert helper
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="someone-elses")
    other.start()
    try:  # this process's other threads (left by other tests) are left out of the picture
        main = threading.main_thread()
        monkeypatch.setattr(threading, "enumerate", lambda: [main, *helper])
        assert tokenize_module._mp_context().get_start_method() == "fork"
        monkeypatch.setattr(threading, "enumerate", lambda: [main, *helper, other])
        assert tokenize_module._mp_context().get_start_method() == "spawn"
    finally:
        stop.set()
        other.join()


def test_tokenizer_pickles_as_its_settings():
    import pickle
    tok = make(kind="spacy", lower=False, max_tokens=4)
    again = pickle.loads(pickle.dumps(tok))
    assert again.config == tok.config
    assert again.tokenize("Don't STOP me now") == tok.tokenize("Don't STOP me now")


def test_bidi_controls_are_dropped_and_long_runs_are_broken_for_both_kinds():
    for kind in ("spacy", "regex"):
        tok = Tokenizer(TokenizerConfig(kind=kind))
        assert tok.tokenize("\u202e\u2066good\u2069 film") == ["good", "film"]
        tokens = tok.tokenize("x" * 1000)
        assert len(tokens) == 10 and all(len(t) == 100 for t in tokens)


SPACY_SAMPLES = [
    "I don't like it.<br /><br />Not at ALL! :) Can't, won't; U.S. e.g. 3.5 1,000 ... -- x",
    "Mr. Smith's dog (a \"good\" boy) cost $5.99 -- see http://example.com/a?b=c or me@mail.org!",
    "She said:'no' 'em 'cause y'all ain't gonna... ;-) :-( <3 O.O (((yes))) #tag @user 10km 5pm",
    "Hyphen-ated, slash/ed & under_scored 'quoted' «guillemets» — dashes – and…ellipsis??!!",
    "I cannot go, gonna wanna Cannot CANNOT dont Dont ima lemme gotta ain't plain words only",
    "a\u00a0b\tc  d\u3000e", "x" * 250 + " tail", "", "   ", "Ünïcödé naïve café l'été",
]


@pytest.mark.parametrize("lower", [True, False])
def test_spacy_pieces_give_whole_text_spacy_tokens(lower):
    """Each space-separated piece is tokenized (and cached) on its own: the tokens equal
    spaCy's over the whole cleaned text, cold and from the cache."""
    import spacy

    from textlstm.data.tokenize import _broken_runs

    whole = spacy.blank("en").tokenizer
    tok = make(kind="spacy", lower=lower)
    for _ in range(2):  # the first pass fills the piece cache, the second reads it
        for text in SPACY_SAMPLES:
            cleaned = tok.clean(text)
            expected = [t.lower_ if lower else t.text for t in whole(_broken_runs(cleaned)) if not t.is_space]
            assert tok.tokenize(text) == expected, text


def test_spacy_piece_keeps_its_tokens_wherever_it_stands():
    """Whole-text spaCy lets a special case matched across a space block one inside a piece
    ("''" followed by "''" became "''" "'" "'"); a piece here always gets its own tokens."""
    tok = make(kind="spacy", lower=False)
    assert tok.tokenize("a pair '' '' their") == ["a", "pair", "''", "''", "their"]
    assert tok.tokenize("'' ''") == tok.tokenize("''") * 2


def test_spacy_piece_cache_is_bounded_and_refills(monkeypatch):
    import textlstm.data.tokenize as tokenize

    monkeypatch.setattr(tokenize, "PIECE_CACHE_SIZE", 5)
    tok = make(kind="spacy")
    texts = [f"w{i} shared piece, number {i}!" for i in range(20)] + ["w1 w2 w3 w4 w5 w6 w7 w8"]
    first = [tok.tokenize(t) for t in texts]
    assert first[3] == ["w3", "shared", "piece", ",", "number", "3", "!"]
    assert first[-1] == [f"w{i}" for i in range(1, 9)]  # more pieces than the cache holds
    assert 0 < len(tok._split.cache) <= 8
    assert [tok.tokenize(t) for t in texts] == first
