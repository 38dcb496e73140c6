"""``parse_texts`` reads the common body with orjson and leaves the rest to pydantic.

The quick reader must never accept a body the pydantic model refuses, nor read different
texts from one it accepts: either would make the API depend on which path a body took.
These tests hold both paths to that on hand-picked edge cases and on generated bodies.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service.asgi.errors import ServiceError
from service.http.predict import _common_texts, parse_texts
from service.http.schemas import PredictRequestBase, request_model

MAX_TEXTS, MAX_CHARS = 4, 8
MODEL = request_model(MAX_TEXTS, MAX_CHARS)


def pydantic_texts(model: type[PredictRequestBase], body: bytes) -> list[str] | None:
    try:
        return model.model_validate_json(body).all_texts()
    except ValidationError:
        return None


EDGE_CASES = [
    b'{"texts": ["a", "b"]}',
    b'{"texts": ["12345678"]}',  # at the length limit
    b'{"texts": ["123456789"]}',  # over it
    b'{"texts": ["\xf0\x9f\x98\x80\xf0\x9f\x98\x80"]}',  # astral characters count once each
    b'{"texts": ["a", "b", "c", "d"]}',
    b'{"texts": ["a", "b", "c", "d", "e"]}',
    b'{"texts": []}',
    b'{"texts": null}',
    b'{"texts": "a"}',
    b'{"texts": [1]}',
    b'{"texts": [null]}',
    b'{"texts": [["a"]]}',
    b'{"texts": ["a"], "text": null}',
    b'{"texts": ["a"], "text": "b"}',
    b'{"texts": ["a"], "extra": 1}',
    b'{"text": "a"}',
    b'{"texts": ["a"], "texts": ["b"]}',  # duplicate keys: both take the last
    b'{"texts": 5, "texts": ["b"]}',
    b'{"texts": ["a"], "texts": 5}',
    b'{"texts": ["\\ud800"]}',  # a lone surrogate
    b'{"texts": ["\\ud83d\\ude00"]}',  # a surrogate pair
    b'{"texts": ["\\u0000"]}',
    b'\xef\xbb\xbf{"texts": ["a"]}',  # a byte order mark
    b'{"texts": ["\xff"]}',  # not UTF-8
    b'  {"texts": ["a"]}  \n',
    b'{"texts": ["a"]} x',
    b'{"texts": ["a"],}',
    b'["a"]',
    b'"a"',
    b"null",
    b"",
    b"   ",
    b'{"texts": [NaN]}',
    b'{"texts": ["a", "b"]',
]


@pytest.mark.parametrize("body", EDGE_CASES)
def test_the_quick_reader_agrees_with_pydantic(body: bytes) -> None:
    quick = _common_texts(MODEL, body)
    if quick is not None:
        assert quick == pydantic_texts(MODEL, body)


@pytest.mark.parametrize("body", EDGE_CASES)
def test_parse_texts_accepts_and_refuses_what_pydantic_does(body: bytes) -> None:
    expected = pydantic_texts(MODEL, body)
    try:
        got = parse_texts(MODEL, body)
    except ServiceError as exc:
        assert expected is None
        assert exc.status in (400, 422)
    else:
        assert got == expected


def test_the_quick_reader_takes_the_common_body() -> None:
    """It must actually take the hot path's body, or it is dead code."""
    assert _common_texts(MODEL, b'{"texts": ["great", "lost bag"]}') == ["great", "lost bag"]
    assert _common_texts(MODEL, b'{"text": "a"}') is None  # pydantic's job


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from(["texts", "text", "x"]), inner, max_size=3),
    max_leaves=12,
)
texts_lists = st.lists(st.text(max_size=MAX_CHARS + 2), max_size=MAX_TEXTS + 2)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"texts": texts_lists}), st.fixed_dictionaries({"texts": texts_lists}, optional={"text": json_values})))
def test_generated_bodies_read_the_same(value: object) -> None:
    body = json.dumps(value).encode()
    quick = _common_texts(MODEL, body)
    if quick is not None:
        assert quick == pydantic_texts(MODEL, body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_read_the_same(body: bytes) -> None:
    quick = _common_texts(MODEL, body)
    if quick is not None:
        assert quick == pydantic_texts(MODEL, body)
