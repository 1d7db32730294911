"""The local Prefect server `sora-extend run` keeps in the background when no Prefect API is configured.

Prefect's embedded server starts with every run and stops at its end: seconds before every run's first
step, and the run's history is gone with it from the UI. So when neither PREFECT_API_URL nor a Prefect
profile names a server, the first run starts `prefect server start` on 127.0.0.1:4200 in a session of its
own (output in PREFECT_HOME/sora-extend-server.log) and every later run finds it answering: a run starts at
once, and every local run stays in the UI at http://127.0.0.1:4200. A Prefect server already answering on
that port (`make ui`, `prefect server start`) is used as it is.

The server's pid is written where Prefect's own `prefect server start --background` writes it
(PREFECT_HOME/server.pid), so `sora-extend prefect stop` and Prefect's `prefect server stop` both stop it.
`SORA_EXTEND_PREFECT_SERVER=embedded` keeps the old way (a temporary server per run, nothing left behind).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from sora_extend.locks import key_lock
from sora_extend.settings import Settings

HOST = "127.0.0.1"
PID_FILE = "server.pid"  # Prefect's own name for a background server's pid
LOG_FILE = "sora-extend-server.log"
START_TIMEOUT_S = 180.0  # a first start migrates a new database: 15 s on 2 cores, more on a busy machine
STOP_TIMEOUT_S = 15.0


class ServerUnavailable(Exception):
    """The local server could not be started; `reason` says why in words for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LocalServer:
    """A Prefect server on this machine's loopback, with its database and pid file in `home`."""

    port: int
    home: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def pid_file(self) -> Path:
        return self.home / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.home / LOG_FILE

    def answers(self) -> bool:
        """Whether a Prefect server answers on the port (its health check says true)."""
        try:
            response = httpx.get(f"{self.api_url}/health", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.text.strip() == "true"

    def pid(self) -> int | None:
        """The running server process named by the pid file, if there is one."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and _is_prefect(pid) else None

    def start(self, lock_dir: Path, timeout_s: float = START_TIMEOUT_S) -> bool:
        """Make sure the server answers: start it unless it already does (True when this call started it).
        Runs started at once on a fresh machine start one server: the first starts it, the others wait."""
        with key_lock(lock_dir, f"prefect-server-{self.port}", timeout_s + 30):
            if self.answers():
                return False
            if not _port_free(self.port):
                raise ServerUnavailable(
                    f"port {self.port} is taken by a program that is not a Prefect server (set "
                    "SORA_EXTEND_PREFECT_PORT to another port, or PREFECT_API_URL to a Prefect server)"
                )
            self._spawn(timeout_s)
            return True

    def _spawn(self, timeout_s: float) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # The UI calls the API at 127.0.0.1:4200 unless told otherwise: tell it, whatever the port.
            "PREFECT_UI_API_URL": self.api_url,
        }
        env.pop("PREFECT_API_URL", None)
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(self.port)]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=self.home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not stopped by a Ctrl-C meant for the run that started it
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if process.poll() is not None or time.monotonic() > deadline:
                problem = (
                    f"exited with code {process.returncode}"
                    if process.returncode is not None
                    else f"did not answer within {timeout_s:.0f} s"
                )
                self.stop()
                raise ServerUnavailable(f"the Prefect server {problem}; its output is in {self.log_file}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Stop the server the pid file names; its pid, or None when none was running."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return pid


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:  # our own child that has exited (a test that started and stopped it)
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _is_prefect(pid: int) -> bool:
    """Whether `pid` is a Prefect server, not a process that took over the number of one that is gone.
    Where /proc exists; elsewhere the pid file is trusted, as `prefect server stop` trusts it."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        words = cmdline.read_bytes().split(b"\0")
    except OSError:
        return not cmdline.parent.parent.exists()
    return any(b"prefect" in word for word in words)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def local_server(settings: Settings) -> LocalServer:
    """The local server of this machine's Prefect home (imports Prefect: call it once Prefect is needed)."""
    from prefect.settings import PREFECT_HOME

    return LocalServer(settings.prefect_port, Path(PREFECT_HOME.value()).expanduser())


def manage(action: str, settings: Settings) -> tuple[bool, str]:
    """`sora-extend prefect start|status|stop`: whether a server answers afterwards, and the line to print."""
    server = local_server(settings)
    if action == "start":
        started = server.start(settings.lock_dir)
        return True, f"{'started' if started else 'already running'}: UI {server.url}, API {server.api_url}"
    if action == "stop":
        pid = server.stop()
        if pid is not None:
            return False, f"stopped the Prefect server on {server.url} (pid {pid})"
        if server.answers():
            return True, f"the Prefect server on {server.url} was not started in the background here: stop it there"
        return False, f"no Prefect server runs on {server.url}"
    if not server.answers():
        return False, f"not running (runs start it on {server.url})"
    pid = server.pid()
    started_here = f"pid {pid}, output in {server.log_file}" if pid else "not started in the background here"
    return True, f"running: UI {server.url}, API {server.api_url} ({started_here})"


def use_local_server(settings: Settings) -> None:
    """Before a run's flow starts: when no Prefect API is configured, point Prefect at the local server,
    starting it if it is not running. When it cannot be started the run uses Prefect's embedded server,
    with a warning that says why."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    if settings.prefect_server == "embedded" or get_current_settings().api.url:
        return
    server = local_server(settings)
    try:
        started = server.start(settings.lock_dir)
    except ServerUnavailable as exc:
        print(f"warning: {exc.reason}; this run uses a temporary Prefect server", file=sys.stderr, flush=True)
        return
    os.environ["PREFECT_API_URL"] = server.api_url
    refresh_global_settings_context()
    if started:
        print(
            f"prefect: started a local Prefect server in the background (UI {server.url}); it stays for the next "
            "runs, `sora-extend prefect stop` stops it",
            flush=True,
        )
