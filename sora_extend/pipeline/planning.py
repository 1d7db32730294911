"""Planning step: write the shot plan once per job and reuse it.

The plan fixes every segment's prompt, and prompts are part of the segments' content keys, so a
re-plan (LLMs are not deterministic) would re-render and re-pay everything. A job's plan.json is
therefore authoritative once written; start a new job (or delete plan.json) to plan again.
"""

from __future__ import annotations

import logging

from sora_extend import layout
from sora_extend.errors import ProviderError
from sora_extend.pipeline.job import Job
from sora_extend.plan import ShotPlan
from sora_extend.planners.base import Planner
from sora_extend.planners.template import TemplatePlanner
from sora_extend.request import ExtendRequest

logger = logging.getLogger(__name__)


def validate_plan(plan: ShotPlan, request: ExtendRequest) -> None:
    segments = request.segments
    if len(plan.shots) != segments:
        raise ValueError(f"the plan has {len(plan.shots)} shots, the request asks for {segments}")
    for position, shot in enumerate(plan.shots, start=1):
        if shot.index != position:
            raise ValueError(f"shot {position} is numbered {shot.index}")
        if shot.seconds != request.segment_seconds(position):
            raise ValueError(
                f"shot {position} lasts {shot.seconds} s, the request asks for {request.segment_seconds(position)} s"
            )
    if request.mode == "keyframes":
        if [still.index for still in plan.stills] != list(range(segments + 1)):
            raise ValueError(f"keyframes mode needs stills 0-{segments}, the plan has {len(plan.stills)}")
        for still in plan.stills:
            if still.edit_of is not None and still.edit_of >= still.index:
                raise ValueError(f"still {still.index} is an edit of still {still.edit_of}, which comes later")


def plan_job(job: Job, planner: Planner) -> ShotPlan:
    request = job.request
    existing = job.store.read_model(layout.PLAN, ShotPlan)
    if existing is not None:
        validate_plan(existing, request)
        logger.info(
            "plan: reusing %s (%d shots by %s)",
            job.store.url(layout.PLAN),
            len(existing.shots),
            existing.planner,
        )
        return existing
    try:
        plan = planner.plan(request)
    except ProviderError as exc:
        if not request.planner_fallback or isinstance(planner, TemplatePlanner):
            raise
        logger.warning("plan: %s failed (%s); falling back to the template planner as allowed", planner.name, exc)
        plan = TemplatePlanner().plan(request)
    validate_plan(plan, request)
    job.store.write_json(layout.PLAN, plan)
    logger.info(
        "plan: %d shots, %d s in all, by %s, stored at %s",
        len(plan.shots),
        plan.total_seconds,
        plan.planner,
        job.store.url(layout.PLAN),
    )
    return plan
