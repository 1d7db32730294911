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
        # `sora-extend run` in a test leaves no Prefect server behind (test_cli.py starts and stops one itself).
        "SORA_EXTEND_PREFECT_SERVER": "embedded",
    }
)
for _name in (
    "FAL_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "PREFECT_API_URL",
    "AWS_PROFILE",
    "SORA_EXTEND_PUBLIC_URL",
):
    os.environ.pop(_name, None)

import pytest  # noqa: E402

from sora_extend.settings import reload_settings  # noqa: E402

reload_settings()
pytest_plugins = ["tests.browser"]  # the `browser` fixture, for every test that looks at a page


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 endpoint on loopback (moto's server mode): the endpoint URL."""
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per S3 request otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


S3_SECRET = "moto-secret-3f1d0c5b9a7e4b21"


@pytest.fixture
def s3_storage(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A fresh bucket on the loopback S3 endpoint, configured as the default storage."""
    import uuid

    import boto3

    bucket = f"sora-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SORA_EXTEND_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("SORA_EXTEND_STORAGE", f"s3://{bucket}/jobs")
    monkeypatch.setenv("SORA_EXTEND_WORK_DIR", str(tmp_path / "work"))
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    reload_settings()
    yield f"s3://{bucket}/jobs"
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def api_url(prefect_harness: None) -> str:
    """The temporary Prefect server's API URL, for flows started in subprocesses."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def point_at_fal(monkeypatch: pytest.MonkeyPatch, fal: object) -> None:
    """Settings that point this project, the real fal_client and the test models at a fal emulator
    (undone with `monkeypatch`)."""
    import fal_client.client as wire

    from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE

    for name in ("QUEUE_URL_FORMAT", "REST_URL", "CDN_URL"):  # restored with the monkeypatch
        monkeypatch.setattr(wire, name, getattr(wire, name))
    monkeypatch.setenv("SORA_EXTEND_CATALOGUE_FILE", str(TEST_MODEL_CATALOGUE))
    for name, value in fal.environment().items():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SORA_EXTEND_POLL_INTERVAL_S", "0.05")
    monkeypatch.setenv("SORA_EXTEND_RETRY_DELAY_S", "0")
    monkeypatch.setenv("SORA_EXTEND_RECONCILE_GRACE_S", "1")  # a lost submit is looked for for 1 s
    reload_settings()


@pytest.fixture
def fal_emulator(monkeypatch: pytest.MonkeyPatch, storage_url: str) -> Iterator[object]:
    """The fal emulator on loopback, with settings pointing the real fal_client at it."""
    from tests.emulators import FalEmulator
    from tests.emulators.fal_schemas import with_test_model

    with FalEmulator(schemas=with_test_model(), queue_seconds=0.05, progress_seconds=0.2) as fal:
        point_at_fal(monkeypatch, fal)
        yield fal
        assert fal.server_errors == []
    reload_settings()


@pytest.fixture
def openai_emulator(monkeypatch: pytest.MonkeyPatch, storage_url: str) -> Iterator[object]:
    """The OpenAI-compatible emulator (videos + planner) on loopback, with settings pointing at it."""
    from tests.emulators import OpenAIEmulator

    with OpenAIEmulator(fps=12, progress_seconds=0.2) as api:
        monkeypatch.setenv("OPENAI_API_KEY", api.key)
        monkeypatch.setenv("SORA_EXTEND_OPENAI_BASE_URL", api.base_url)
        monkeypatch.setenv("SORA_EXTEND_POLL_INTERVAL_S", "0.05")
        monkeypatch.setenv("SORA_EXTEND_RETRY_DELAY_S", "0")
        reload_settings()
        yield api
        assert api.server_errors == []
    reload_settings()
