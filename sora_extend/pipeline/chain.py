"""The whole chain without Prefect: render each segment from the previous hand-off frame.

The `extend-video` flow runs the same steps as separate tasks (for caching, retries and the UI);
this is the plain-library form, for scripts, notebooks, tests and benchmarks.
"""

from __future__ import annotations

from sora_extend.pipeline.handoff import extract_handoff
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import HandoffRecord, SegmentRecord
from sora_extend.pipeline.segment import render_segment
from sora_extend.plan import ShotPlan
from sora_extend.providers.base import VideoProvider


def render_chain(
    job: Job, plan: ShotPlan, provider: VideoProvider
) -> tuple[list[SegmentRecord], dict[int, HandoffRecord]]:
    segments: list[SegmentRecord] = []
    handoffs: dict[int, HandoffRecord] = {}
    anchor: HandoffRecord | None = None
    for shot in plan.shots:
        seed = handoffs.get(shot.index - 1) if shot.continues_previous else None
        previous = segments[-1] if segments else None
        segments.append(render_segment(job, shot, seed, provider, job.take(shot.index), previous))
        if shot.index < len(plan.shots):
            handoffs[shot.index] = extract_handoff(job, segments[-1], job.request.size, anchor)
            anchor = anchor or handoffs[shot.index]
    return segments, handoffs
