"""The tokenizer's fast pattern gives exactly the tokens of its plain form.

``service/bundle/tokenizer/textserve.py`` writes its token pattern for the regex engine's speed (whitespace
skipped inside a match, lookbehinds after a cheap first-character test, ``_`` matched and
dropped). The shipped model was trained with the plain form below, so any difference in
tokens would be a training/serving skew: these tests compare both on the whole training
corpus, on the benchmark's tweets and on generated text aimed at the pattern's edges.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.corpus import load_texts
from service.bundle.format import load_bundle
from service.bundle.tokenizer.textserve import NUM_TOKEN, OOV_ID, URL_TOKEN, Tokenizer, _is_symbol_token, tokenize
from tests.conftest import SHIPPED_MODEL

# The plain form: the patterns and loop the shipped bundle's model was trained with.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_URL_START = re.compile(r"https?://")
_PLAIN = re.compile(
    r"(?P<url>https?://\S*|(?<![^\W_])www\.\S*)"
    r"|(?P<mention>@\w+)"
    r"|(?P<num>(?<![\w@])\d+(?:[.,]\d+)*(?!\w))"
    r"|(?P<word>[^\W_]+(?:'[^\W_]+)*)"
    r"|(?P<other>[^\w\s])"
)


def plain_tokenize(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_APOSTROPHES)
    if "://" in text:
        text = _URL_START.sub(r" \g<0>", text)
    tokens = []
    for url, mention, num, word, other in _PLAIN.findall(text):
        if word:
            tokens.append(word)
        elif mention:
            tokens.append(mention)
        elif url:
            tokens.append(URL_TOKEN)
        elif num:
            tokens.append(NUM_TOKEN)
        elif _is_symbol_token(other):
            tokens.append(other)
    return tokens


def test_same_tokens_on_the_whole_training_corpus() -> None:
    data = pytest.importorskip("model_export.data", reason="needs the export extra (make test installs it)")
    corpus = data.read_csv(data.default_corpus_path(), "text", "sentiment")
    assert len(corpus.texts) > 38_000
    differ = [t for t in corpus.texts if tokenize(t) != plain_tokenize(t)]
    assert differ == []


def test_same_tokens_on_the_benchmark_tweets() -> None:
    texts = load_texts()
    assert [tokenize(t) for t in texts] == [plain_tokenize(t) for t in texts]


# Characters each alternative of the pattern turns on: spaces of several kinds (also at the
# ends), "_" (a word character no token keeps), URL and mention starts, digit separators,
# apostrophes, an emoji, a non-ASCII letter, a digit that is not ASCII, the replacement char,
# and the rest of ASCII's punctuation (skipped between tokens by the fast pattern) with a
# non-ASCII dash and ellipsis (matched and dropped one at a time).
EDGES = (
    " \t\n\u00a0\u2003\x1c_@#!?.,:/'`\u2019whtps0123456789a\u00e9\u0663\U0001f600\u2764\ufffd"
    '"$%&()*+-;<=>[\\]^{|}~\u2013\u2026'
)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=EDGES, max_size=40))
def test_same_tokens_on_edge_text(text: str) -> None:
    assert tokenize(text) == plain_tokenize(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_same_tokens_on_any_text(text: str) -> None:
    assert tokenize(text) == plain_tokenize(text)


@pytest.mark.parametrize(
    "text",
    [
        " " * 5000,
        "x" + " " * 5000,
        " " * 5000 + "_",
        "_ " * 2500,
        "www." * 1250,
        "1," * 2500,
        "@" * 5000,
        "." * 5000,
        "x" + ".,; " * 1250,
        "#_" * 2500,
        "@." * 2500,
    ],
)
def test_long_runs_give_the_same_tokens(text: str) -> None:
    # Inputs at the service's default character limit that a failing whitespace skip would
    # scan quadratically (seconds per text); they must stay ordinary inputs.
    assert tokenize(text) == plain_tokenize(text)


# Tokenizer.ids_and_truncated repeats tokenize's comprehension with the id lookup inside it.
def reference_ids(tokenizer: Tokenizer, text: str) -> tuple[list[int], bool]:
    tokens = tokenize(text)
    kept = tokens[: tokenizer.max_length]
    return [tokenizer._index.get(t, OOV_ID) for t in kept], len(tokens) > len(kept)


@pytest.fixture(scope="module")
def shipped_tokenizer() -> Tokenizer:
    return load_bundle(SHIPPED_MODEL).tokenizer


def test_ids_are_the_vocabulary_ids_of_the_tokens(shipped_tokenizer: Tokenizer) -> None:
    texts = [*load_texts(), "word " * 100, "<url> <num> <pad> <oov>", "", "🙂 !?"]
    assert any(reference_ids(shipped_tokenizer, t)[1] for t in texts)  # truncation is covered
    assert [shipped_tokenizer.ids_and_truncated(t) for t in texts] == [
        reference_ids(shipped_tokenizer, t) for t in texts
    ]


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=EDGES, max_size=120))
def test_ids_are_the_vocabulary_ids_of_the_tokens_on_edge_text(shipped_tokenizer: Tokenizer, text: str) -> None:
    assert shipped_tokenizer.ids_and_truncated(text) == reference_ids(shipped_tokenizer, text)
