"""The local Prefect server `sora-extend run` keeps in the background when no Prefect API is configured: the
first run starts it, the next run finds it, both runs stay in its history (what its UI shows), and
`sora-extend prefect stop` stops it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.test_cli import cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _task_names(api: str) -> list[str]:
    """The task runs the server has recorded (from the runs' events, which it records a moment later)."""
    deadline = time.monotonic() + 60
    while True:
        names = [task["name"] for task in httpx.post(f"{api}/task_runs/filter", json={}).json()]
        if sum(name.startswith("merge-segments-") for name in names) == 2 or time.monotonic() > deadline:
            return sorted(names)
        time.sleep(0.5)


def test_the_first_run_starts_the_server_the_next_run_uses_it_and_stop_stops_it(tmp_path: Path) -> None:
    port, home = _free_port(), tmp_path / "prefect"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "SORA_EXTEND_PREFECT_SERVER": "background",
        "SORA_EXTEND_PREFECT_PORT": str(port),
        "SORA_EXTEND_STORAGE": f"file://{tmp_path / 'out'}",
        "SORA_EXTEND_WORK_DIR": str(tmp_path / "work"),
    }
    env.pop("PREFECT_API_URL", None)
    api = f"http://127.0.0.1:{port}/api"
    options = ["--segments", "1", "--seconds", "1", "--resolution", "360p"]
    try:
        first = cli("run", "A kite over the Han river", *options, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert first.stdout.startswith(
            f"prefect: started a local Prefect server in the background (UI http://127.0.0.1:{port}); it stays for "
            "the next runs, `sora-extend prefect stop` stops it\n"
        )
        pid = int((home / "server.pid").read_text())
        second = cli("run", "A kite over the Seine", *options, env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "prefect:" not in second.stdout and first.stderr == second.stderr == ""
        assert int((home / "server.pid").read_text()) == pid  # the same server

        runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_ASC"}).json()
        assert [(run["name"], run["state_type"]) for run in runs] == [
            ("A-kite-over-the-Han-river · 1x1s", "COMPLETED"),
            ("A-kite-over-the-Seine · 1x1s", "COMPLETED"),
        ]
        tasks = _task_names(api)  # each run's steps, as its UI page lists them
        assert tasks.count("render-segment-01") == 2 and sum(name.startswith("merge-segments-") for name in tasks) == 2
        # The UI calls this server's API whatever the port (not 127.0.0.1:4200, Prefect's default).
        assert httpx.get(f"http://127.0.0.1:{port}/ui-settings").json()["api_url"] == api

        status = cli("prefect", "status", env=env)
        assert status.returncode == 0
        assert status.stdout == (
            f"running: UI http://127.0.0.1:{port}, API {api} (pid {pid}, output in {home / 'sora-extend-server.log'})\n"
        )
    finally:
        stop = cli("prefect", "stop", env=env)
    assert stop.returncode == 0
    assert stop.stdout == f"stopped the Prefect server on http://127.0.0.1:{port} (pid {pid})\n"
    assert not (home / "server.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api}/health")
    assert cli("prefect", "status", env=env).returncode == 1
