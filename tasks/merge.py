"""Merge task: stream copy where exact, re-encode only what must change."""

from __future__ import annotations

from prefect import task

from sora_extend.pipeline.assemble import merge_job
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import FinalRecord
from sora_extend.pipeline.steps import MergeStep
from tasks.policies import CONTENT_KEY
from tasks.secrets import storage_settings


@task(name="merge-segments", cache_policy=CONTENT_KEY, result_serializer="json", retries=1)
def merge_segments_task(job: JobRef, step: MergeStep, inputs: dict[str, object]) -> FinalRecord:
    return merge_job(Job(job, storage_settings()), step, inputs)
