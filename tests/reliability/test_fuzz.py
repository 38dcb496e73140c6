"""Contract fuzzing: schemathesis reads the app's own /openapi.json and drives the real app
(shipped model, lifespan and batcher included) with schema-valid and schema-invalid requests.

Every response must be documented for its operation (status, content type, body schema),
4xx included; a schema-valid request must be accepted and a schema-invalid one refused
with a 4xx; nothing may be a 5xx. Generation is derandomized (the same cases every run, so
CI is stable) and bounded by ``max_examples``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from service.app import create_app
from service.settings import Settings
from tests.conftest import SHIPPED_MODEL
from tests.reliability.helpers import LEAKS

pytestmark = pytest.mark.reliability

# Nothing is loaded here: the first request starts the lifespan (schemathesis' ASGI client
# runs it, once per app); the module fixture stops it.
APP = create_app(Settings(model_path=SHIPPED_MODEL))
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
TRIED: Counter[str] = Counter()


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ERRORS = _ErrorLog()


@pytest.fixture(scope="module", autouse=True)
def _app_lifecycle(request: pytest.FixtureRequest) -> Iterator[None]:
    logging.getLogger("textserve").addHandler(ERRORS)
    yield
    logging.getLogger("textserve").removeHandler(ERRORS)
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(max_examples=250, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_response_matches_the_contract(case: Any) -> None:
    TRIED[f"{case.method} {case.path} {case.meta.generation.mode.value}"] += 1
    response = case.call_and_validate()
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        for leak in LEAKS:
            assert leak not in response.text, (leak, response.text)
    assert not ERRORS.records, [r.getMessage() for r in ERRORS.records]


def test_fuzzing_tried_a_few_hundred_cases(figures: dict[str, Any]) -> None:
    """Runs after the parametrized test above (file order): the volume was real."""
    total = sum(TRIED.values())
    figures["fuzz_cases_total"] = total
    figures["fuzz_cases_by_operation_and_mode"] = dict(sorted(TRIED.items()))
    if not TRIED:
        pytest.skip("the fuzz test did not run in this session (deselected)")
    predict = sum(n for key, n in TRIED.items() if key.startswith("POST /predict"))
    assert predict >= 100
    assert TRIED["POST /predict negative"] >= 20
    assert total >= 200


# -- cases the fuzzer found, kept as plain regression tests --------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # Schema-valid before the fix (both properties optional): the server said 422.
        ({"text": "0" * 20, "texts": ["a", "b"]}, 422),
        ({}, 422),
        ({"texts": None, "text": None}, 422),
        # The null half of a body with one real form is accepted, and the schema agrees.
        ({"texts": ["a"], "text": None}, 200),
        ({"texts": None, "text": "a"}, 200),
    ],
    ids=["both-forms", "empty-object", "both-null", "texts-and-null-text", "null-texts-and-text"],
)
def test_the_documented_request_schema_matches_what_the_server_accepts(
    body: dict[str, Any], status: int
) -> None:
    import jsonschema_rs

    document = APP.openapi()
    request_body = document["paths"]["/predict"]["post"]["requestBody"]
    body_schema = request_body["content"]["application/json"]["schema"]
    from fastapi.testclient import TestClient

    with TestClient(create_app(Settings(model_path=SHIPPED_MODEL))) as client:
        response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    assert jsonschema_rs.validator_for(body_schema).is_valid(body) == (status == 200)
