"""The quality gate around a paid piece: render a take, judge it, render another take while it is flawed
(and the request allows: gate `retake`, `max_takes`, the budget), keep the best one.

Every take is a new paid intent with its own content key (the take number is part of it, and gives the
model a new seed), so a retake is never a resubmission of the take before it, and a rerun finds every take
and every verdict in storage and pays for nothing. The take in use is `segments/NN.*` (`keyframes/NN.*`);
the others are kept in `history/`. `NN-takes.json` says which takes there are, what the judge found in each
and why the one in use was kept.

It runs inside the piece's own step, before anything that consumes the piece can start: in keyframes mode a
flawed still is retaken before any clip is rendered from it, in chain and extend modes a flawed clip before
the next clip starts from it, and a retaken clip re-renders only itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.errors import BudgetExceededError, InputError, TerminalProviderError
from sora_extend.events import emit
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.judge import Piece, judge_piece
from sora_extend.pipeline.records import KeyframeRecord, PaidResult, SegmentRecord
from sora_extend.pipeline.steps import SegmentStep
from sora_extend.pipeline.stored import all_takes, keep_earlier_take
from sora_extend.plan import ShotPlan
from sora_extend.quality.verdict import Verdict, best

logger = logging.getLogger(__name__)
RecordT = TypeVar("RecordT", bound=PaidResult)


class TakeView(BaseModel):
    take: int
    path: str = Field(..., description="Where the take's file is now (the piece's own path when it is in use).")
    sha256: str
    request_id: str
    cost_usd: float
    verdict: Verdict


class TakesRecord(BaseModel):
    """What the quality gate did with one piece."""

    piece: str
    index: int
    kind: Literal["segment", "keyframe"]
    gate: str = Field(..., description="report or retake.")
    takes: list[TakeView]
    used: int = Field(..., description="The take in the video.")
    note: str = Field(..., description="Why that take, in plain words.")

    @property
    def in_use(self) -> TakeView:
        return next(take for take in self.takes if take.take == self.used)

    @property
    def extra_usd(self) -> float:
        """What the takes not in use cost, and every chat model verdict."""
        unused = sum(take.cost_usd for take in self.takes if take.take != self.used)
        return round(unused + sum(take.verdict.cost_usd for take in self.takes), 4)


def _paths(step: Piece) -> tuple[str, str, str, type[PaidResult]]:
    """The piece's record, its file, its takes record and its record type."""
    if isinstance(step, SegmentStep):
        return (
            layout.segment_record(step.index),
            layout.segment(step.index),
            layout.segment_takes(step.index),
            SegmentRecord,
        )
    return (
        layout.keyframe_record(step.index),
        layout.keyframe(step.index),
        layout.keyframe_takes(step.index),
        KeyframeRecord,
    )


def history_dir(step: Piece) -> str:
    return layout.SEGMENT_HISTORY_DIR if isinstance(step, SegmentStep) else layout.KEYFRAME_HISTORY_DIR


def put_in_use(job: Job, step: Piece, record: RecordT) -> RecordT:
    """Make a stored take the one in use (`NN.*`); the take in use before goes to history."""
    record_rel, file_rel, _, model = _paths(step)
    current = job.store.read_model(record_rel, model)
    if current is not None and current.take == record.take and current.path == file_rel:
        return current  # type: ignore[return-value]
    keep_earlier_take(job, record_rel, model, history_dir(step))
    job.store.move(record.path, file_rel)
    in_use = record.model_copy(update={"path": file_rel})
    job.store.write_json(record_rel, in_use)
    job.store.delete(record.path.rsplit(".", 1)[0] + ".json")
    return in_use


def stored_takes(job: Job, step: Piece, take: int | None = None) -> list[PaidResult]:
    """The piece's stored takes (the one in use first), or only those numbered `take`."""
    record_rel, _, _, model = _paths(step)
    return [record for record in all_takes(job, record_rel, model, history_dir(step)) if take in (None, record.take)]


def _finish(job: Job, step: Piece, verdicts: list[Verdict], chosen: Verdict, note: str) -> PaidResult:
    """Put the chosen take in use and write the piece's takes record."""
    in_use = put_in_use(job, step, stored_takes(job, step, chosen.take)[0])
    where = {record.take: record for record in stored_takes(job, step)}  # after the move
    _, _, takes_rel, _ = _paths(step)
    kind: Literal["segment", "keyframe"] = "segment" if isinstance(step, SegmentStep) else "keyframe"
    views = [
        TakeView(
            take=verdict.take,
            path=where[verdict.take].path,
            sha256=verdict.sha256,
            request_id=where[verdict.take].request_id,
            cost_usd=where[verdict.take].cost_usd,
            verdict=verdict,
        )
        for verdict in verdicts
    ]
    record = TakesRecord(
        piece=step.id,
        index=step.index,
        kind=kind,
        gate=job.request.quality_gate,
        takes=views,
        used=in_use.take,
        note=note,
    )
    job.store.write_json(takes_rel, record)
    logger.info("%s: take %d in use (%s)", step.id, in_use.take, note)
    return in_use


def _picked(job: Job, step: SegmentStep, inputs: Mapping[str, object], take: int) -> PaidResult:
    """Put a stored take in by hand; the takes judged before stay listed beside it."""
    found = stored_takes(job, step, take)
    if not found:
        raise InputError("use_takes", f"segment {step.index} has no stored take {take}", _numbers(job, step.index))
    chosen = judge_piece(job, step.model_copy(update={"take": take}), inputs, found[0])
    earlier = job.store.read_model(_paths(step)[2], TakesRecord)
    verdicts = [view.verdict for view in earlier.takes if view.take != take] if earlier else []
    verdicts = sorted([*verdicts, chosen], key=lambda verdict: verdict.take)
    return _finish(job, step, verdicts, chosen, "picked by hand")


def _numbers(job: Job, segment: int) -> str:
    """The stored takes of a segment, in words."""
    record_rel = layout.segment_record(segment)
    takes = sorted({record.take for record in all_takes(job, record_rel, SegmentRecord, layout.SEGMENT_HISTORY_DIR)})
    return ", ".join(str(take) for take in takes) or "none rendered yet"


def check_picks(job: Job) -> None:
    """Refuse a take picked by hand (use_takes) that is not in storage, before anything starts."""
    for segment, take in job.request.picks.items():
        stored = _numbers(job, segment)
        if str(take) not in stored.split(", "):
            raise InputError("use_takes", f"segment {segment} has no stored take {take}", stored)


def settle(
    job: Job,
    step: Piece,
    inputs: Mapping[str, object],
    render: Callable[[Piece], PaidResult],
    unrendered_usd: Callable[[], float] = lambda: 0.0,
) -> PaidResult:
    """The take of `step` to use: rendered (or found), judged, retaken while flawed and allowed. A retake must
    leave room in the budget for the pieces not yet rendered (`unrendered_usd`): the run is not starved of
    them to polish one piece."""
    request = job.request
    picked = isinstance(step, SegmentStep) and step.pick is not None
    if request.quality_gate == "off" and not picked:
        return render(step)
    hold = request.max_takes * (job.settings.poll_timeout_s + 600)
    with job.lock(f"takes-{job.job_id}-{step.id}", hold_s=hold):  # two runs of one job: one judges, one reads
        if isinstance(step, SegmentStep) and step.pick is not None:
            return _picked(job, step, inputs, step.pick)
        last = step.take + (request.max_takes - 1 if request.quality_gate == "retake" else 0)
        verdicts: list[Verdict] = []
        records: list[PaidResult] = []
        note = ""
        for number in range(step.take, last + 1):
            this = step.model_copy(update={"take": number})
            if verdicts and stored_takes(job, step, number) == []:
                note = _unaffordable(job, number, verdicts[-1], records[-1].cost_usd, unrendered_usd)
                if note:
                    break
            try:
                record = render(this)
            except (BudgetExceededError, TerminalProviderError) as exc:
                if not verdicts:
                    raise
                note = f"take {number} was not rendered: {exc}"
                logger.warning("%s: %s", step.id, note)
                break
            verdict = judge_piece(job, this, inputs, record)
            verdicts.append(verdict)
            records.append(record)
            if verdict.passed:
                break
            retake = number < last
            emit(step.id, "flawed", detail=f"{verdict.headline} → take {number + 1}" if retake else verdict.headline)
        chosen = best(verdicts)
        return _finish(job, step, verdicts, chosen, _why(request.quality_gate, verdicts, chosen, note))


def _unaffordable(job: Job, number: int, flawed: Verdict, price: float, unrendered_usd: Callable[[], float]) -> str:
    """Why take `number` would pass the budget ('' when it fits), leaving the pieces still to render room."""
    budget = job.request.budget_usd
    if budget is None:
        return ""
    committed, reserved = job.ledger.committed_usd(), unrendered_usd()
    if committed + price + reserved <= budget + 1e-9:
        return ""
    note = (
        f"take {number} was not rendered: it would pass the budget (${committed:.2f} spent, ${price:.2f} for the "
        f"retake and ${reserved:.2f} kept for the pieces still to render, budget ${budget:.2f})"
    )
    logger.warning("%s: %s; %s stays", flawed.piece, note, f"take {flawed.take} ({flawed.headline})")
    return note


def _why(gate: str, verdicts: list[Verdict], chosen: Verdict, note: str) -> str:
    """Why the take in use was kept, in plain words."""
    takes = verdicts
    flawed = "; ".join(f"take {verdict.take}: {verdict.headline}" for verdict in verdicts if not verdict.passed)
    if chosen.passed:
        words = "clean" if len(takes) == 1 else f"take {chosen.take} is clean ({flawed})"
    elif gate == "report":
        words = f"flawed: {chosen.headline} (quality gate 'report': not retaken)"
    elif len(takes) == 1 and not note:
        words = f"flawed: {chosen.headline} (max_takes 1: not retaken)"
    else:
        words = f"every take is flawed ({flawed}): kept take {chosen.take}, the best"
    return f"{words}; {note}" if note else words


def takes_records(job: Job, plan: ShotPlan | None) -> list[TakesRecord]:
    """What the gate did with every piece of the plan that it judged (keyframes first, in order)."""
    if plan is None:
        return []
    rels = [layout.keyframe_takes(still.index) for still in plan.stills]
    rels += [layout.segment_takes(shot.index) for shot in plan.shots]
    found = [job.store.read_model(rel, TakesRecord) for rel in rels]
    return [record for record in found if record is not None]
