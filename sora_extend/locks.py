"""Per-segment locks, so two runs of the same job at once submit each paid segment only once.

The lock is an advisory `flock` on a file named by the segment's content key: it works across
processes on one machine and the kernel releases it if the holder is killed. For several machines,
see the README ("Running on several machines"): a Prefect global concurrency limit of 1 per key.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
