"""The request ledger: which paid request belongs to which content key (a segment's or a keyframe's).

An entry is written *before* submitting (state "submitting") and updated with the provider's request
id the moment it exists ("submitted"). A retry, a new run or a restarted worker that finds an entry
resumes that request by id instead of submitting again; only a terminal failure allows a new
submission. It lives in the job's storage, so it works on any worker that can reach the storage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.storage.store import JobStore

LedgerState = Literal["submitting", "submitted", "completed", "failed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Attempt(BaseModel):
    request_id: str | None
    state: LedgerState
    error: str | None = None
    cost_usd: float = 0.0
    billed: bool = False
    at: datetime


class LedgerEntry(BaseModel):
    key: str
    kind: Literal["segment", "keyframe", "judge", "score"] = "segment"
    segment: int = Field(
        ..., description="The segment's (or keyframe's) number; a judge entry: the piece it judged; a score: 0."
    )
    take: int = 1
    provider: str
    model: str
    endpoint: str
    state: LedgerState
    request_id: str | None = None
    cost_usd: float = 0.0
    price_source: str = ""
    billed: bool = Field(False, description="Whether the provider will charge for this request.")
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    history: list[Attempt] = Field(default_factory=list, description="Earlier requests for this key.")


class Ledger:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    def get(self, key: str) -> LedgerEntry | None:
        return self.store.read_model(layout.ledger_entry(key), LedgerEntry)

    def put(self, entry: LedgerEntry) -> LedgerEntry:
        entry.updated_at = utcnow()
        self.store.write_json(layout.ledger_entry(entry.key), entry)
        return entry

    def entries(self) -> list[LedgerEntry]:
        found = []
        for name in self.store.listdir(layout.LEDGER_DIR):
            if name.endswith(".json"):
                entry = self.get(name.removesuffix(".json"))
                if entry is not None:
                    found.append(entry)
        return found

    def spent_usd(self) -> float:
        """What this job has committed to pay: every billed request, earlier attempts included."""
        total = 0.0
        for entry in self.entries():
            total += entry.cost_usd if entry.billed else 0.0
            total += sum(attempt.cost_usd for attempt in entry.history if attempt.billed)
        return round(total, 4)

    def committed_usd(self) -> float:
        """What this job has spent or may be spending: billed requests plus submissions under way, so
        generations submitted at once cannot pass the budget together."""
        submitting = sum(entry.cost_usd for entry in self.entries() if entry.state == "submitting")
        return round(self.spent_usd() + submitting, 4)

    def retire(self, entry: LedgerEntry) -> LedgerEntry:
        """Move the current request into history, making room for a new submission under the same key."""
        entry.history.append(
            Attempt(
                request_id=entry.request_id,
                state=entry.state,
                error=entry.error,
                cost_usd=entry.cost_usd,
                billed=entry.billed,
                at=entry.updated_at,
            )
        )
        entry.request_id, entry.error, entry.billed, entry.state = None, None, False, "submitting"
        return entry
