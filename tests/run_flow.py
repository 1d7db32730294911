"""Run the extend-video flow in a separate process: `python -m tests.run_flow '<request JSON>'`.

Used by tests that need a real second worker (an empty disk, a killed process, concurrent runs):
`spawn` starts one, `kill_when` SIGKILLs it (with everything it started) once something has happened.
Prints the result JSON on success; exits 1 with the error on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spawn(request_json: str, api_url: str, work_dir: Path | None = None) -> subprocess.Popen[str]:
    """The flow for this request in a new process (its own session, so it can be killed as a group)."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(ROOT)}
    if work_dir is not None:
        env["SORA_EXTEND_WORK_DIR"] = str(work_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.run_flow", request_json],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_when(
    worker: subprocess.Popen[str], ready: Callable[[], bool], settle_s: float, timeout_s: float = 180
) -> None:
    """SIGKILL the worker's whole process group `settle_s` after `ready()` first holds."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if worker.poll() is not None:
            raise AssertionError(worker.stderr.read() if worker.stderr else "the worker exited")
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing happened in {timeout_s:.0f} s")
        time.sleep(0.05)
    time.sleep(settle_s)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def main() -> int:
    from flows.extend import extend_video
    from sora_extend.request import ExtendRequest

    request = ExtendRequest.model_validate_json(sys.argv[1])
    try:
        result = extend_video(request=request)
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.model_dump_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
