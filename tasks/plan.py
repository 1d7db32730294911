"""Planning task: one shot plan per job (cached by the job's identity, which includes the planner)."""

from __future__ import annotations

from prefect import task

from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.planning import plan_job
from sora_extend.pipeline.steps import PlanStep
from sora_extend.plan import ShotPlan
from sora_extend.planners import get_planner
from tasks.policies import CONTENT_KEY, retry_only_transient
from tasks.secrets import settings_with_keys


@task(
    name="plan-shots",
    cache_policy=CONTENT_KEY,
    result_serializer="json",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_only_transient,
)
def plan_shots(job: JobRef, step: PlanStep, inputs: dict[str, object]) -> ShotPlan:
    settings = settings_with_keys(job.request)
    return plan_job(Job(job, settings), get_planner(job.request.planner, settings))
