"""Per-segment locks: mutual exclusion across processes (file) and through storage (S3 or local)."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from sora_extend.locks import LockTimeoutError, key_lock, storage_lock
from sora_extend.storage.store import JobStore


def _hold_file_lock(lock_dir: str, ready: multiprocessing.Event, seconds: float) -> None:  # type: ignore[type-arg]
    with key_lock(Path(lock_dir), "seg-key", timeout_s=30):
        ready.set()
        time.sleep(seconds)


def test_file_lock_excludes_another_process_and_is_released_when_it_dies(tmp_path: Path) -> None:
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_file_lock, args=(str(tmp_path), ready, 30))
    holder.start()
    assert ready.wait(20)
    with pytest.raises(LockTimeoutError), key_lock(tmp_path, "seg-key", timeout_s=0.5):
        pass
    holder.kill()  # SIGKILL: the kernel drops the flock
    holder.join()
    with key_lock(tmp_path, "seg-key", timeout_s=5):
        pass


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_storage_lock_serialises_holders_and_breaks_expired_ones(backend: str, request: pytest.FixtureRequest) -> None:
    storage = request.getfixturevalue("s3_storage" if backend == "s3" else "storage_url")
    store = JobStore(storage, "job-lock")
    inside, most, errors = 0, 0, []
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, most
        try:
            with storage_lock(store, "seg-key", ttl_s=60, timeout_s=60):
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.3)
                with guard:
                    inside -= 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and most == 1
    assert not store.exists("locks/seg-key.json")

    store.write_json("locks/seg-key.json", {"token": "dead", "host": "gone", "pid": 1, "expires": time.time() - 1})
    with storage_lock(store, "seg-key", ttl_s=60, timeout_s=5):
        assert json.loads(store.read_bytes("locks/seg-key.json"))["token"] != "dead"


def test_a_storage_lock_held_longer_than_its_lease_is_renewed_not_broken(storage_url: str) -> None:
    store = JobStore(storage_url, "job-lease")
    with storage_lock(store, "seg-key", ttl_s=0.6, timeout_s=5):
        time.sleep(1.5)  # two and a half leases: only renewals keep it
        with pytest.raises(LockTimeoutError), storage_lock(store, "seg-key", ttl_s=0.6, timeout_s=0.5):
            pass
        assert json.loads(store.read_bytes("locks/seg-key.json"))["expires"] > time.time()
    with storage_lock(store, "seg-key", ttl_s=0.6, timeout_s=1):
        pass
