"""What the library page asks for (search words, filters, sort, page) and what it shows: one page of
entries and the figures over everything the filter keeps. Pure functions over the index's entries."""

from __future__ import annotations

import statistics
import unicodedata
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sora_extend.catalogue import load_catalogue
from sora_extend.errors import InputError
from sora_extend.library.entry import LibraryEntry

PAGE_SIZE = 50
Status = Literal["completed", "failed", "running"]
Mode = Literal["chain", "keyframes", "extend"]


class LibraryQuery(BaseModel):
    """The library page's URL parameters. Unknown names and values are refused (HTTP 400), naming them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    q: str = Field("", max_length=500, description="Words of the prompt, in any language, any case.")
    status: Status | None = None
    model: str | None = Field(None, max_length=100)
    mode: Mode | None = None
    date_from: date | None = Field(None, alias="from", description="Made on or after this day (UTC).")
    date_to: date | None = Field(None, alias="to", description="Made on or before this day (UTC).")
    sort: Literal["date", "cost", "length"] = "date"
    order: Literal["desc", "asc"] = "desc"
    page: int = Field(1, ge=1, le=100_000)
    job: str | None = Field(None, max_length=200, description="One job's card (links from runs point here).")

    @field_validator("status", "model", "mode", "date_from", "date_to", "job", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value  # an untouched form field arrives as ""

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str | None) -> str | None:
        models = list(load_catalogue().models)
        if value is not None and value not in models:
            raise InputError("model", f"'{value}' is not a model of the catalogue", models)
        return value

    def words(self) -> list[str]:
        return _fold(self.q).split()

    def url(self, **changes: Any) -> str:
        """The query string of this query with some parameters changed (for the page links)."""
        fields = self.model_dump(by_alias=True, exclude_defaults=True) | changes
        return "?" + urlencode({name: str(value) for name, value in fields.items() if value not in (None, "")})


class Stats(BaseModel):
    videos: int
    completed: int
    failed: int
    running: int
    success_rate: float | None = Field(None, description="Completed of the finished (completed or failed).")
    rendered_s: float
    spend_usd: float
    spend_month_usd: float
    median_wall_s: float | None
    spend_by_model: dict[str, float]


class LibraryView(BaseModel):
    query: LibraryQuery
    cards: list[LibraryEntry]
    total: int
    pages: int
    stats: Stats


def _fold(text: str) -> str:
    """Text as search compares it: one Unicode form (Hangul typed as jamo matches syllables), no case."""
    return unicodedata.normalize("NFKC", text).casefold()


def matches(entry: LibraryEntry, query: LibraryQuery, words: list[str]) -> bool:
    created = entry.created_at.astimezone(UTC).date()
    return (
        (query.job is None or entry.job_id == query.job)
        and (query.status is None or entry.status == query.status)
        and (query.model is None or entry.model == query.model)
        and (query.mode is None or entry.continuity == query.mode)
        and (query.date_from is None or created >= query.date_from)
        and (query.date_to is None or created <= query.date_to)
        and all(word in _fold(entry.prompt) for word in words)
    )


def _sort_key(query: LibraryQuery) -> Any:
    if query.sort == "cost":
        return lambda entry: (entry.cost_usd, entry.created_at)
    if query.sort == "length":
        return lambda entry: (entry.length_s or 0.0, entry.created_at)
    return lambda entry: (entry.created_at, entry.job_id)


def stats(entries: list[LibraryEntry], now: datetime) -> Stats:
    completed = sum(entry.status == "completed" for entry in entries)
    failed = sum(entry.status == "failed" for entry in entries)
    walls = [entry.wall_s for entry in entries if entry.status == "completed" and entry.wall_s is not None]
    month = (now.year, now.month)
    by_model: dict[str, float] = defaultdict(float)
    for entry in entries:
        by_model[f"{entry.provider}/{entry.model}"] += entry.cost_usd
    return Stats(
        videos=len(entries),
        completed=completed,
        failed=failed,
        running=len(entries) - completed - failed,
        success_rate=completed / (completed + failed) if completed + failed else None,
        rendered_s=sum(entry.rendered_s for entry in entries),
        spend_usd=sum(entry.cost_usd for entry in entries),
        spend_month_usd=sum(
            entry.cost_usd for entry in entries if (entry.created_at.year, entry.created_at.month) == month
        ),
        median_wall_s=statistics.median(walls) if walls else None,
        spend_by_model=dict(sorted(by_model.items(), key=lambda item: -item[1])),
    )


def select(entries: list[LibraryEntry], query: LibraryQuery, now: datetime | None = None) -> LibraryView:
    """The page `query` asks for, with the figures over every entry it keeps."""
    words = query.words()
    kept = sorted(
        (entry for entry in entries if matches(entry, query, words)),
        key=_sort_key(query),
        reverse=query.order == "desc",
    )
    pages = max(1, -(-len(kept) // PAGE_SIZE))
    start = (min(query.page, pages) - 1) * PAGE_SIZE
    return LibraryView(
        query=query,
        cards=kept[start : start + PAGE_SIZE],
        total=len(kept),
        pages=pages,
        stats=stats(kept, (now or datetime.now(UTC)).astimezone(UTC)),
    )


def card_link(public_url: str | None, job_id: str) -> str | None:
    """The job's card in the library on the media server (SORA_EXTEND_PUBLIC_URL), if one is configured."""
    return f"{public_url}/{LibraryQuery(job=job_id).url()}" if public_url else None
