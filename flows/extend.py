"""The main flow: plan -> render segment 1..N (each seeded with the previous hand-off frame) -> merge."""

from __future__ import annotations

import re
import time
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import BaseModel

from sora_extend.pipeline.records import HandoffRecord, SegmentRecord
from sora_extend.request import ExtendRequest
from tasks.handoff import extract_handoff_task
from tasks.merge import merge_segments_task
from tasks.plan import plan_shots
from tasks.prepare import prepare_job
from tasks.render import render_task_from_settings
from tasks.report import Progress, publish_report


class ExtendResult(BaseModel):
    job_id: str
    video_url: str
    link: str
    duration: float
    segments: int
    cost_usd: float
    merge: str
    manifest_url: str


def run_name() -> str:
    """'<first words of the prompt> · 3x4s', readable in the UI's run list whatever the language."""
    request: Any = flow_run.get_parameters().get("request") or {}
    fields = request if isinstance(request, dict) else request.model_dump()
    words = re.sub(r"\s+", "-", str(fields.get("prompt", "video")).strip())
    words = re.sub(r"[^\w-]", "", words)[:40].strip("-") or "video"
    return f"{words} · {fields.get('segments', '?')}x{fields.get('seconds') or 'auto'}s"


@flow(name="extend-video", flow_run_name=run_name, validate_parameters=True)
def extend_video(request: ExtendRequest) -> ExtendResult:
    """Turn one prompt into a long video by chaining short clips; see ExtendRequest for every option."""
    started = time.monotonic()
    job, takes = prepare_job(request)
    plan = plan_shots(job)
    progress = Progress(job, len(plan.shots) + 1)
    segments: list[SegmentRecord] = []
    handoffs: dict[int, HandoffRecord] = {}
    anchor: HandoffRecord | None = None
    timings: dict[str, float] = {}
    render_segment_task = render_task_from_settings()
    try:
        for shot in plan.shots:
            seed = handoffs.get(shot.index - 1) if shot.continues_previous else None
            previous = segments[-1] if segments else None
            record = render_segment_task(job, shot, seed, takes.get(shot.index, 1), previous)
            segments.append(record)
            if shot.index < len(plan.shots):
                handoffs[shot.index] = extract_handoff_task(job, record, anchor)
                anchor = anchor or handoffs[shot.index]
            progress.step(f"segment {shot.index}/{len(plan.shots)} rendered")
        final = merge_segments_task(job, plan, segments, handoffs)
        progress.step(f"merged: {final.duration:.1f} s")
    except BaseException as exc:
        timings["total_s"] = round(time.monotonic() - started, 3)
        failed_at = len(segments) + 1 if len(segments) < len(plan.shots) else None
        publish_report(job, plan, segments, handoffs, None, timings, failed_at, f"{type(exc).__name__}: {exc}")
        raise
    timings["total_s"] = round(time.monotonic() - started, 3)
    manifest_url, cost = publish_report(job, plan, segments, handoffs, final, timings)
    return ExtendResult(
        job_id=job.job_id,
        video_url=final.url,
        link=final.link,
        duration=final.duration,
        segments=len(segments),
        cost_usd=cost,
        merge=final.method,
        manifest_url=manifest_url,
    )
