"""What each piece costs: fal's live unit prices (its Platform API, account-specific) when a key is
available, the catalogue's tables otherwise, and always a word on which one was used.

fal's pricing API gives one unit price per endpoint, without the resolution and audio tiers its model
pages list. So a live price replaces the catalogue's base rate and the catalogue's tier ratios are kept:
if fal says Veo 3.1 Fast now costs $0.12 per second where the catalogue says $0.10, every tier is
1.2 x the catalogue's. Units other than seconds (video) or images (stills) are not converted: those
models keep the catalogue's price, and the source says why.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

from sora_extend.catalogue import ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.ledger import utcnow
from sora_extend.request import ExtendRequest
from sora_extend.settings import Settings

logger = logging.getLogger(__name__)

PER_SECOND_UNITS = {"second", "seconds", "video_second", "video second", "video seconds"}
PER_IMAGE_UNITS = {"image", "images"}
PER_TRACK_UNITS = {"audio", "audios", "request", "requests", "generation", "generations"}
MAX_IDS_PER_CALL = 50  # fal's documented limit for endpoint_id


class UnitPrice(BaseModel):
    endpoint_id: str
    unit_price: float
    unit: str
    currency: str


class Quote(BaseModel):
    usd: float
    source: str


class PriceBook(BaseModel):
    """The prices one run uses, written to the job folder so every worker charges the same."""

    live: dict[str, UnitPrice] = Field(default_factory=dict, description="fal's live unit price per endpoint.")
    fetched_at: datetime | None = None
    note: str = Field("", description="Why live prices are missing, when they are.")

    def _scaled(self, endpoint: str, catalogue: float, base: float, units: set[str], row_source: str) -> Quote:
        live = self.live.get(endpoint)
        if live is None:
            reason = f"; {self.note}" if self.note else ""
            return Quote(usd=catalogue, source=f"catalogue: {row_source or 'shipped table'}{reason}")
        if live.unit.lower() not in units or live.currency != "USD" or base <= 0:
            return Quote(usd=catalogue, source=f"catalogue: fal bills this endpoint per {live.unit} in {live.currency}")
        stamp = f"{self.fetched_at:%Y-%m-%d %H:%M} UTC" if self.fetched_at else "now"
        usd = round(catalogue * live.unit_price / base, 4)
        return Quote(usd=usd, source=f"fal live price {live.unit_price} USD/{live.unit} ({stamp})")

    def segment(self, spec: ModelSpec, endpoint: str, seconds: int, resolution: str, audio: bool, mode: str) -> Quote:
        catalogue = spec.cost(seconds, resolution, audio, mode)
        base = spec.price_for(mode).per_second * seconds
        return self._scaled(endpoint, catalogue, base, PER_SECOND_UNITS, spec.price_source)

    def keyframe(self, spec: ImageModelSpec, endpoint: str, width: int, height: int) -> Quote:
        base = spec.price.per_image or 0.0
        return self._scaled(endpoint, spec.cost(width, height), base, PER_IMAGE_UNITS, spec.price_source)

    def score(self, spec: MusicModelSpec, seconds: float) -> Quote:
        catalogue = spec.cost(seconds)
        if spec.price.per_audio is not None:
            return self._scaled(spec.endpoint, catalogue, spec.price.per_audio, PER_TRACK_UNITS, spec.price_source)
        return self._scaled(spec.endpoint, catalogue, catalogue, PER_SECOND_UNITS, spec.price_source)


def catalogue_only(note: str = "") -> PriceBook:
    return PriceBook(note=note)


def _cache_path(settings: Settings) -> Path:
    return settings.work_dir / "fal-prices.json"


def _cached(settings: Settings, endpoints: list[str]) -> PriceBook | None:
    try:
        book = PriceBook.model_validate_json(_cache_path(settings).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    fresh = book.fetched_at is not None and time.time() - book.fetched_at.timestamp() < settings.price_cache_s
    return book if fresh and set(endpoints) <= set(book.live) else None


def fetch_live(settings: Settings, endpoints: list[str]) -> PriceBook:
    """fal's live prices for these endpoints (cached for SORA_EXTEND_PRICE_CACHE_S), or a catalogue-only
    book saying why not. Never raises: an estimate must work offline."""
    if settings.fal_key is None:
        return catalogue_only("no FAL_KEY, so no live prices")
    cached = _cached(settings, endpoints)
    if cached is not None:
        return cached
    live: dict[str, UnitPrice] = {}
    headers = {"Authorization": f"Key {settings.fal_key.get_secret_value()}"}
    url = settings.fal_platform_url.rstrip("/") + "/models/pricing"
    try:
        with httpx.Client(timeout=10.0) as client:
            for start in range(0, len(endpoints), MAX_IDS_PER_CALL):
                chunk = endpoints[start : start + MAX_IDS_PER_CALL]
                response = client.get(url, params={"endpoint_id": ",".join(chunk)}, headers=headers)
                response.raise_for_status()
                for item in response.json()["prices"]:
                    price = UnitPrice.model_validate(item)
                    live[price.endpoint_id] = price
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        logger.warning("live prices unavailable (%s); using the catalogue's", reason)
        return catalogue_only(f"live prices unavailable ({reason})")
    book = PriceBook(live=live, fetched_at=utcnow())
    path = _cache_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(book.model_dump(mode="json")), "utf-8")
    return book


def paid_endpoints(request: ExtendRequest) -> list[str]:
    """Every fal endpoint this request may call (fal is the provider with a live price API)."""
    specs: list[ModelSpec | ImageModelSpec | MusicModelSpec] = [request.spec]
    if request.keyframe_spec is not None:
        specs.append(request.keyframe_spec)
    if request.soundtrack_spec is not None:
        specs.append(request.soundtrack_spec)
    found = []
    for spec in specs:
        if spec.provider == "fal":
            found += [str(endpoint) for endpoint in spec.endpoints.model_dump().values() if endpoint]
    return sorted(set(found))


def price_book_for(request: ExtendRequest, settings: Settings) -> PriceBook:
    """The prices this request will be charged: live for its fal endpoints where a key allows."""
    endpoints = paid_endpoints(request)
    if not endpoints:
        return catalogue_only()
    return fetch_live(settings, endpoints)
