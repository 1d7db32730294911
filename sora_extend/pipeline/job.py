"""A job: one request's folder in storage, its state file, ledger, local cache and locks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.catalogue import ModelSpec
from sora_extend.ledger import Ledger, utcnow
from sora_extend.library.record import record_job
from sora_extend.locks import LEASE_S, key_lock, storage_lock
from sora_extend.pipeline.records import ImageRecord
from sora_extend.pricing import PriceBook, catalogue_only
from sora_extend.request import ExtendRequest, normalise_storage_url
from sora_extend.settings import Settings, get_settings
from sora_extend.storage.cache import LocalCache
from sora_extend.storage.store import JobStore

JobStatus = Literal["running", "completed", "failed"]


class JobRef(BaseModel):
    """What travels between tasks: enough to reopen the job anywhere. Holds no secrets."""

    job_id: str
    storage_url: str
    request: ExtendRequest
    generation: str = Field(
        "", description="When this job folder was created: scopes Prefect's cached results to its lifetime."
    )


class JobState(BaseModel):
    """job.json: status for humans and for retention, and the re-render takes per segment."""

    job_id: str
    status: JobStatus = "running"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    error: str | None = None
    identity: dict[str, object] = Field(default_factory=dict)
    takes: dict[int, int] = Field(default_factory=dict, description="Segment -> current take (1 if absent).")
    keyframe_takes: dict[int, int] = Field(default_factory=dict, description="Keyframe -> current take (1 if absent).")
    rerender_tokens: list[str] = Field(
        default_factory=list, description="Runs whose re-render request was applied (applied once each)."
    )
    references: list[ImageRecord] = Field(
        default_factory=list, description="The subject's reference images, as copied into the job folder."
    )
    picks: dict[int, int] = Field(
        default_factory=dict, description="Segment -> the stored take picked by hand (use_takes), until re-rendered."
    )

    def with_rerender(
        self, segments: list[int], keyframes: list[int], highest: dict[tuple[str, int], int] | None = None
    ) -> JobState:
        """A copy with a new take of each chosen segment and keyframe: one past the highest take made so far
        (`highest`: (kind, number) -> take, retakes of the quality gate included)."""
        highest = highest or {}
        takes, keyframe_takes, picks = dict(self.takes), dict(self.keyframe_takes), dict(self.picks)
        for segment in segments:
            takes[segment] = max(takes.get(segment, 1), highest.get(("segment", segment), 1)) + 1
            picks.pop(segment, None)
        for keyframe in keyframes:
            keyframe_takes[keyframe] = max(keyframe_takes.get(keyframe, 1), highest.get(("keyframe", keyframe), 1)) + 1
        return self.model_copy(update={"takes": takes, "keyframe_takes": keyframe_takes, "picks": picks})


def job_ref(request: ExtendRequest, settings: Settings | None = None) -> JobRef:
    settings = settings or get_settings()
    storage_url = request.storage or normalise_storage_url(settings.storage)
    return JobRef(job_id=request.job_id(), storage_url=storage_url, request=request)


class Job:
    def __init__(self, ref: JobRef, settings: Settings | None = None) -> None:
        self.ref = ref
        self.request = ref.request
        self.settings = settings or get_settings()
        self.store = JobStore(ref.storage_url, ref.job_id, self.settings)
        self.cache = LocalCache(self.settings.work_dir)
        self.ledger = Ledger(self.store)
        self.spec: ModelSpec = ref.request.spec

    @property
    def job_id(self) -> str:
        return self.ref.job_id

    @cached_property
    def prices(self) -> PriceBook:
        """The prices this run charges, as fixed when it started (prices.json), else the catalogue's."""
        return self.store.read_model(layout.PRICES, PriceBook) or catalogue_only("no price book in the job folder")

    def state(self) -> JobState:
        return self.store.read_model(layout.JOB_STATE, JobState) or JobState(
            job_id=self.job_id, identity=self.request.identity()
        )

    def save_state(self, state: JobState) -> JobState:
        state.updated_at = utcnow()
        self.store.write_json(layout.JOB_STATE, state)
        return state

    def start(self) -> JobRef:
        """Mark the job running and return a ref that carries the folder's generation."""
        state = self.state()
        state.status, state.error, state.finished_at = "running", None, None
        record_job(self, self.save_state(state))
        return self.ref.model_copy(update={"generation": state.created_at.strftime("%Y%m%dT%H%M%S%fZ")})

    def finish(self, status: JobStatus, error: str | None = None) -> JobState:
        state = self.state()
        state.status, state.error, state.finished_at = status, error, utcnow()
        return self.save_state(state)

    def highest_takes(self) -> dict[tuple[str, int], int]:
        """(kind, number) -> the highest take ever submitted for that piece, from the ledger."""
        highest: dict[tuple[str, int], int] = {}
        for entry in self.ledger.entries():
            if entry.kind in ("segment", "keyframe"):
                key = (entry.kind, entry.segment)
                highest[key] = max(highest.get(key, 1), entry.take)
        return highest

    def with_rerender(self, segments: list[int], keyframes: list[int]) -> JobState:
        """The state as a re-render of these pieces would leave it (not saved)."""
        state = self.state()
        if not (segments or keyframes):
            return state
        return state.with_rerender(segments, keyframes, self.highest_takes())

    def apply_rerender(self, segments: list[int], keyframes: list[int], token: str) -> JobState:
        """Start a new take of each chosen segment and keyframe, once per token (a retried run does not
        pay twice). Returns the state with the current takes."""
        state = self.state()
        if (segments or keyframes) and token not in state.rerender_tokens:
            state = self.with_rerender(segments, keyframes)
            state.rerender_tokens.append(token)
            self.save_state(state)
        return state

    def apply_picks(self, picks: dict[int, int]) -> JobState:
        """Keep the takes picked by hand for this and later runs (until the segment is re-rendered)."""
        state = self.state()
        if picks and any(state.picks.get(segment) != take for segment, take in picks.items()):
            state.picks |= picks
            self.save_state(state)
        return state

    @contextmanager
    def lock(self, key: str, hold_s: float | None = None) -> Iterator[None]:
        """Held while a segment is submitted, polled and downloaded; waits for another holder to finish
        (for `hold_s`, by default as long as one generation can take)."""
        hold = hold_s or self.settings.poll_timeout_s + 600  # a holder gives up polling after poll_timeout_s
        if self.settings.lock_backend == "storage":
            with storage_lock(self.store, key, ttl_s=LEASE_S, timeout_s=hold):
                yield
        else:
            with key_lock(self.settings.lock_dir, key, timeout_s=hold):
                yield
