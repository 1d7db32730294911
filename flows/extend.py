"""The main flow: prepare -> plan -> the run's steps (as the continuation mode lays them out) -> report."""

from __future__ import annotations

import re
import time
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import BaseModel

from flows.runner import PrefectRunner
from sora_extend import layout
from sora_extend.pipeline.execute import Outcome, execute
from sora_extend.pipeline.records import FinalRecord
from sora_extend.pipeline.run import graph_for, max_parallel
from sora_extend.pipeline.steps import PlanStep, RunGraph
from sora_extend.plan import ShotPlan
from sora_extend.request import ExtendRequest
from tasks.plan import plan_shots
from tasks.prepare import prepare_job
from tasks.report import Progress, publish_report
from tasks.restarts import check_restarts


class ExtendResult(BaseModel):
    job_id: str
    continuity: str
    video_url: str
    link: str
    duration: float
    segments: int
    cost_usd: float
    merge: str
    manifest_url: str


def run_name() -> str:
    """'<first words of the prompt> · 3x4s', readable in the UI's run list whatever the language."""
    request: Any = flow_run.get_parameters().get("request") or {}
    fields = request if isinstance(request, dict) else request.model_dump()
    words = re.sub(r"\s+", "-", str(fields.get("prompt", "video")).strip())
    words = re.sub(r"[^\w-]", "", words)[:40].strip("-") or "video"
    return f"{words} · {fields.get('segments', '?')}x{fields.get('seconds') or 'auto'}s"


@flow(name="extend-video", flow_run_name=run_name, validate_parameters=True)
def extend_video(request: ExtendRequest) -> ExtendResult:
    """Turn one prompt into a long video from short clips; see ExtendRequest for every option."""
    check_restarts()  # a run resumed after its worker was lost: stop here if it keeps crashing
    started = time.monotonic()
    job, state = prepare_job(request)
    plan: ShotPlan | None = None
    graph: RunGraph | None = None
    outcome = Outcome()
    try:
        plan = plan_shots(job, PlanStep(), {})
        graph = graph_for(request, plan, state)
        progress = Progress(job, len(graph.steps))
        outcome = execute(graph, PrefectRunner(job), max_parallel=max_parallel(request), on_step=progress.step)
    except BaseException as exc:  # planning failed, or the flow itself was interrupted
        outcome.error = exc
    error = f"{type(outcome.error).__name__}: {outcome.error}" if outcome.error else None
    timings = {"total_s": round(time.monotonic() - started, 3)}
    failed_step = outcome.failed.id if outcome.failed else ("plan" if plan is None and error else None)
    manifest = publish_report(job, plan, graph, outcome.records, timings, error, failed_step)
    if outcome.error is not None:
        raise outcome.error
    final = outcome.records["merge"]
    assert isinstance(final, FinalRecord)
    return ExtendResult(
        job_id=job.job_id,
        continuity=request.mode,
        video_url=final.url,
        link=final.link,
        duration=final.duration,
        segments=len(manifest.segments),
        cost_usd=manifest.cost_usd,
        merge=final.method,
        manifest_url=f"{manifest.storage}/{layout.MANIFEST}",
    )
