"""One task run per segment. Cached by the segment's content key; the ledger underneath makes even a
cache miss (new result storage, another worker) resume the paid request instead of resubmitting."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from prefect import Task, task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from sora_extend.errors import TransientProviderError
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import HandoffRecord, SegmentRecord
from sora_extend.pipeline.segment import render_segment, segment_key
from sora_extend.plan import Shot
from sora_extend.providers import VideoProvider, get_provider
from sora_extend.settings import Settings, get_settings
from tasks.policies import key_from, retry_only_transient
from tasks.secrets import settings_with_keys

MAX_RETRY_AFTER_S = 120.0


def render_key(
    job: JobRef, shot: Shot, handoff: HandoffRecord | None, take: int, previous: SegmentRecord | None
) -> str:
    seeded_from = handoff.sha256 if handoff is not None and shot.continues_previous else None
    return f"{segment_key(job.request, shot, seeded_from, take, previous)}-{job.generation}"


@task(
    name="render-segment",
    task_run_name="render-segment-{shot.index:02d}",
    cache_key_fn=key_from(render_key),
    result_serializer="json",
    retries=4,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_only_transient,
)
def render_segment_task(
    job: JobRef, shot: Shot, handoff: HandoffRecord | None, take: int, previous: SegmentRecord | None
) -> SegmentRecord:
    settings = settings_with_keys(job.request)
    domain_job = Job(job, settings)
    provider = get_provider(domain_job.spec, settings)
    try:
        return render_segment(
            domain_job, shot, handoff, provider, take, previous, gate=provider_slot(settings, provider)
        )
    except TransientProviderError as exc:
        if exc.retry_after:  # the provider said when to come back: wait that long before the retry
            time.sleep(min(exc.retry_after, MAX_RETRY_AFTER_S))
        raise
    finally:
        provider.close()


def provider_limit_name(provider: str) -> str:
    return f"sora-extend-{provider}"


def provider_slot(settings: Settings, provider: VideoProvider) -> Callable[[], AbstractContextManager[object]]:
    """One slot of the provider's global concurrency limit per rendering segment, across all runs and workers."""
    if not settings.concurrency_limits:
        return nullcontext
    return lambda: concurrency(provider_limit_name(provider.name), occupy=1, strict=True)


def render_task_from_settings() -> Task[..., SegmentRecord]:
    """The render task with this worker's retry settings (SORA_EXTEND_RETRIES, SORA_EXTEND_RETRY_DELAY_S)."""
    settings = get_settings()
    return render_segment_task.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay_s)(settings.retries),
    )
