"""Content keys, one function per step: exactly what determines a step's output, and nothing else.

The domain checks stored records against these keys (a match means the work is done and paid for);
the Prefect flow's one cache policy uses the same functions, so the two can never disagree. Keys hold a
version prefix and hashes, never run ids or source code, so a new run with the same inputs finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sora_extend.comfyui.workflow import user_workflow
from sora_extend.hashing import content_key
from sora_extend.pipeline.joins import plan_joins
from sora_extend.pipeline.records import ImageRecord, PaidResult
from sora_extend.pipeline.steps import (
    HandoffStep,
    KeyframeStep,
    MergeStep,
    PlanStep,
    ScoreStep,
    SegmentStep,
    WorkStep,
)
from sora_extend.quality.flaws import JUDGE_VERSION
from sora_extend.request import ExtendRequest

# Hand-off guard and colour anchoring settings: part of the hand-off frame's key.
GUARD_WINDOW = 6
BLACK_LUMA = 16.0
BLUR_RATIO = 0.5  # a frame under half the window's median sharpness counts as blurred
MAX_ANCHOR_SHIFT = 12.0  # Lab units: correct drift, never fight an intended change of look
# How the merge treats the sound (crossfades at the joins, loudness, limiter): part of the final's key, so
# a change here merges stored clips again.
SOUND_VERSION = 1


def generation_seed(base: int, index: int, take: int) -> int:
    """Different per piece and per take, stable across runs."""
    return (base + 1009 * (index - 1) + 7919 * (take - 1)) % (2**31)


def _sha(inputs: Mapping[str, Any], step_id: str | None) -> str | None:
    if not step_id:
        return None
    record = inputs[step_id]
    assert isinstance(record, ImageRecord), f"{step_id} is not an image"
    return record.sha256


def plan_key(job_id: str) -> str:
    """One plan per job: the job id already hashes everything the plan depends on."""
    return f"plan-{job_id}"


def keyframe_key(request: ExtendRequest, step: KeyframeStep, inputs: Mapping[str, Any]) -> str:
    spec = request.keyframe_spec
    assert spec is not None, "keyframe steps need a keyframe model"
    width, height = request.size
    return content_key(
        "keyframe",
        model=spec.id,
        prompt=step.still.prompt,
        size=[width, height],
        aspect=request.aspect,
        resolution=spec.size_label(width, height),
        seed=generation_seed(request.effective_seed, step.index + 1, step.take) if spec.seed_field else None,
        base=_sha(inputs, step.base),
        references=[reference.sha256 for reference in step.references],
        take=step.take,
    )


def segment_key(request: ExtendRequest, step: SegmentStep, inputs: Mapping[str, Any]) -> str:
    spec = request.spec
    width, height = request.size
    fields: dict[str, Any] = {
        "model": spec.id,
        "wire_model": spec.wire_model,
        "prompt": step.shot.prompt,
        "seconds": step.shot.seconds,
        "aspect": request.aspect,
        "resolution": request.resolution,
        "size": [width, height],
        "seed": generation_seed(request.effective_seed, step.index, step.take) if spec.seed_field else None,
        "audio": request.audio and spec.supports_audio,
        "first_frame": _sha(inputs, step.first),
        "extends": inputs[step.source].sha256 if step.source else None,
        "take": step.take,
    }
    # Added later: only present when used, so the keys of earlier chain jobs stay valid.
    last = _sha(inputs, step.last)
    if last is not None:
        fields["last_frame"] = last
    if step.references:
        fields["references"] = [reference.sha256 for reference in step.references]
    if request.comfy_workflow:  # the user's own ComfyUI graph: editing it renders the clips again
        fields["workflow"] = user_workflow(request.comfy_workflow, request.comfy_mapping).sha256
    return content_key("segment", **fields)


def handoff_key(request: ExtendRequest, step: HandoffStep, inputs: Mapping[str, Any]) -> str:
    width, height = request.size
    return content_key(
        "handoff",
        segment=inputs[step.segment].sha256,
        size=[width, height],
        window=GUARD_WINDOW,
        fit="cover",
        black=BLACK_LUMA,
        blur=BLUR_RATIO,
        anchor=_sha(inputs, step.anchor),
        anchor_cap=MAX_ANCHOR_SHIFT,
    )


def _joined_clips(request: ExtendRequest, step: MergeStep, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the clips joined by a merge step are made of: which clips, joined how, at what size."""
    joins = plan_joins(step, inputs, request.crossfade_seconds)
    width, height = request.size
    return {
        "segments": [inputs[segment].sha256 for segment in step.segments],
        "joins": [join.model_dump() for join in joins],
        "size": [width, height],
        "fps": request.spec.fps,
    }


def merge_key(request: ExtendRequest, step: MergeStep, inputs: Mapping[str, Any]) -> str:
    sound = {
        "loudness": request.loudness_lufs,
        "soundtrack": request.soundtrack,
        "score": inputs[step.score].sha256 if step.score else None,
        "crossfades": SOUND_VERSION,
    }
    return content_key("final", **_joined_clips(request, step, inputs), sound=sound)


def score_key(request: ExtendRequest, step: ScoreStep, inputs: Mapping[str, Any]) -> str:
    """A video-to-music model's score depends on the clips it is sent, a text-to-music model's on the length
    asked for; both on the model and the prompt."""
    spec = request.soundtrack_spec
    assert spec is not None, "score steps need a music model"
    made_from: dict[str, Any] = (
        {"video": _joined_clips(request, step.draft, inputs), "loudness": request.loudness_lufs}
        if step.draft
        else {"seconds": step.seconds}
    )
    return content_key("score", model=spec.id, prompt=step.prompt, take=1, **made_from)


def verdict_key(
    request: ExtendRequest, step: KeyframeStep | SegmentStep, inputs: Mapping[str, Any], record: PaidResult
) -> str:
    """A judgement: the file judged, what it was asked to be and who judged it (and how, by JUDGE_VERSION)."""
    fields: dict[str, Any] = {
        "judge_version": JUDGE_VERSION,
        "piece": record.sha256,
        "size": list(request.size),
        "judge": request.judge,
        "judge_model": request.judge_model,
        "references": [reference.sha256 for reference in step.references],
    }
    if isinstance(step, SegmentStep):
        fields |= {
            "seconds": step.shot.seconds,
            "audio": getattr(record, "audio", False),
            "first": _sha(inputs, step.first),
            "last": _sha(inputs, step.last),
            "source": inputs[step.source].sha256 if step.source else None,
            "prompt": step.shot.prompt if request.judge == "vlm" else None,
        }
    else:
        fields |= {"base": _sha(inputs, step.base), "prompt": step.still.prompt if request.judge == "vlm" else None}
    return content_key("verdict", **fields)


def gate_key(request: ExtendRequest, step: KeyframeStep | SegmentStep) -> str:
    """What the quality gate adds to a paid step's task key: which take it keeps depends on these."""
    return content_key(
        "gate",
        gate=request.quality_gate,
        max_takes=request.max_takes,
        judge=request.judge,
        judge_model=request.judge_model,
        judge_version=JUDGE_VERSION,
        pick=step.pick if isinstance(step, SegmentStep) else None,
    )


def step_key(request: ExtendRequest, job_id: str, step: PlanStep | WorkStep, inputs: Mapping[str, Any]) -> str:
    """The key of any step, by kind. A gated paid step returns the take it keeps, so its key also holds the
    gate's settings (an ungated one keeps its key from before the gate existed)."""
    if isinstance(step, PlanStep):
        return plan_key(job_id)
    gated = request.quality_gate != "off" or (isinstance(step, SegmentStep) and step.pick is not None)
    if isinstance(step, KeyframeStep | SegmentStep) and gated:
        piece = (
            keyframe_key(request, step, inputs)
            if isinstance(step, KeyframeStep)
            else segment_key(request, step, inputs)
        )
        return f"{piece}-{gate_key(request, step)}"
    if isinstance(step, KeyframeStep):
        return keyframe_key(request, step, inputs)
    if isinstance(step, SegmentStep):
        return segment_key(request, step, inputs)
    if isinstance(step, HandoffStep):
        return handoff_key(request, step, inputs)
    if isinstance(step, ScoreStep):
        return score_key(request, step, inputs)
    return merge_key(request, step, inputs)
