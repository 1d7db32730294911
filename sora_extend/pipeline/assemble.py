"""Merge step and manifest: join the stored segments into final.mp4 and record everything."""

from __future__ import annotations

import logging
import platform
from datetime import datetime
from importlib import metadata
from typing import Any

from pydantic import BaseModel, Field

from sora_extend.hashing import content_key, sha256_file
from sora_extend.ledger import LedgerEntry, utcnow
from sora_extend.media.merge import JoinPlan, merge_videos
from sora_extend.media.probe import probe
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import FinalRecord, HandoffRecord, JoinRecord, SegmentRecord
from sora_extend.plan import ShotPlan

logger = logging.getLogger(__name__)

FINAL_REL = "final.mp4"
MANIFEST_REL = "manifest.json"


def plan_joins(
    job: Job, plan: ShotPlan, segments: list[SegmentRecord], handoffs: dict[int, HandoffRecord]
) -> list[JoinPlan]:
    joins = []
    for shot, after in zip(plan.shots[1:], segments[1:], strict=True):
        before = shot.index - 1
        handoff = handoffs.get(before)
        seeded = handoff is not None and after.seeded_from_sha256 == handoff.sha256
        transition = shot.transition_in
        # The next clip starts on the hand-off frame; after any trim it is also this clip's last shown frame.
        joins.append(
            JoinPlan(
                transition=transition,
                dedupe_first_frame=transition == "continuous" and seeded,
                trim_tail_frames=handoff.from_end if seeded and handoff is not None else 0,
                crossfade_s=job.request.crossfade_seconds if transition == "crossfade" else 0.0,
            )
        )
    return joins


def merge_job(
    job: Job, plan: ShotPlan, segments: list[SegmentRecord], handoffs: dict[int, HandoffRecord]
) -> FinalRecord:
    joins = plan_joins(job, plan, segments, handoffs)
    width, height = job.request.size
    key = content_key(
        "final",
        segments=[s.sha256 for s in segments],
        joins=[j.model_dump() for j in joins],
        size=[width, height],
        fps=job.spec.fps,
    )
    existing = job.store.read_model("final.json", FinalRecord)
    if existing is not None and existing.key == key and job.store.size(FINAL_REL) == existing.bytes:
        logger.info("merge: %s is already up to date", job.store.url(FINAL_REL))
        return existing
    local_inputs = [job.cache.fetch(job.store, s.path, s.sha256) for s in segments]
    output = job.cache.scratch(job.job_id) / f"{key}.mp4"
    result = merge_videos(local_inputs, output, joins, size=(width, height), fps=job.spec.fps)
    info = probe(output)
    assert info.video is not None
    sha = sha256_file(output)
    job.store.put_file(output, FINAL_REL)
    job.cache.adopt(output, sha)
    record = FinalRecord(
        key=key,
        path=FINAL_REL,
        url=job.store.url(FINAL_REL),
        link=job.store.link(FINAL_REL, job.settings.link_ttl_s),
        sha256=sha,
        bytes=output.stat().st_size,
        duration=round(info.duration, 4),
        frames=info.video.frames,
        width=info.video.width,
        height=info.video.height,
        has_audio=info.audio is not None,
        method=result.method + (f" ({result.reason})" if result.reason else ""),
        joins=[JoinRecord(boundary=i + 1, **j.model_dump()) for i, j in enumerate(joins)],
        merge_s=result.seconds,
        joins_at=result.joins_at,
    )
    job.store.write_json("final.json", record)
    output.unlink(missing_ok=True)
    logger.info(
        "merge: %s, %.2f s, %d frames, %s in %.2f s",
        record.url,
        record.duration,
        record.frames,
        record.method,
        record.merge_s,
    )
    return record


class Manifest(BaseModel):
    job_id: str
    storage: str
    written_at: datetime = Field(default_factory=utcnow)
    request: dict[str, Any]
    plan: ShotPlan
    segments: list[SegmentRecord]
    handoffs: list[HandoffRecord]
    final: FinalRecord | None
    ledger: list[LedgerEntry]
    cost_usd: float = Field(..., description="Everything billed for this job, re-renders and retries included.")
    timings: dict[str, float]
    versions: dict[str, str]


def _versions() -> dict[str, str]:
    names = ("sora-extend", "prefect", "av", "moviepy", "opencv-python-headless", "fal-client", "openai")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_manifest(
    job: Job,
    plan: ShotPlan,
    segments: list[SegmentRecord],
    handoffs: dict[int, HandoffRecord],
    final: FinalRecord | None,
    timings: dict[str, float],
) -> Manifest:
    manifest = Manifest(
        job_id=job.job_id,
        storage=job.store.url(),
        request=job.request.model_dump(mode="json"),
        plan=plan,
        segments=segments,
        handoffs=[handoffs[i] for i in sorted(handoffs)],
        final=final,
        ledger=sorted(job.ledger.entries(), key=lambda e: (e.segment, e.created_at)),
        cost_usd=job.ledger.spent_usd(),
        timings=timings,
        versions=_versions(),
    )
    job.store.write_json(MANIFEST_REL, manifest)
    return manifest
