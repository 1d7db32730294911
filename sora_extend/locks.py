"""Per-segment locks, so two runs of the same job at once submit each paid segment only once.

`file` (default): an advisory `flock` on a local file named by the segment's content key. It works
across processes on one machine, and the kernel releases it if the holder is killed.

`storage` (for several machines): a lock object created in the job's storage with an exclusive create
(S3 conditional PUT `If-None-Match: *`, O_EXCL locally), holding a lease: the holder renews its expiry
every third of the lease while it lives, so a holder that dies with its machine leaves the lock behind
for at most one lease (`LEASE_S`); then the next run breaks it. Two runs breaking the same expired lock
at the same instant, or a holder stalled for a whole lease, could both proceed: the ledger still makes
the second one resume the first one's request if it was already recorded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sora_extend import layout

if TYPE_CHECKING:
    from sora_extend.storage.store import JobStore

logger = logging.getLogger(__name__)

# Long enough that a busy holder always renews in time (every LEASE_S / 3), short enough that a job whose
# worker died resumes within about a minute of being rescheduled.
LEASE_S = 60.0


class LockTimeoutError(TimeoutError):
    pass


@contextmanager
def key_lock(lock_dir: Path, key: str, timeout_s: float) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{key}.lock"
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeoutError(f"another run has held the lock for {key} for {timeout_s:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def storage_lock(store: JobStore, key: str, ttl_s: float, timeout_s: float) -> Iterator[None]:
    """Held while the block runs. `ttl_s`: the lease (how long a dead holder blocks others); `timeout_s`:
    how long to wait for a live holder."""
    rel = layout.lock(key)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout_s
    while True:
        if store.create_exclusive(rel, _claim(token, ttl_s)):
            break
        try:
            holder = store.read_json(rel)
        except (FileNotFoundError, ValueError):
            continue  # released (or being written) between our attempt and our read
        if float(holder.get("expires", 0)) < time.time():
            logger.warning(
                "breaking an expired lock on %s held by %s pid %s", key, holder.get("host"), holder.get("pid")
            )
            store.delete(rel)
            continue
        if time.monotonic() > deadline:
            raise LockTimeoutError(f"{holder.get('host')} pid {holder.get('pid')} has held the lock for {key} too long")
        time.sleep(1.0)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(store, rel, token, ttl_s, stop), name=f"lease-{key}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        try:
            if store.read_json(rel).get("token") == token:
                store.delete(rel)
        except (FileNotFoundError, ValueError):
            pass


def _claim(token: str, ttl_s: float) -> bytes:
    return json.dumps(
        {"token": token, "host": socket.gethostname(), "pid": os.getpid(), "expires": time.time() + ttl_s}
    ).encode()


def _renew(store: JobStore, rel: str, token: str, ttl_s: float, stop: threading.Event) -> None:
    """Push the lease's expiry forward while the holder lives; a failed renewal is tried again at the
    next tick (two thirds of the lease are still left)."""
    while not stop.wait(ttl_s / 3):
        try:
            if store.read_json(rel).get("token") != token:
                logger.warning("lock %s was broken as expired by another run while held here", rel)
                return
            store.write_bytes(rel, _claim(token, ttl_s))
        except (OSError, ValueError) as exc:
            logger.warning("could not renew lock %s: %s", rel, exc)
