"""What a request may ask of the quality gate, checked with the rest of the request (one `error:` line
naming the field and what is allowed, before anything is spent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_extend.catalogue import DEFAULT_JUDGE_MODEL, load_catalogue
from sora_extend.errors import InputError

if TYPE_CHECKING:
    from sora_extend.request import ExtendRequest


def check_gate(request: ExtendRequest) -> None:
    """Judge settings that fit together, a judge model that exists and sees images, picks of real segments.
    Fills the default judge model in for `judge vlm`."""
    if request.judge == "vlm":
        if request.quality_gate == "off":
            raise InputError(
                "judge", "the quality gate is off, so nothing is judged", "pixels, or quality_gate report/retake"
            )
        request.judge_model = load_catalogue().judge(request.judge_model or DEFAULT_JUDGE_MODEL).id
    elif request.judge_model is not None:
        raise InputError("judge_model", "only applies to judge 'vlm'")
    picks: dict[int, int] = {}
    for pick in request.use_takes:
        segment, take = (int(part) for part in pick.split("="))
        if segment > request.segments:
            raise InputError(
                "use_takes", f"segment {segment} does not exist", f"SEGMENT=TAKE with SEGMENT 1-{request.segments}"
            )
        if picks.setdefault(segment, take) != take:
            raise InputError("use_takes", f"segment {segment} is given two takes", "one SEGMENT=TAKE per segment")
    overlap = sorted(set(picks) & set(request.rerender))
    if overlap:
        raise InputError(
            "use_takes",
            f"segment(s) {overlap} are also asked to be re-rendered",
            "a segment either picks a stored take or renders a new one",
        )
