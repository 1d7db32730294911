"""Content hashes: the basis of cache keys, ledger keys and manifest integrity fields."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

KEY_VERSION = "sora-extend-v1"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(kind: str, **fields: Any) -> str:
    """A versioned hash of exactly the values that determine an output. Never run ids or source code."""
    payload = json.dumps({"version": KEY_VERSION, "kind": kind, **fields}, sort_keys=True, ensure_ascii=False)
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"
