"""Several ComfyUI servers as one render farm: one slot per server, a piece goes to a free one.

A slot is an advisory `flock` on a file named after the server in the lock folder, so it holds across
the threads of one run, across runs and across workers on one machine, and the kernel frees it when
its holder dies. A server that does not answer is passed over; when every server is busy the piece
waits for the first to come free.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

from sora_extend.comfyui.server import Server, parse_servers
from sora_extend.errors import InputError, TransientProviderError
from sora_extend.settings import Settings

logger = logging.getLogger(__name__)

SLOT_RETRY_S = 0.2
PING_TIMEOUT_S = 5.0


def farm_servers(settings: Settings) -> list[Server]:
    return parse_servers(settings.comfyui_urls.get_secret_value(), settings.comfyui_token)


def server_named(servers: Sequence[Server], label: str) -> Server:
    """The configured server a request id names (its pieces are resumed there)."""
    for server in servers:
        if server.label == label:
            return server
    raise InputError(
        "SORA_EXTEND_COMFYUI_URLS",
        f"a piece was queued on ComfyUI server {label}, which is no longer listed; add it back to resume it",
        [server.label for server in servers],
    )


class Slot:
    """A held server slot; `release` (or the holder's death) frees it."""

    def __init__(self, server: Server, handle: IO[str]) -> None:
        self.server = server
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def _answers(server: Server) -> bool:
    try:
        with server.client(PING_TIMEOUT_S) as client:
            return client.get("/queue").status_code < 500
    except httpx.HTTPError:
        return False


def take_slot(servers: Sequence[Server], lock_dir: Path, timeout_s: float, label: str) -> Slot:
    """Block until a server that answers has a free slot; hold it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    silent: set[str] = set()
    while True:
        for server in servers:
            digest = hashlib.sha256(server.url.encode()).hexdigest()[:16]
            handle = open(lock_dir / f"comfyui-{digest}.lock", "a+")  # noqa: SIM115 - held past this block
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            if _answers(server):
                return Slot(server, handle)
            handle.close()
            if server.label not in silent:
                logger.warning("%s: ComfyUI server %s does not answer; trying the others", label, server.label)
                silent.add(server.label)
        if time.monotonic() > deadline:
            raise TransientProviderError(
                f"no ComfyUI server had a free slot for {timeout_s:.0f} s "
                f"({', '.join(server.label for server in servers)})",
                provider="comfyui",
                never_sent=True,
            )
        time.sleep(SLOT_RETRY_S)
