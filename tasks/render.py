"""The paid tasks: one task run per keyframe still, per segment and for the score. Cached by the step's
content key; the ledger underneath makes even a cache miss (new result storage, another worker) resume the
paid request instead of resubmitting it."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from prefect import Task, task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from sora_extend.errors import TransientProviderError
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import KeyframeRecord, ScoreRecord, SegmentRecord
from sora_extend.pipeline.run import run_step
from sora_extend.pipeline.steps import KeyframeStep, ScoreStep, SegmentStep
from sora_extend.settings import Settings, get_settings
from tasks.policies import CONTENT_KEY, retry_only_transient
from tasks.secrets import settings_with_keys

MAX_RETRY_AFTER_S = 120.0
# A held slot's lease is renewed (every 3/4 of it) while its holder lives; a lost worker's slots return when
# it runs out, plus the server's 15 s sweep: about 2 minutes instead of Prefect's default 5, with 30 s of slack
# for a renewal on a busy machine.
SLOT_LEASE_S = 120.0
PAID = {
    "cache_policy": CONTENT_KEY,
    "result_serializer": "json",
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_only_transient,
}
TaskT = TypeVar("TaskT", bound=Task[..., Any])


def provider_limit_name(provider: str) -> str:
    return f"sora-extend-{provider}"


def provider_slot(settings: Settings) -> Callable[[str], Callable[[], AbstractContextManager[object]]]:
    """Per provider: one slot of its global concurrency limit per generation in flight, across every run
    and worker (when SORA_EXTEND_CONCURRENCY_LIMITS is on)."""

    def gate(provider: str) -> Callable[[], AbstractContextManager[object]]:
        if not settings.concurrency_limits:
            return nullcontext
        return lambda: concurrency(provider_limit_name(provider), occupy=1, strict=True, lease_duration=SLOT_LEASE_S)

    return gate


def _render(job: JobRef, step: KeyframeStep | SegmentStep | ScoreStep, inputs: dict[str, object]) -> object:
    settings = settings_with_keys(job.request)
    try:
        return run_step(Job(job, settings), step, inputs, gate_for=provider_slot(settings))
    except TransientProviderError as exc:
        if exc.retry_after:  # the provider said when to come back: wait that long before the retry
            time.sleep(min(exc.retry_after, MAX_RETRY_AFTER_S))
        raise


@task(name="render-keyframe", task_run_name="render-keyframe-{step.index:02d}", **PAID)  # type: ignore[call-overload]
def render_keyframe_task(job: JobRef, step: KeyframeStep, inputs: dict[str, object]) -> KeyframeRecord:
    return _render(job, step, inputs)  # type: ignore[return-value]


@task(name="render-segment", task_run_name="render-segment-{step.index:02d}", **PAID)  # type: ignore[call-overload]
def render_segment_task(job: JobRef, step: SegmentStep, inputs: dict[str, object]) -> SegmentRecord:
    return _render(job, step, inputs)  # type: ignore[return-value]


@task(name="render-score", task_run_name="render-score", **PAID)  # type: ignore[call-overload]
def render_score_task(job: JobRef, step: ScoreStep, inputs: dict[str, object]) -> ScoreRecord:
    return _render(job, step, inputs)  # type: ignore[return-value]


def with_retry_settings(paid_task: TaskT) -> TaskT:
    """A paid task with this worker's retry settings (SORA_EXTEND_RETRIES, SORA_EXTEND_RETRY_DELAY_S)."""
    settings = get_settings()
    return paid_task.with_options(  # type: ignore[return-value]
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay_s)(settings.retries),
    )
