"""Service settings, read from ``TEXTSERVE_*`` environment variables and checked at start.

Every field's docstring is its documentation: ``python -m service.settings`` prints them as
the README's settings table (``--write README.md`` puts it there), and a test keeps that
table current.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.bundle.options import OptimizationLevel, Precision


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TEXTSERVE_", extra="ignore", frozen=True, use_attribute_docstrings=True,
        populate_by_name=True,
    )

    model_path: Path = Path("models/sentiment")
    """A bundle directory, or a model directory whose highest numeric version is served
    (used when ``MODEL_REPOSITORY`` is unset)."""

    model_repository: Path | None = None
    """A directory of models, ``<repository>/<name>/<version>/``, each version a bundle
    (docs/models.md). When set, ``MODEL_PATH`` is not used."""

    model_control_mode: Literal["none", "poll", "explicit"] = "none"
    """none: load at start, never change. poll: rescan every ``REPOSITORY_POLL_S`` (new
    versions load, removed ones unload). explicit: load at start (all models, or
    ``LOAD_MODELS``), then change only through ``/v2/repository/models/<name>/load`` and
    ``.../unload``."""

    repository_poll_s: float = Field(10.0, gt=0, le=86400)
    """Seconds between two looks at the repository in poll mode."""

    default_model: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    """The model ``/predict`` and ``/model`` answer for; required when the repository holds
    more than one model."""

    load_models: Annotated[tuple[str, ...], NoDecode] = ()
    """Explicit mode: the models to load at start, comma-separated (default: all)."""

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("TEXTSERVE_HOST", "HOST"))
    """Interface to bind (``HOST`` is also read, for container platforms)."""

    port: int = Field(8000, ge=1, le=65535, validation_alias=AliasChoices("TEXTSERVE_PORT", "PORT"))
    """TCP port (``PORT`` is also read). On Kubernetes a Service named ``textserve`` would
    inject ``TEXTSERVE_PORT=tcp://...``; the manifests set ``enableServiceLinks: false``."""

    grpc_port: int = Field(8001, ge=0, le=65535)
    """TCP port of the Open Inference Protocol over gRPC and of ``grpc.health.v1`` (8001, as
    Triton), on the same interface as HTTP; 0 turns gRPC off."""

    grpc_max_message_bytes: int | None = Field(None, ge=1024)
    """Largest gRPC request message accepted (RESOURCE_EXHAUSTED beyond); unset: the same
    as ``MAX_BODY_BYTES``."""

    max_batch_size: int = Field(256, ge=1, le=4096)
    """Most texts in one onnxruntime run; larger requests are split across runs."""

    max_batch_delay_ms: float = Field(2.0, ge=0, le=1000)
    """Under load, how long a batch may be held, after the model is free, for the clients
    the last run answered to send again. A request reaching an idle server never waits."""

    grpc_max_batch_delay_ms: float = Field(16.0, ge=0, le=1000)
    """``MAX_BATCH_DELAY_MS`` for a batch holding gRPC calls: grpcio's server hands a call
    to the service over several event-loop turns, so its clients take longer to send again.
    The hold still ends as soon as the last run's clients are back."""

    grpc_sched_batch: bool = True
    """Run grpcio's threads under Linux's ``SCHED_BATCH``, so that their wake-ups (several
    per call) stop preempting the event loop and the model: fewer context switches and, at moderate load, more
    texts/s and a lower p99. ``false`` leaves them to the kernel's default policy."""

    max_queue_size: int = Field(2048, ge=1)
    """Most texts waiting for the model; beyond it requests get 503 with Retry-After."""

    request_timeout_s: float = Field(10.0, gt=0, le=3600)
    """A request still unanswered after this long gets 504; one whose body has not all
    arrived within it gets 408 (so a trickled or never-finished body cannot hold a
    connection forever)."""

    max_texts_per_request: int = Field(256, ge=1)
    """Most texts in one request (422 beyond); at most ``MAX_QUEUE_SIZE``."""

    max_text_chars: int = Field(5000, ge=1)
    """Most characters in one text (422 beyond). Texts within it but longer than the
    model's max_length tokens are truncated, and the prediction says so."""

    max_body_bytes: int = Field(1_048_576, ge=1024)
    """Largest request body accepted (413 beyond)."""

    intra_op_threads: int = Field(1, ge=1, le=256)
    """onnxruntime threads inside one operator."""

    inter_op_threads: int = Field(1, ge=1, le=256)
    """onnxruntime threads across operators."""

    graph_optimization: OptimizationLevel = "all"
    """onnxruntime graph optimization level: disable, basic, extended or all."""

    precision: Precision = "fp32"
    """Which graph of the bundle to serve: fp32 (model.onnx, checked against Keras) or the
    int8 variant (dynamic quantization, faster; its test metrics are in the manifest)."""

    workers: int = Field(1, ge=1, le=64)
    """Server processes on the port, each with its own copy of the model, event loop and
    inference thread: one core's worth each. Above 1, gunicorn's arbiter starts them, replaces
    any that dies and passes SIGTERM on; /metrics is their sum. On Kubernetes, keep 1 and
    scale with replicas."""

    worker_affinity: Literal["auto", "off"] = "auto"
    """With ``WORKERS`` > 1, auto pins each worker (its event loop, inference thread and gRPC
    threads) to a CPU of its own when there are exactly as many workers as CPUs the service
    may run on (``taskset``, a container's cpuset); off, or any other count, leaves placement
    to the kernel. Pinned: ~5% more texts/s with 2 workers on 2 cores (docs/performance.md)."""

    shutdown_grace_s: float = Field(30.0, ge=0, le=3600)
    """After SIGTERM, how long accepted requests have to finish before the process exits."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the JSON logs on stderr."""

    access_log: bool = True
    """One JSON line per request at log level info or debug: request id, method, route,
    status, latency, number of texts (never the texts). Off: ~5% more texts/s at 64
    clients x 1 text on one core (docs/performance.md)."""

    tracing: bool = False
    """OpenTelemetry traces of requests, queue waits, batches and answers, exported over OTLP
    as the standard ``OTEL_*`` variables say (needs the ``[tracing]`` extra; docs/tracing.md).
    Off, nothing of OpenTelemetry is loaded."""

    api_key: SecretStr | None = None
    """If set, inference (/predict, V2 infer over HTTP and gRPC) and the repository's index,
    load and unload need ``Authorization: Bearer <key>`` (gRPC: the ``authorization``
    metadata); health, metadata and metrics stay open."""

    @property
    def grpc_message_limit(self) -> int:
        return self.grpc_max_message_bytes if self.grpc_max_message_bytes is not None else self.max_body_bytes

    @field_validator("load_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.max_texts_per_request > self.max_queue_size:
            raise ValueError(
                "max_texts_per_request must not exceed max_queue_size, or a full-size"
                " request could never be queued"
            )
        if self.grpc_port == self.port:
            raise ValueError("grpc_port must differ from port (or be 0 to turn gRPC off)")
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("api_key is set but empty")
        bad = [n for n in self.load_models if not re.match(r"^[A-Za-z0-9_.-]+$", n) or n in (".", "..")]
        if bad:
            raise ValueError(f"load_models holds names that are not model names: {bad}")
        return self


def _shown(value: object) -> str:
    if value is None or value == ():
        return "unset"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`"


def markdown_table() -> str:
    """The settings as the README shows them: variable, default, the field's docstring."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        variable = f"`TEXTSERVE_{name.upper()}`"
        if isinstance(field.validation_alias, AliasChoices):
            plain = [a for a in field.validation_alias.choices if isinstance(a, str) and "_" not in a]
            variable += "".join(f" (or `{a}`)" for a in plain)
        meaning = " ".join((field.description or "").split()).replace("``", "`")
        rows.append(f"| {variable} | {_shown(field.default)} | {meaning} |")
    return "\n".join(rows)


def write_table(markdown: Path) -> None:
    """Replace the table between the settings markers of a markdown file."""
    text = markdown.read_text(encoding="utf-8")
    start = text.index("\n", text.index("<!-- settings:")) + 1
    end = text.index("<!-- /settings -->")
    markdown.write_text(text[:start] + markdown_table() + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:  # python -m service.settings --write README.md
        write_table(Path(sys.argv[2]))
    else:
        print(markdown_table())
