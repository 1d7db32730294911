"""Before anything is planned or paid for: keys present, estimate within budget, job folder open."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from sora_extend.comfyui.preflight import check_servers
from sora_extend.pipeline.budget import check_estimate, estimate
from sora_extend.pipeline.job import Job, JobRef, JobState, job_ref
from sora_extend.pipeline.run import fix_run_inputs, pending_work
from sora_extend.pipeline.takes import check_picks
from sora_extend.request import ExtendRequest
from tasks.secrets import settings_with_keys


@task(name="prepare-job", cache_policy=NO_CACHE)
def prepare_job(request: ExtendRequest) -> tuple[JobRef, JobState]:
    """Refuse early (missing key, over budget); open the job; apply re-render requests once per run.
    Returns the job and its state (the takes this run renders)."""
    settings = settings_with_keys(request)
    check_servers(request, settings)  # ComfyUI: refused before anything is queued
    job = Job(job_ref(request, settings), settings)
    check_picks(job)
    prices = fix_run_inputs(job)
    would_be = job.with_rerender(request.rerender, request.rerender_keyframes)
    would_be.picks |= request.picks
    pending = pending_work(job, would_be)
    check_estimate(request, already_spent=job.ledger.spent_usd(), pending=pending, prices=prices)
    ref = job.start()
    job.apply_rerender(request.rerender, request.rerender_keyframes, token=str(flow_run.get_id() or "cli"))
    state = job.apply_picks(request.picks)
    quote = estimate(request, prices)
    get_run_logger().info(
        "job %s at %s: %d x %d s on %s/%s (%s), estimate $%.2f (%s), to render now: %d segment(s), %d keyframe(s)",
        ref.job_id,
        job.store.url(),
        request.segments,
        request.seconds or 0,
        quote.provider,
        quote.model,
        f"{request.mode}, {request.mode_reason}",
        quote.total_usd,
        quote.price_source,
        pending.segments,
        pending.keyframes,
    )
    return ref, state
