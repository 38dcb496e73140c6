"""Request and response bodies. Limits come from the settings, so the OpenAPI document
states the real ones (``request_model`` builds the request class per app)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, create_model, model_validator

from service.asgi.responses import EXAMPLE_TEXTS


def _exactly_one_form(schema: dict[str, Any]) -> None:
    """The schema says what the validator enforces: exactly one of 'texts' (an array) and
    'text' (a string) is given; the other may be absent or null. Without this the document
    would call ``{}`` or a body with both forms valid, and clients (and fuzzers) trusting it
    would get a 422 for a "valid" request."""
    schema["oneOf"] = [
        {"required": ["texts"], "properties": {"texts": {"type": "array"}}},
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
    ]
    schema["examples"] = [{"texts": EXAMPLE_TEXTS}, {"text": EXAMPLE_TEXTS[0]}]


class PredictRequestBase(BaseModel):
    """Give ``texts`` (a list) or ``text`` (one string), not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_form)
    # The limits the fields enforce, for the reader of the common body (``checks.parse_texts``).
    max_texts: ClassVar[int] = 2**31
    max_chars: ClassVar[int] = 2**31

    texts: list[str] | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequestBase:
        if (self.texts is None) == (self.text is None):
            raise ValueError("give exactly one of 'texts' (a list of strings) or 'text' (a string)")
        return self

    def all_texts(self) -> list[str]:
        return self.texts if self.texts is not None else [self.text or ""]


def request_model(max_texts: int, max_chars: int) -> type[PredictRequestBase]:
    """``PredictRequest`` with this app's limits in its fields (and so in /docs)."""
    text_type = Annotated[StrictStr, Field(max_length=max_chars)]
    model: type[PredictRequestBase] = create_model(
        "PredictRequest",
        __base__=PredictRequestBase,
        texts=(
            list[text_type] | None,
            Field(None, min_length=1, max_length=max_texts, description=f"1 to {max_texts} texts"),
        ),
        text=(text_type | None, Field(None, description="a single text")),
    )
    model.max_texts = max_texts
    model.max_chars = max_chars
    return model


class ModelRef(BaseModel):
    name: str
    version: int


class Prediction(BaseModel):
    label: str = Field(description="the most probable label")
    scores: dict[str, float] = Field(description="probability of every label; they sum to 1")
    truncated: bool = Field(
        description="the text had more tokens than the model's max_length; only the first were used"
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "sentiment", "version": 1},
                    "predictions": [
                        {
                            "label": "positive",
                            "scores": {"negative": 0.02, "neutral": 0.05, "positive": 0.93},
                            "truncated": False,
                        }
                    ],
                }
            ]
        }
    )

    model: ModelRef
    predictions: list[Prediction] = Field(description="one per input text, in input order")


class Health(BaseModel):
    status: str
    model: ModelRef | None = None


class ModelInfo(BaseModel):
    """The public part of the bundle manifest."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: int
    labels: list[str]
    max_length: int
    metrics: dict[str, Any]
