"""The description of a run: which steps, what each one is made from, and so which may run at once.

A continuation mode is a strategy that turns the shot plan into this graph; one executor runs any
graph (the Prefect flow with tasks, tests and benchmarks with threads). A step names the steps whose
records it consumes by id; a step may start once all of them are done.

    chain:      segment-01 -> handoff-01 -> segment-02 -> handoff-02 -> segment-03 -> merge
    keyframes:  keyframe-00 -> keyframe-01..N (edits of 00, at once) -> segment-01..N (at once) -> merge
    extend:     segment-01 -> segment-02 (continues 01) -> segment-03 (continues 02) -> merge

With a score (soundtrack score / score-only) one more paid step feeds the merge: `score`, which needs what
the merge needs (a video-to-music model is sent the clips joined as the merge joins them), or nothing at
all (a text-to-music model writes from the plan's mood while the clips render).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from sora_extend.pipeline.records import ImageRecord
from sora_extend.plan import Shot, ShotPlan, Still
from sora_extend.request import Continuity


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int

    @property
    def needs(self) -> tuple[str, ...]:
        return ()

    @property
    def paid(self) -> bool:
        """Whether running it may call a paid provider (counts against the run's parallelism cap)."""
        return False


class PlanStep(_Step):
    kind: Literal["plan"] = "plan"
    index: int = 0

    @property
    def id(self) -> str:
        return "plan"


class KeyframeStep(_Step):
    kind: Literal["keyframe"] = "keyframe"
    take: int = 1
    still: Still
    base: str | None = Field(None, description="The keyframe step this still is an edit of.")
    references: tuple[ImageRecord, ...] = Field((), description="The subject's reference images, sent along.")

    @property
    def id(self) -> str:
        return keyframe_id(self.index)

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.base,) if self.base else ()

    @property
    def paid(self) -> bool:
        return True


class SegmentStep(_Step):
    kind: Literal["segment"] = "segment"
    take: int = 1
    shot: Shot
    first: str | None = Field(None, description="The step whose image the clip starts on (hand-off or keyframe).")
    last: str | None = Field(None, description="The keyframe step whose image the clip ends on.")
    source: str | None = Field(None, description="extend: the segment step whose clip this one continues.")
    references: tuple[ImageRecord, ...] = Field((), description="Reference-to-video: the subject's images.")
    pick: int | None = Field(None, description="The stored take picked by hand (use_takes), instead of judging.")

    @property
    def id(self) -> str:
        return segment_id(self.index)

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(step for step in (self.first, self.last, self.source) if step)

    @property
    def paid(self) -> bool:
        return True


class HandoffStep(_Step):
    kind: Literal["handoff"] = "handoff"
    segment: str
    anchor: str | None = Field(None, description="The hand-off frame whose colours this one is matched to.")

    @property
    def id(self) -> str:
        return handoff_id(self.index)

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.segment, self.anchor) if self.anchor else (self.segment,)


class MergeStep(_Step):
    kind: Literal["merge"] = "merge"
    index: int = 0
    segments: tuple[str, ...]
    joins: tuple[str, ...] = Field(
        ..., description="Per join, the step whose image both sides share (hand-off or keyframe), '' if none."
    )
    transitions: tuple[Literal["continuous", "crossfade", "cut"], ...]
    score: str | None = Field(None, description="The score step whose music goes under (or instead of) the clips.")

    @property
    def id(self) -> str:
        return "merge"

    @property
    def needs(self) -> tuple[str, ...]:
        return (*self.segments, *(join for join in self.joins if join), *((self.score,) if self.score else ()))


class ScoreStep(_Step):
    """One piece of music for the whole video."""

    kind: Literal["score"] = "score"
    index: int = 0
    prompt: str = Field(..., description="What the music should be like.")
    seconds: float = Field(..., gt=0, description="How long the planned video is (the music is cut to the merge).")
    scores_video: bool = Field(False, description="A video-to-music model: it is sent the joined clips.")
    draft: MergeStep | None = Field(None, description="video-to-music: the clips, joined as the merge joins them.")

    @property
    def id(self) -> str:
        return SCORE_ID

    @property
    def needs(self) -> tuple[str, ...]:
        return self.draft.needs if self.draft else ()

    @property
    def paid(self) -> bool:
        return True


SCORE_ID = "score"
Step = Annotated[
    PlanStep | KeyframeStep | SegmentStep | HandoffStep | ScoreStep | MergeStep, Field(discriminator="kind")
]
WorkStep = KeyframeStep | SegmentStep | HandoffStep | ScoreStep | MergeStep


def keyframe_id(index: int) -> str:
    return f"keyframe-{index:02d}"


def segment_id(index: int) -> str:
    return f"segment-{index:02d}"


def handoff_id(index: int) -> str:
    return f"handoff-{index:02d}"


class RunGraph(BaseModel):
    """Every step of one run, each after the steps it needs (a valid order to run them one by one)."""

    model_config = ConfigDict(frozen=True)

    continuity: Continuity
    steps: tuple[Annotated[WorkStep, Field(discriminator="kind")], ...]

    def __getitem__(self, step_id: str) -> WorkStep:
        return next(step for step in self.steps if step.id == step_id)

    @property
    def merge(self) -> MergeStep:
        return next(step for step in self.steps if isinstance(step, MergeStep))

    def of_kind(self, kind: str) -> list[WorkStep]:
        return [step for step in self.steps if step.kind == kind]

    def upstream(self, step_ids: set[str]) -> set[str]:
        """These steps and every step whose record they consume, directly or not."""
        found = set(step_ids)
        for step in reversed(self.steps):  # consumers come after what they consume
            if step.id in found:
                found.update(step.needs)
        return found

    def only(self, step_ids: set[str]) -> RunGraph:
        """The part of the run that produces these steps' records: them and what they need."""
        keep = self.upstream(step_ids)
        return self.model_copy(update={"steps": tuple(step for step in self.steps if step.id in keep)})

    def downstream(self, step_ids: set[str]) -> set[str]:
        """These steps and every step that consumes what they produce, directly or not."""
        found = set(step_ids)
        for step in self.steps:  # in dependency order, so one pass is enough
            if found.intersection(step.needs):
                found.add(step.id)
        return found


def build_graph(
    continuity: Continuity,
    plan: ShotPlan,
    *,
    takes: dict[int, int] | None = None,
    keyframe_takes: dict[int, int] | None = None,
    picks: dict[int, int] | None = None,
    colour_anchor: bool = True,
    references: tuple[ImageRecord, ...] = (),
    reference_to_video: bool = False,
    score: ScoreStep | None = None,
) -> RunGraph:
    """The run for a plan in the given continuation mode. `takes` are the re-render takes per segment, `picks`
    the takes picked by hand; `references` go to every keyframe (keyframes) or, when the model has
    `reference_to_video`, to the shots that start from nothing (segment 1 and every cut); `score`, the music
    step when there is one."""
    takes = takes or {}
    if continuity == "keyframes":
        graph = _keyframes(plan, takes, keyframe_takes or {}, references)
    elif continuity == "chain":
        graph = _chain(plan, takes, colour_anchor, references if reference_to_video else ())
    else:
        graph = _extend(plan, takes, references if reference_to_video else ())
    if picks:
        steps = tuple(
            step.model_copy(update={"pick": picks[step.index]})
            if isinstance(step, SegmentStep) and step.index in picks
            else step
            for step in graph.steps
        )
        graph = graph.model_copy(update={"steps": steps})
    return _with_score(graph, score) if score is not None else graph


def _with_score(graph: RunGraph, score: ScoreStep) -> RunGraph:
    """The score step just before the merge, which then mixes its music in."""
    merge = graph.merge
    steps = [step for step in graph.steps if step is not merge]
    steps += [score.model_copy(update={"draft": merge if score.scores_video else None})]
    steps.append(merge.model_copy(update={"score": score.id}))
    return graph.model_copy(update={"steps": tuple(steps)})


def _chain(plan: ShotPlan, takes: dict[int, int], colour_anchor: bool, opening: tuple[ImageRecord, ...]) -> RunGraph:
    steps: list[WorkStep] = []
    joins: list[str] = []
    last = len(plan.shots)
    for shot in plan.shots:
        first = handoff_id(shot.index - 1) if shot.continues_previous else None
        refs = opening if first is None else ()
        steps.append(
            SegmentStep(index=shot.index, take=takes.get(shot.index, 1), shot=shot, first=first, references=refs)
        )
        if shot.index > 1:
            joins.append(first or "")
        if shot.index < last:
            # Every hand-off frame is colour-matched to the first one, so drift cannot compound hop by hop.
            anchor = handoff_id(1) if colour_anchor and shot.index > 1 else None
            steps.append(HandoffStep(index=shot.index, segment=segment_id(shot.index), anchor=anchor))
    steps.append(_merge(plan, joins))
    return RunGraph(continuity="chain", steps=tuple(steps))


def _extend(plan: ShotPlan, takes: dict[int, int], opening: tuple[ImageRecord, ...]) -> RunGraph:
    steps: list[WorkStep] = []
    for shot in plan.shots:
        source = segment_id(shot.index - 1) if shot.continues_previous else None
        refs = opening if source is None else ()
        steps.append(
            SegmentStep(index=shot.index, take=takes.get(shot.index, 1), shot=shot, source=source, references=refs)
        )
    # The model continues its own video: no still is shared at a join, nothing shows twice.
    steps.append(_merge(plan, ["" for _ in plan.shots[1:]]))
    return RunGraph(continuity="extend", steps=tuple(steps))


def _keyframes(
    plan: ShotPlan, takes: dict[int, int], keyframe_takes: dict[int, int], references: tuple[ImageRecord, ...]
) -> RunGraph:
    if len(plan.stills) != len(plan.shots) + 1:
        raise ValueError(f"keyframes mode needs {len(plan.shots) + 1} stills, the plan has {len(plan.stills)}")
    steps: list[WorkStep] = []
    for still in plan.stills:
        base = keyframe_id(still.edit_of) if still.edit_of is not None else None
        take = keyframe_takes.get(still.index, 1)
        steps.append(KeyframeStep(index=still.index, take=take, still=still, base=base, references=references))
    joins: list[str] = []
    for shot in plan.shots:
        # A cut is a new shot: the clip before it ends freely, the one after starts on the boundary still.
        cut_after = shot.index < len(plan.shots) and plan.shots[shot.index].transition_in == "cut"
        last = None if cut_after else keyframe_id(shot.index)
        step = SegmentStep(
            index=shot.index, take=takes.get(shot.index, 1), shot=shot, first=keyframe_id(shot.index - 1), last=last
        )
        steps.append(step)
        if shot.index > 1:
            joins.append("" if shot.transition_in == "cut" else keyframe_id(shot.index - 1))
    steps.append(_merge(plan, joins))
    return RunGraph(continuity="keyframes", steps=tuple(steps))


def _merge(plan: ShotPlan, joins: list[str]) -> MergeStep:
    return MergeStep(
        segments=tuple(segment_id(shot.index) for shot in plan.shots),
        joins=tuple(joins),
        transitions=tuple(shot.transition_in for shot in plan.shots[1:]),
    )
