"""Streaming downloads of provider results, shared by the providers."""

from __future__ import annotations

from pathlib import Path

import httpx

from sora_extend.errors import MediaError, ResultExpiredError

EXPIRED_STATUS = {403, 404, 410}


def stream_to_file(client: httpx.Client, url: str, dest: Path, *, provider: str, request_id: str) -> None:
    """Download `url` to `dest` without holding it in memory; the file appears only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        with client.stream("GET", url) as response:
            if response.status_code in EXPIRED_STATUS:
                raise ResultExpiredError(
                    f"the result link answered HTTP {response.status_code} (expired)",
                    provider=provider,
                    request_id=request_id,
                    status_code=response.status_code,
                )
            if response.status_code >= 400:
                raise MediaError(f"the result download answered HTTP {response.status_code}")
            with open(partial, "wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(f"the result download broke off: {type(exc).__name__}") from exc
    partial.replace(dest)
