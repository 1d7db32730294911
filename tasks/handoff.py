"""Hand-off frame task: cached by the segment's hash, the target size and the guard settings."""

from __future__ import annotations

from prefect import task

from sora_extend.pipeline.handoff import extract_handoff
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import HandoffRecord, SegmentRecord
from tasks.policies import key_from
from tasks.secrets import storage_settings


def handoff_key(job: JobRef, segment: SegmentRecord, anchor: HandoffRecord | None) -> str:
    width, height = job.request.size
    anchor_sha = anchor.sha256 if anchor is not None and job.request.colour_anchor else None
    anchored = anchor_sha[:12] if anchor_sha else "raw"
    return f"handoff-{segment.sha256[:24]}-{width}x{height}-{anchored}-{job.generation}"


@task(
    name="extract-handoff-frame",
    task_run_name="extract-handoff-{segment.index:02d}",
    cache_key_fn=key_from(handoff_key),
    result_serializer="json",
    retries=2,
    retry_delay_seconds=2,
)
def extract_handoff_task(job: JobRef, segment: SegmentRecord, anchor: HandoffRecord | None) -> HandoffRecord:
    return extract_handoff(Job(job, storage_settings()), segment, job.request.size, anchor)
