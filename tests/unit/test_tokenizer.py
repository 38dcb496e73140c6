import numpy as np
import pytest

from service.bundle.tokenizer import OOV_ID, PAD_ID, Tokenizer, TokenizerConfig, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world", "!"]),
        ("I don't like it", ["i", "don't", "like", "it"]),
        ("I don\u2019t", ["i", "don't"]),
        ("see http://t.co/AbC123 and www.example.com/x now", ["see", "<url>", "and", "<url>", "now"]),
        ("@United thanks @a_b!", ["@united", "thanks", "@a_b", "!"]),
        ("from http://t.co/a...http://t.co/b", ["from", "<url>", "<url>"]),
        ("#mktghttp://onforb.es/x", ["mktg", "<url>"]),
        ("Ewww... nawww. WWW.site.org", ["ewww", "nawww", "<url>"]),
        ("@Delta123 @42 @a_1", ["@delta123", "@42", "@a_1"]),
        ("#Fail #deflategate", ["fail", "deflategate"]),
        ("flight 1791 costs 1,000.50 at 10:30", ["flight", "<num>", "costs", "<num>", "at", "<num>", "<num>"]),
        ("gate C14 on 4g", ["gate", "c14", "on", "4g"]),
        ("great \U0001f600\U0001f600 \u2764\ufe0f", ["great", "\U0001f600", "\U0001f600", "\u2764"]),
        ("what?!", ["what", "?", "!"]),
        ("Caf\u00e9 \u00c9COLE \uff21\uff22", ["caf\u00e9", "\u00e9cole", "ab"]),
        ("cars_\ufffd_.no", ["cars", "no"]),
        ("a\x00b\x01url\x01c", ["a", "b", "url", "c"]),
        ("$%&*()[]{}", []),
        ("", []),
        ("   \t\n ", []),
    ],
)
def test_cleaning_rules(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def make_tokenizer(max_length: int = 5, vocab_size: int = 10, min_count: int = 1) -> Tokenizer:
    texts = ["good good good movie", "bad bad movie", "good day", "rare"]
    return Tokenizer.fit(texts, TokenizerConfig(max_length, vocab_size, min_count))


def test_vocabulary_is_ordered_by_frequency_with_pad_and_oov_first() -> None:
    tok = make_tokenizer()
    assert tok.vocabulary[:2] == ["<pad>", "<oov>"]
    assert tok.vocabulary[2:] == ["good", "bad", "movie", "day", "rare"]


def test_vocabulary_cap_and_min_count() -> None:
    assert make_tokenizer(vocab_size=4).vocabulary == ["<pad>", "<oov>", "good", "bad"]
    assert make_tokenizer(min_count=2).vocabulary == ["<pad>", "<oov>", "good", "bad", "movie"]


def test_unknown_words_get_the_oov_id() -> None:
    tok = make_tokenizer()
    assert tok.ids("good unseen movie") == [2, OOV_ID, 4]


def test_padding_and_truncation() -> None:
    tok = make_tokenizer(max_length=3)
    ids = tok.encode(["good", "good bad movie day rare", ""])
    assert ids.dtype == np.int32
    assert ids.tolist() == [[2, PAD_ID, PAD_ID], [2, 3, 4], [PAD_ID, PAD_ID, PAD_ID]]


def test_shorter_padding_keeps_the_same_prefix() -> None:
    tok = make_tokenizer(max_length=5)
    texts = ["good movie", "bad"]
    full = tok.encode(texts)
    short = tok.encode(texts, length=2)
    assert short.tolist() == full[:, :2].tolist()
    with pytest.raises(ValueError):
        tok.encode(texts, length=6)
    with pytest.raises(ValueError):
        tok.encode(texts, length=0)


def test_very_long_text_is_truncated_to_max_length() -> None:
    tok = make_tokenizer(max_length=4)
    ids = tok.encode(["good " * 200_000])
    assert ids.shape == (1, 4)
    assert ids.tolist() == [[2, 2, 2, 2]]


def test_same_text_always_gives_the_same_ids() -> None:
    tok = make_tokenizer()
    text = "Good movie \U0001f600 http://x.y @z 42"
    first = tok.encode([text])
    for _ in range(3):
        assert np.array_equal(tok.encode([text]), first)
    again = Tokenizer.from_dict(tok.to_dict())
    assert np.array_equal(again.encode([text]), first)


def test_save_and_load_round_trip(tmp_path) -> None:
    tok = make_tokenizer()
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.vocabulary == tok.vocabulary
    assert loaded.config == tok.config


@pytest.mark.parametrize(
    "change",
    [
        {"format_version": 99},
        {"pad_id": 5},
        {"vocabulary": ["a", "b"]},
        {"vocabulary": ["<pad>", "<oov>", "x", "x"]},
        {"max_length": 0},
    ],
)
def test_bad_tokenizer_files_are_refused(change: dict) -> None:
    data = make_tokenizer().to_dict() | change
    with pytest.raises(ValueError):
        Tokenizer.from_dict(data)
