"""HTTP plumbing shared by the providers: one TLS context, one-attempt submissions and streaming downloads of
results."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import httpx

from sora_extend.errors import MediaError, ResultExpiredError, SubmitOutcomeUnknown, TransientProviderError

EXPIRED_STATUS = {403, 404, 410}


@lru_cache(maxsize=1)
def tls() -> ssl.SSLContext:
    """The TLS settings of every provider client in this process (httpx's defaults: certifi, or
    SSL_CERT_FILE / SSL_CERT_DIR). Building them loads the CA bundle, tens of milliseconds of CPU, and a
    run makes clients for every piece it renders: built once, they cost that once."""
    return httpx.create_ssl_context()


@contextmanager
def one_attempt(target: str, *, provider: str, model: str, started: datetime) -> Iterator[None]:
    """A submission is one HTTP attempt. A connection that never opened sent nothing (safe to send again);
    any other transport error leaves the outcome unknown: the request must be looked up first."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise TransientProviderError(
            f"could not reach {target}: {type(exc).__name__}", provider=provider, model=model, never_sent=True
        ) from None
    except httpx.HTTPError as exc:
        raise SubmitOutcomeUnknown(
            f"submitting to {target} got no answer ({type(exc).__name__})",
            provider=provider,
            model=model,
            sent_at=started,
        ) from None


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
