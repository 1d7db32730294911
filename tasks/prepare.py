"""Before anything is planned or paid for: keys present, estimate within budget, job folder open."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from sora_extend.pipeline.budget import check_estimate, estimate, segments_to_render
from sora_extend.pipeline.job import Job, JobRef, job_ref
from sora_extend.pipeline.segment import segment_rel
from sora_extend.request import ExtendRequest
from tasks.secrets import settings_with_keys


@task(name="prepare-job", cache_policy=NO_CACHE)
def prepare_job(request: ExtendRequest) -> tuple[JobRef, dict[int, int]]:
    """Refuse early (missing key, over budget); open the job; apply re-render requests once per run."""
    settings = settings_with_keys(request)
    ref = job_ref(request, settings)
    job = Job(ref, settings)
    done = {index for index in range(1, request.segments + 1) if job.store.exists(segment_rel(index))}
    check_estimate(request, already_spent=job.ledger.spent_usd(), still_to_render=segments_to_render(request, done))
    ref = job.start()
    takes = job.apply_rerender(request.rerender, token=str(flow_run.get_id() or "cli"))
    quote = estimate(request)
    get_run_logger().info(
        "job %s at %s: %d x %d s on %s/%s, estimate $%.2f, %d segment(s) already stored",
        ref.job_id,
        job.store.url(),
        request.segments,
        request.seconds or 0,
        quote.provider,
        quote.model,
        quote.total_usd,
        len(done),
    )
    return ref, takes
