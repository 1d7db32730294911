"""What the library knows about one job: a card's worth of facts, kept in the index so that listing never
opens a job folder. Built from the job's request, its job.json and (once a run ended) its manifest."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from sora_extend.request import ExtendRequest

if TYPE_CHECKING:
    from sora_extend.pipeline.assemble import Manifest
    from sora_extend.pipeline.job import JobState

ERROR_CHARS = 300  # a card shows the start of the error; the review page has all of it


def compact_request(fields: dict[str, Any]) -> dict[str, Any]:
    """A request's JSON without the fields at their defaults (the same request, half the size to keep and
    parse for 5 000 jobs). Not validated: a manifest written by an older version still lists."""
    defaults = {name: info.get_default(call_default_factory=True) for name, info in ExtendRequest.model_fields.items()}
    return {name: value for name, value in fields.items() if name not in defaults or value != defaults[name]}


class LibraryEntry(BaseModel):
    job_id: str
    storage: str = Field(..., description="The storage URL the job folder is in.")
    prompt: str
    status: Literal["running", "completed", "failed"]
    failed_step: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    length_s: float | None = Field(None, description="The final video's length, once there is one.")
    rendered_s: float = Field(0.0, description="Seconds of the segments in storage (a failed run's too).")
    segments: int
    seconds: int
    provider: str
    model: str
    continuity: str = Field(..., description="The mode the job runs in (auto resolved once known).")
    cost_usd: float = 0.0
    wall_s: float | None = Field(None, description="How long its last run took, start to report.")
    poster: str | None = Field(None, description="The card's still, relative to the job folder.")
    video: bool = Field(False, description="Whether final.mp4 exists.")
    owners: list[str] = Field(default_factory=list, description="Everyone who asked for this video.")
    request: dict[str, Any] = Field(..., description="The request as JSON: what 'make again' sends.")


def job_entry(
    job_id: str,
    storage: str,
    request: dict[str, Any],
    state: JobState,
    manifest: Manifest | None,
    *,
    mode: str,
    poster: str | None,
    owners: set[str],
) -> LibraryEntry:
    """The entry of a job from its request (JSON), its job.json and its manifest (None before its report)."""
    final = manifest.final if manifest else None
    error = state.error[:ERROR_CHARS] if state.error else None
    return LibraryEntry(
        job_id=job_id,
        storage=storage,
        prompt=str(request["prompt"]),
        status=state.status,
        failed_step=manifest.failed_step if manifest and state.status == "failed" else None,
        error=error if state.status == "failed" else None,
        created_at=state.created_at,
        updated_at=state.updated_at,
        finished_at=state.finished_at,
        length_s=final.duration if final else None,
        rendered_s=float(sum(segment.seconds for segment in manifest.segments)) if manifest else 0.0,
        segments=int(request["segments"]),
        seconds=int(request.get("seconds") or 0),
        provider=str(request["provider"]),
        model=str(request.get("model") or ""),
        continuity=mode,
        cost_usd=manifest.cost_usd if manifest else 0.0,
        wall_s=manifest.timings.get("total_s") if manifest else None,
        poster=poster,
        video=final is not None,
        owners=sorted(owners),
        request=compact_request(request),
    )
