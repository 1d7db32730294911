"""Hand-off frame task: the guarded, colour-anchored last frame of a segment (chain mode)."""

from __future__ import annotations

from prefect import task

from sora_extend.pipeline.handoff import extract_handoff
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import HandoffRecord
from sora_extend.pipeline.steps import HandoffStep
from tasks.policies import CONTENT_KEY
from tasks.secrets import storage_settings


@task(
    name="extract-handoff-frame",
    task_run_name="extract-handoff-{step.index:02d}",
    cache_policy=CONTENT_KEY,
    result_serializer="json",
    retries=2,
    retry_delay_seconds=2,
)
def extract_handoff_task(job: JobRef, step: HandoffStep, inputs: dict[str, object]) -> HandoffRecord:
    return extract_handoff(Job(job, storage_settings()), step, inputs)
