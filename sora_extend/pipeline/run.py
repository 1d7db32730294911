"""A whole run without Prefect, from the same pieces the flow uses: the graph for the job's mode, one
function per step kind, and the executor loop (here on threads). For scripts, tests and benchmarks.

The `extend-video` flow runs the same graph with the same step functions, each as a Prefect task.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from sora_extend import layout
from sora_extend.catalogue import ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.pipeline.assemble import merge_job
from sora_extend.pipeline.budget import Work, estimate
from sora_extend.pipeline.clip_review import review_clip
from sora_extend.pipeline.execute import Outcome, ThreadRunner, execute
from sora_extend.pipeline.generation import Gate
from sora_extend.pipeline.handoff import extract_handoff
from sora_extend.pipeline.job import Job, JobState
from sora_extend.pipeline.keyframe import keyframe_model, render_keyframe
from sora_extend.pipeline.planning import plan_job
from sora_extend.pipeline.records import KeyframeRecord, PaidResult, ScoreRecord, SegmentRecord
from sora_extend.pipeline.references import store_references
from sora_extend.pipeline.score import render_score, score_model, score_step
from sora_extend.pipeline.segment import render_segment
from sora_extend.pipeline.steps import (
    HandoffStep,
    KeyframeStep,
    MergeStep,
    RunGraph,
    ScoreStep,
    SegmentStep,
    WorkStep,
    build_graph,
)
from sora_extend.pipeline.takes import settle
from sora_extend.plan import ShotPlan
from sora_extend.planners import get_planner
from sora_extend.pricing import PriceBook, price_book_for
from sora_extend.providers import Provider, get_provider
from sora_extend.request import ExtendRequest

ProviderFactory = Callable[[ModelSpec | ImageModelSpec | MusicModelSpec], Provider]


def graph_for(request: ExtendRequest, plan: ShotPlan, state: JobState) -> RunGraph:
    """The job's run in its continuation mode, with the re-render takes, picked takes and references of `state`
    (and the takes this request picks)."""
    return build_graph(
        request.mode,
        plan,
        takes=state.takes,
        keyframe_takes=state.keyframe_takes,
        picks=state.picks | request.picks,
        colour_anchor=request.colour_anchor,
        references=tuple(state.references),
        reference_to_video=request.spec.reference is not None,
        score=score_step(request, plan),
    )


def max_parallel(request: ExtendRequest) -> int | None:
    """Paid steps in flight at once: the request's cap, else the model's default, else no cap."""
    return request.max_parallel or request.spec.max_parallel


def run_step(
    job: Job,
    step: WorkStep,
    inputs: dict[str, object],
    providers: ProviderFactory | None = None,
    gate_for: Callable[[str], Gate] | None = None,
) -> object:
    """Run one step of any kind. A paid step gets its own provider client (closed afterwards) and runs
    its provider work inside `gate_for(provider name)`, e.g. a provider-wide concurrency slot."""
    if isinstance(step, HandoffStep):
        return extract_handoff(job, step, inputs)
    if isinstance(step, MergeStep):
        return merge_job(job, step, inputs)
    spec: ModelSpec | ImageModelSpec | MusicModelSpec = job.spec
    if isinstance(step, KeyframeStep):
        spec = keyframe_model(job)
    elif isinstance(step, ScoreStep):
        spec = score_model(job)
    provider = (providers or (lambda row: get_provider(row, job.settings, job.request)))(spec)
    gate = gate_for(spec.provider) if gate_for else nullcontext

    def render(piece: KeyframeStep | SegmentStep) -> PaidResult:
        if isinstance(piece, KeyframeStep):
            return render_keyframe(job, piece, inputs, provider, gate)
        return render_segment(job, piece, inputs, provider, gate)

    try:
        if isinstance(step, ScoreStep):  # music is not judged: the gate sees pictures
            return render_score(job, step, inputs, provider, gate)
        assert isinstance(step, KeyframeStep | SegmentStep)
        record = settle(job, step, inputs, render, lambda: unrendered_usd(job))
    finally:
        provider.close()
    if isinstance(record, SegmentRecord):
        review_clip(job, record)  # as it lands, not after the merge (the judge has made it already)
    return record


def fix_run_inputs(job: Job) -> PriceBook:
    """What every worker of this run must see the same, kept in the job folder before anything is paid:
    the prices (live where a key allows) and the subject's reference images (checked, copied)."""
    book = price_book_for(job.request, job.settings)
    job.store.write_json(layout.PRICES, book)
    job.__dict__.pop("prices", None)  # Job.prices is cached: read the new book
    state = job.state()
    state.references = store_references(job)
    job.save_state(state)
    return book


def pending_work(job: Job, state: JobState | None = None) -> Work:
    """The paid pieces this run will render: those not stored at their current take, and everything made
    from them or from a segment whose take picked by hand replaces the one in use (chain: every later segment;
    keyframes: the two segments touching a keyframe)."""
    plan = job.store.read_model(layout.PLAN, ShotPlan)
    if plan is None:  # nothing planned, so nothing rendered yet
        keyframes = job.request.segments + 1 if job.request.mode == "keyframes" else 0
        return Work(segments=job.request.segments, keyframes=keyframes, scores=int(job.request.soundtrack != "clips"))
    graph = graph_for(job.request, plan, state or job.state())
    missing, swapped = set(), set()
    for step in graph.steps:
        if isinstance(step, SegmentStep):
            record = job.store.read_model(layout.segment_record(step.index), SegmentRecord)
        elif isinstance(step, KeyframeStep):
            record = job.store.read_model(layout.keyframe_record(step.index), KeyframeRecord)  # type: ignore[assignment]
        elif isinstance(step, ScoreStep):  # a score made for other clips, or another model or prompt, is stale
            score = job.store.read_model(layout.SCORE_RECORD, ScoreRecord)
            if score is None or score.model != job.request.soundtrack_model or score.prompt != step.prompt:
                missing.add(step.id)
            continue
        else:
            continue
        pick = getattr(step, "pick", None)
        if record is not None and pick is not None and record.take != pick:
            swapped.add(step.id)  # stored already; what is made from it is not
            continue
        # A gated piece may use a later take than it started from (a retake), or one picked by hand.
        wanted = record is not None and (record.take >= step.take or record.take == pick)
        if record is None or not wanted or not job.store.exists(record.path):
            missing.add(step.id)
    stale = graph.downstream(missing) | (graph.downstream(swapped) - swapped)
    return Work(
        segments=sum(isinstance(step, SegmentStep) and step.id in stale for step in graph.steps),
        keyframes=sum(isinstance(step, KeyframeStep) and step.id in stale for step in graph.steps),
        scores=sum(isinstance(step, ScoreStep) and step.id in stale for step in graph.steps),
    )


def unrendered_usd(job: Job) -> float:
    """What the run's pieces not yet submitted will cost at least (one take each): a retake must leave room in
    the budget for them."""
    pending = pending_work(job)
    flying = [e for e in job.ledger.entries() if e.state in ("submitting", "submitted")]
    work = Work(
        segments=max(0, pending.segments - sum(entry.kind == "segment" for entry in flying)),
        keyframes=max(0, pending.keyframes - sum(entry.kind == "keyframe" for entry in flying)),
    )
    return estimate(job.request, job.prices).cost_of(work)


def run_job(
    job: Job, providers: ProviderFactory | None = None, *, until: set[str] | None = None, threads: int = 8
) -> tuple[ShotPlan, Outcome]:
    """Plan (or reuse the plan), then run every step, or only what the steps in `until` need. The outcome
    holds every record and the first failure."""
    fix_run_inputs(job)
    plan = plan_job(job, get_planner(job.request.planner, job.settings))
    graph = graph_for(job.request, plan, job.state())
    with ThreadRunner(lambda step, inputs: run_step(job, step, inputs, providers), threads) as runner:
        outcome = execute(graph.only(until) if until else graph, runner, max_parallel=max_parallel(job.request))
    return plan, outcome
