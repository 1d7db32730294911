"""What the browser tests share: Debian's Chromium driven by playwright (no browser download), axe-core
injected into a page, and `sora-extend serve` started for real. Without a browser (or without axe-core's
npm package) these tests skip, unless SORA_EXTEND_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = Path(os.environ.get("SORA_EXTEND_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium's own connections are refused here and slow every page.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOTS = Path(os.environ.get("SORA_EXTEND_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# axe-core from npm (package.json; `npm ci` installs it, .ci/run does so on a clean clone).
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def missing(what: str) -> None:
    """Skip, or fail where SORA_EXTEND_REQUIRE_BROWSER=1."""
    if os.environ.get("SORA_EXTEND_REQUIRE_BROWSER") == "1":
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A Chromium context, or a skip (a failure where SORA_EXTEND_REQUIRE_BROWSER=1) without one."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    absent = "python playwright" if sync_playwright is None else str(CHROMIUM) if not CHROMIUM.exists() else ""
    if absent:
        missing(f"no browser: {absent} is not installed (apt-get install chromium; pip install playwright)")
    assert sync_playwright is not None
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not AXE.exists():
        missing(f"no axe-core: {AXE} is missing (run `npm ci` in the repository)")
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def serving(
    storage_url: str, *options: str, log: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`sora-extend serve` over `storage_url` with `options`: its base URL (its output goes to `log`)."""
    port = free_port()
    with open(log or os.devnull, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "sora-extend"), "serve", "--storage", storage_url, "--port", str(port), *options],
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/", process)
        yield base
    finally:
        stop(process)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
