"""Test isolation: Prefect home, result storage, job storage, caches and locks all live in one temp
dir per session, and no real API key from the developer's environment can reach a test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="sora-extend-tests-"))
# Before anything imports prefect: its settings are read from the environment.
os.environ.update(
    {
        "PREFECT_HOME": str(_SESSION_DIR / "prefect-home"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_SESSION_DIR / "prefect-results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "SORA_EXTEND_STORAGE": f"file://{_SESSION_DIR / 'outputs'}",
        "SORA_EXTEND_WORK_DIR": str(_SESSION_DIR / "work"),
        "SORA_EXTEND_LOCK_DIR": str(_SESSION_DIR / "locks"),
    }
)
for _name in ("FAL_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "PREFECT_API_URL", "AWS_PROFILE"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402

from sora_extend.settings import reload_settings  # noqa: E402

reload_settings()


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture
def storage_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh local job storage for one test (also the settings default while it runs)."""
    url = f"file://{tmp_path / 'storage'}"
    monkeypatch.setenv("SORA_EXTEND_STORAGE", url)
    monkeypatch.setenv("SORA_EXTEND_WORK_DIR", str(tmp_path / "work"))
    reload_settings()
    yield url
    monkeypatch.undo()
    reload_settings()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session; slow to start, so shared."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
