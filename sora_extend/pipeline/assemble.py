"""Merge step and manifest: join the stored segments into final.mp4 and record everything."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.hashing import sha256_file
from sora_extend.ledger import LedgerEntry, utcnow
from sora_extend.media.loudness import spans_lufs
from sora_extend.media.merge import MergeResult, SoundPlan, merge_videos
from sora_extend.media.probe import probe
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.joins import plan_joins
from sora_extend.pipeline.keys import merge_key
from sora_extend.pipeline.records import (
    ClipSound,
    FinalRecord,
    HandoffRecord,
    ImageRecord,
    JoinRecord,
    KeyframeRecord,
    ScoreRecord,
    SegmentRecord,
    SoundRecord,
)
from sora_extend.pipeline.steps import MergeStep
from sora_extend.pipeline.takes import TakesRecord, takes_records
from sora_extend.plan import ShotPlan

logger = logging.getLogger(__name__)
RecordT = TypeVar("RecordT")


def merge_job(job: Job, step: MergeStep, inputs: Mapping[str, object]) -> FinalRecord:
    """final.mp4 from the stored segments, joined as the run's records say (see `joins.py`)."""
    segments = [inputs[segment_id] for segment_id in step.segments]
    assert all(isinstance(record, SegmentRecord) for record in segments)
    joins = plan_joins(step, inputs, job.request.crossfade_seconds)
    width, height = job.request.size
    key = merge_key(job.request, step, inputs)
    existing = job.store.read_model(layout.FINAL_RECORD, FinalRecord)
    if existing is not None and existing.key == key and job.store.size(layout.FINAL) == existing.bytes:
        logger.info("merge: %s is already up to date", job.store.url(layout.FINAL))
        return existing
    local_inputs = [job.cache.fetch(job.store, s.path, s.sha256) for s in segments]  # type: ignore[attr-defined]
    output = job.cache.scratch(job.job_id) / f"{key}.mp4"
    score = inputs[step.score] if step.score else None
    assert score is None or isinstance(score, ScoreRecord)
    sound = SoundPlan(
        loudness_lufs=job.request.loudness_lufs,
        score=job.cache.fetch(job.store, score.path, score.sha256) if score else None,
        score_only=job.request.soundtrack == "score-only",
    )
    result = merge_videos(local_inputs, output, joins, size=(width, height), fps=job.spec.fps, sound=sound)
    info = probe(output)
    assert info.video is not None
    sha = sha256_file(output)
    job.store.put_file(output, layout.FINAL)
    job.cache.adopt(output, sha)
    record = FinalRecord(
        key=key,
        path=layout.FINAL,
        url=job.store.url(layout.FINAL),
        link=job.store.link(layout.FINAL, job.settings.link_ttl_s),
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
        sound=_sound_record(output, result, segments, score),  # type: ignore[arg-type]
    )
    job.store.write_json(layout.FINAL_RECORD, record)
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


def _sound_record(
    output: Path, result: MergeResult, segments: list[SegmentRecord], score: ScoreRecord | None
) -> SoundRecord:
    """What the merge did to each clip's sound, and the loudness final.mp4 measures, whole and per segment."""
    report = result.sound
    played = sorted(report.clips, key=lambda clip: clip.clip)
    whole, after = spans_lufs(output, result.duration, [(clip.start, clip.end) for clip in played])
    clips = [
        ClipSound(segment=segments[c.clip].index, lufs_before=c.lufs, gain_db=c.gain_db, lufs_after=lufs)
        for c, lufs in zip(played, after, strict=True)
    ]
    return SoundRecord(
        soundtrack=report.soundtrack,
        target_lufs=report.target_lufs,
        lufs=whole,
        clips=clips,
        score_sha256=score.sha256 if score else None,
        score_lufs=report.score_lufs,
        mix_gain_db=report.mix_gain_db,
    )


class Manifest(BaseModel):
    job_id: str
    storage: str
    written_at: datetime = Field(default_factory=utcnow)
    status: Literal["completed", "failed"]
    error: str | None = Field(None, description="Why the run failed; every finished piece is listed and kept.")
    failed_step: str | None = None
    request: dict[str, Any]
    plan: ShotPlan | None
    continuity: str = Field("", description="The mode the run used, and why (auto).")
    references: list[ImageRecord] = Field(default_factory=list, description="The subject's reference images.")
    keyframes: list[KeyframeRecord] = Field(default_factory=list)
    score: ScoreRecord | None = Field(
        None, description="The music for the whole video (soundtrack score / score-only)."
    )
    segments: list[SegmentRecord]
    handoffs: list[HandoffRecord]
    final: FinalRecord | None
    takes: list[TakesRecord] = Field(
        default_factory=list,
        description="The quality gate, per piece it judged: every take, its verdict, the one used.",
    )
    ledger: list[LedgerEntry]
    cost_usd: float = Field(..., description="Everything billed for this job, re-renders and retries included.")
    gate_usd: float = Field(0.0, description="What the quality gate added: takes not in use and chat model verdicts.")
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


def records_of(records: Mapping[str, object], kind: type[RecordT]) -> list[RecordT]:
    """The run's records of one kind, in order."""
    found = [record for record in records.values() if isinstance(record, kind)]
    return sorted(found, key=lambda record: getattr(record, "index", getattr(record, "segment", 0)))


def write_manifest(
    job: Job,
    plan: ShotPlan | None,
    records: Mapping[str, object],
    timings: dict[str, float],
    *,
    error: str | None = None,
    failed_step: str | None = None,
) -> Manifest:
    """manifest.json: the request, the plan, every finished piece, every paid request and what it cost."""
    finals = records_of(records, FinalRecord)
    takes = takes_records(job, plan)
    manifest = Manifest(
        job_id=job.job_id,
        storage=job.store.url(),
        status="failed" if error else "completed",
        error=error,
        failed_step=failed_step,
        request=job.request.model_dump(mode="json"),
        plan=plan,
        continuity=f"{job.request.mode} ({job.request.mode_reason})",
        references=job.state().references,
        keyframes=records_of(records, KeyframeRecord),
        score=next(iter(records_of(records, ScoreRecord)), None),
        segments=records_of(records, SegmentRecord),
        handoffs=records_of(records, HandoffRecord),
        final=finals[0] if finals else None,
        takes=takes,
        gate_usd=round(sum(piece.extra_usd for piece in takes), 4),
        ledger=sorted(job.ledger.entries(), key=lambda e: (e.kind != "keyframe", e.segment, e.created_at)),
        cost_usd=job.ledger.spent_usd(),
        timings=timings,
        versions=_versions(),
    )
    job.store.write_json(layout.MANIFEST, manifest)
    return manifest
