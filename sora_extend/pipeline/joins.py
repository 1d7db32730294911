"""How each pair of segments is joined in the merge, decided from the records of the run."""

from __future__ import annotations

from collections.abc import Mapping

from sora_extend.media.joins import JoinPlan
from sora_extend.pipeline.records import HandoffRecord, ImageRecord, KeyframeRecord, SegmentRecord
from sora_extend.pipeline.steps import MergeStep


def plan_joins(step: MergeStep, inputs: Mapping[str, object], crossfade_s: float) -> list[JoinPlan]:
    """Per join: whether both clips show the same still there (then each copy is shown for half a frame),
    how many tail frames the hand-off guard cut, and the crossfade."""
    joins = []
    for boundary, (transition, shared_id) in enumerate(zip(step.transitions, step.joins, strict=True), start=1):
        before = inputs[step.segments[boundary - 1]]
        after = inputs[step.segments[boundary]]
        shared = inputs[shared_id] if shared_id else None
        assert isinstance(before, SegmentRecord) and isinstance(after, SegmentRecord)
        joined = isinstance(shared, ImageRecord) and after.seeded_from_sha256 == shared.sha256
        if isinstance(shared, KeyframeRecord):
            joined = joined and before.ends_on_sha256 == shared.sha256
        # After a trim, the hand-off frame is also the last frame the earlier clip shows.
        trim = shared.from_end if joined and isinstance(shared, HandoffRecord) else 0
        joins.append(
            JoinPlan(
                transition=transition,
                dedupe_first_frame=transition == "continuous" and joined,
                trim_tail_frames=trim,
                crossfade_s=crossfade_s if transition == "crossfade" else 0.0,
            )
        )
    return joins
