"""fal's Platform API (`SORA_EXTEND_FAL_PLATFORM_URL`, default https://api.fal.ai/v1): the requests this
account sent to a model endpoint, so a submission whose answer was lost can be found and adopted
instead of paid for again.

`GET /models/requests/by-endpoint?endpoint_id=...&start=...&expand=payloads` lists recent requests to a
model endpoint with their `json_input` (fal's docs, "Platform APIs for Models"; the `/serverless/`
variant is for apps you deploy yourself). A request is ours when every plain value we sent is in its
input unchanged; image fields are compared by presence only, since fal may store an uploaded copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from sora_extend.errors import LookupUnavailable
from sora_extend.settings import Settings

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # fal's maximum


class PlatformRequest(BaseModel):
    request_id: str
    endpoint_id: str
    sent_at: datetime | None = None
    json_input: dict[str, Any] | None = None


class PlatformUnavailable(LookupUnavailable):
    """The listing could not be read (no key, network, HTTP error): nothing can be concluded from it."""


def _is_media(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("data:", "http://", "https://"))


def same_input(sent: dict[str, Any], recorded: dict[str, Any] | None) -> bool:
    """Whether a listed request's input is what we sent (media fields by presence only)."""
    if recorded is None:
        return False
    for name, value in sent.items():
        if name not in recorded:
            return False
        if isinstance(value, list) and all(_is_media(item) for item in value):
            if not isinstance(recorded[name], list) or len(recorded[name]) != len(value):
                return False
        elif not _is_media(value) and recorded[name] != value:
            return False
    return True


def requests_since(settings: Settings, endpoint: str, since: datetime) -> Iterator[PlatformRequest]:
    """This account's requests to `endpoint` sent at or after `since`, newest pages first as fal returns them."""
    if settings.fal_key is None:
        raise PlatformUnavailable("no FAL_KEY")
    url = settings.fal_platform_url.rstrip("/") + "/models/requests/by-endpoint"
    headers = {"Authorization": f"Key {settings.fal_key.get_secret_value()}"}
    params: dict[str, Any] = {
        "endpoint_id": endpoint,
        "start": since.isoformat().replace("+00:00", "Z"),
        "expand": "payloads",
        "limit": PAGE_SIZE,
    }
    try:
        with httpx.Client(timeout=settings.http_timeout_s) as client:
            while True:
                response = client.get(url, params=params, headers=headers)
                response.raise_for_status()
                page = response.json()
                for item in page.get("items", []):
                    yield PlatformRequest.model_validate(item)
                if not page.get("has_more") or not page.get("next_cursor"):
                    return
                params["cursor"] = page["next_cursor"]
    except httpx.HTTPStatusError as exc:
        raise PlatformUnavailable(f"fal's Platform API answered HTTP {exc.response.status_code}") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise PlatformUnavailable(f"fal's Platform API could not be read: {type(exc).__name__}") from None
