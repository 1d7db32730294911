"""Merge task: stream copy where exact, re-encode otherwise; cached by the segments' hashes."""

from __future__ import annotations

from prefect import task

from sora_extend.hashing import content_key
from sora_extend.pipeline.assemble import merge_job
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import FinalRecord, HandoffRecord, SegmentRecord
from sora_extend.plan import ShotPlan
from tasks.policies import key_from
from tasks.secrets import storage_settings


def merge_key(job: JobRef, plan: ShotPlan, segments: list[SegmentRecord], handoffs: dict[int, HandoffRecord]) -> str:
    return content_key(
        "merge-task",
        job=job.job_id,
        generation=job.generation,
        segments=[s.sha256 for s in segments],
        handoffs=[handoffs[i].sha256 for i in sorted(handoffs)],
        transitions=[shot.transition_in for shot in plan.shots],
        crossfade=job.request.crossfade_seconds,
    )


@task(name="merge-segments", cache_key_fn=key_from(merge_key), result_serializer="json", retries=1)
def merge_segments_task(
    job: JobRef, plan: ShotPlan, segments: list[SegmentRecord], handoffs: dict[int, HandoffRecord]
) -> FinalRecord:
    return merge_job(Job(job, storage_settings()), plan, segments, handoffs)
