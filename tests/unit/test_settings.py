import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_serve_the_shipped_model_on_loopback() -> None:
    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.model_path == Path("models/sentiment")
    assert s.api_key is None


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTSERVE_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("TEXTSERVE_MAX_BATCH_DELAY_MS", "0.5")
    monkeypatch.setenv("TEXTSERVE_API_KEY", "s3cret-value")
    monkeypatch.setenv("TEXTSERVE_ACCESS_LOG", "false")
    s = Settings()
    assert s.max_batch_size == 16 and s.max_batch_delay_ms == 0.5
    assert s.api_key is not None and s.api_key.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(s)
    assert s.access_log is False


def test_plain_host_and_port_are_read_for_container_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9000")
    assert (Settings().host, Settings().port) == ("0.0.0.0", 9000)
    monkeypatch.setenv("TEXTSERVE_PORT", "9100")
    assert Settings().port == 9100


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("TEXTSERVE_PORT", "70000"),
        ("TEXTSERVE_MAX_BATCH_SIZE", "0"),
        ("TEXTSERVE_MAX_BATCH_DELAY_MS", "-1"),
        ("TEXTSERVE_REQUEST_TIMEOUT_S", "0"),
        ("TEXTSERVE_GRAPH_OPTIMIZATION", "turbo"),
        ("TEXTSERVE_LOG_LEVEL", "loud"),
        ("TEXTSERVE_MAX_TEXTS_PER_REQUEST", "5000"),  # more than the queue holds
        ("TEXTSERVE_API_KEY", "   "),
        ("TEXTSERVE_MAX_BODY_BYTES", "10"),
    ],
)
def test_nonsense_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError):
        Settings()


def test_the_readme_settings_table_is_the_one_the_docstrings_give() -> None:
    """Regenerate it with ``python -m service.settings`` when a setting changes."""
    readme = README.read_text()
    start, end = readme.index("<!-- settings:"), readme.index("<!-- /settings -->")
    block = readme[readme.index("\n", start) + 1 : end].strip()
    assert block == markdown_table()
    for name in Settings.model_fields:
        assert f"`TEXTSERVE_{name.upper()}`" in block, name


def test_workers_are_pinned_only_when_each_can_have_a_cpu_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.process.workers import next_cpu, pinned_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5})
    assert pinned_cpus(Settings(workers=2)) == [2, 5]
    assert pinned_cpus(Settings(workers=2, worker_affinity="off")) is None
    assert pinned_cpus(Settings(workers=3)) is None  # more workers than CPUs: the kernel balances
    assert pinned_cpus(Settings(workers=1)) is None  # one worker's two threads use both
    assert next_cpu([2, 5], []) == 2
    assert next_cpu([2, 5], [2]) == 5
    assert next_cpu([2, 5], [5]) == 2  # a replacement takes the CPU its predecessor left
