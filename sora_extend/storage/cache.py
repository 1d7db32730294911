"""A content-addressed local cache, so a worker downloads each segment at most once."""

from __future__ import annotations

import shutil
from pathlib import Path

from sora_extend.errors import MediaError
from sora_extend.hashing import sha256_file
from sora_extend.storage.store import JobStore


class LocalCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def blob(self, sha256: str, suffix: str) -> Path:
        return self.root / "blobs" / sha256[:2] / f"{sha256}{suffix}"

    def adopt(self, local: Path, sha256: str) -> Path:
        """Keep a copy of a file we just produced under its hash."""
        target = self.blob(sha256, local.suffix)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_suffix(target.suffix + ".part")
            shutil.copyfile(local, temp)
            temp.replace(target)
        return target

    def fetch(self, store: JobStore, rel: str, sha256: str) -> Path:
        """The stored file as a local path, downloaded once and checked against its hash."""
        target = self.blob(sha256, Path(rel).suffix)
        if target.exists():
            return target
        store.get_file(rel, target)
        actual = sha256_file(target)
        if actual != sha256:
            target.unlink(missing_ok=True)
            raise MediaError(
                f"{store.url(rel)} does not match its recorded hash (got {actual[:12]}, "
                f"expected {sha256[:12]}): it was changed or damaged in storage"
            )
        return target

    def derived(self, sha256: str, name: str) -> Path:
        """Where something computed from the blob `sha256` is kept (a frame of a clip, say): as safe to delete
        as the blob itself, and found again by whoever has the same blob."""
        path = self.root / "derived" / sha256[:2] / f"{sha256}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def scratch(self, job_id: str) -> Path:
        path = self.root / "scratch" / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path
