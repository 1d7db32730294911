"""Request validation: every refusal names the field and the allowed values, before any spend."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sora_extend.request import ExtendRequest, explain

KOREAN = "한 마리 고양이가 서울의 밤거리를 걷는다"


def refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        ExtendRequest(**fields)
    return "\n".join(explain(caught.value))


def test_defaults_resolve_to_a_complete_offline_request() -> None:
    request = ExtendRequest(prompt=KOREAN)
    assert (request.provider, request.model, request.planner) == ("preview", "preview", "template")
    assert request.seconds == 4 and request.resolution == "720p"
    assert request.size == (1280, 720)
    assert request.total_seconds == 12


def test_model_defaults_come_from_the_catalogue() -> None:
    request = ExtendRequest(prompt="x", provider="fal")
    assert request.model == "veo31-fast"
    assert request.seconds == 8
    assert ExtendRequest(prompt="x", provider="fal", model="ltx23").resolution == "1080p"


def test_portrait_swaps_the_size() -> None:
    assert ExtendRequest(prompt="x", aspect="9:16", resolution="480p").size == (480, 854)


def test_forty_segments_and_more_are_allowed() -> None:
    assert ExtendRequest(prompt="x", segments=40).segments == 40
    assert ExtendRequest(prompt="x", segments=60).total_seconds == 240


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"prompt": ""}, "prompt: must not be empty (allowed: 1-4000 characters)"),
        ({"prompt": "   "}, "prompt: must not be empty"),
        ({"prompt": "가" * 4001}, "prompt: is 4001 characters long (allowed: 1-4000 characters)"),
        (
            {"prompt": "x", "segments": 0},
            "segments: Input should be greater than or equal to 1 (allowed: 1-60)",
        ),
        ({"prompt": "x", "segments": 61}, "segments: Input should be less than or equal to 60"),
        ({"prompt": "x", "seconds": 0}, "seconds: Input should be greater than or equal to 1"),
        ({"prompt": "x", "seconds": 21}, "seconds: 21 is not allowed for preview (allowed: 1-20)"),
        (
            {"prompt": "x", "provider": "fal", "model": "veo31", "seconds": 5},
            "seconds: 5 is not allowed for veo31 (allowed: 4, 6, 8)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "ltx23", "seconds": 7},
            "seconds: 7 is not allowed for ltx23 (allowed: 6, 8, 10)",
        ),
        ({"prompt": "x", "aspect": "4:3"}, "aspect: Input should be '16:9' or '9:16' (allowed: 16:9, 9:16)"),
        ({"prompt": "x", "resolution": "2160p"}, "resolution: 2160p is not allowed for preview"),
        (
            {"prompt": "x", "provider": "fal", "model": "veo31-fast", "resolution": "480p"},
            "resolution: 480p is not allowed for veo31-fast (allowed: 720p, 1080p, 2160p)",
        ),
        ({"prompt": "x", "provider": "runway"}, "provider: Input should be 'preview', 'fal', 'openai' or 'comfyui'"),
        (
            {"prompt": "x", "provider": "fal", "model": "dall-e"},
            "model: unknown model 'dall-e' (allowed: veo31,",
        ),
        (
            {"prompt": "x", "provider": "openai", "model": "veo31"},
            "model: 'veo31' is a fal model, not a openai",
        ),
        ({"prompt": "x", "provider": "openai", "model": "sora2"}, "model: model 'sora2' is retired"),
        ({"prompt": "x", "provider": "fal", "model": "sora2-fal"}, "Live alternatives: veo31-fast"),
        ({"prompt": "x", "planner": "gpt"}, "planner: Input should be 'template' or 'openai'"),
        (
            {"prompt": "x", "transition": "wipe"},
            "transition: Input should be 'continuous', 'crossfade', 'cut' or 'auto'",
        ),
        ({"prompt": "x", "budget_usd": -1}, "budget_usd: -1.0 is not a usable budget"),
        ({"prompt": "x", "budget_usd": float("nan")}, "budget_usd: nan is not a usable budget"),
        ({"prompt": "x", "storage": "s3://"}, "storage: 's3://' names no bucket"),
        (
            {"prompt": "x", "storage": "nosuchproto://bucket/x"},
            "storage: unsupported storage protocol 'nosuchproto://'",
        ),
        ({"prompt": "x", "storage": "   "}, "storage: must not be empty"),
        (
            {"prompt": "x", "segments": 3, "rerender": [4]},
            "rerender: segment(s) [4] do not exist (allowed: 1-3)",
        ),
        ({"prompt": "x", "rerender": [0]}, "rerender.0: Input should be greater than or equal to 1"),
        ({"prompt": "x", "seed": -5}, "seed: Input should be greater than or equal to 0"),
        (
            {"prompt": "x", "crossfade_seconds": 5},
            "crossfade_seconds: Input should be less than or equal to 2",
        ),
        ({"prompt": "x", "colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"prompt": "x", "segments": 3, "transitions": ["cut"]}, "transitions: has 1 entries for 2 joins"),
        ({"prompt": "x", "segments": 2, "transitions": ["wipe"]}, "transitions.0: Input should be 'continuous'"),
        (
            {"prompt": "x", "provider": "fal", "model": "hailuo23", "continuity": "keyframes"},
            "model: hailuo23 takes no end image, so it cannot render between keyframes (continuity 'keyframes') "
            "(allowed: veo31, veo31-fast, kling-v3-pro, kling-o3-standard, wan27, seedance2, seedance2-fast, "
            "ltx23, ltx23-fast, hailuo02)",
        ),
        (
            {"prompt": "x", "continuity": "keyframes", "keyframe_model": "veo31-fast"},
            "keyframe_model: unknown image model 'veo31-fast' ('veo31-fast' is a video model, not an image model) "
            "(allowed: preview-still, nano-banana-2, qwen-image)",
        ),
        ({"prompt": "x", "keyframe_model": "nano-banana-2"}, "keyframe_model: only applies to continuity 'keyframes'"),
        (
            {"prompt": "x", "continuity": "sideways"},
            "continuity: Input should be 'chain', 'keyframes', 'extend' or 'auto' (allowed: chain, keyframes, extend, "
            "auto)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "wan27", "continuity": "extend"},
            "model: wan27 has no extend endpoint (continuity 'extend') (allowed: veo31, veo31-fast, ltx23)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "veo31-fast", "continuity": "extend", "segments": 5},
            "segments: 5 segments make 36 s (8 s + 4 x 7 s), but veo31-fast's extensions stop at 30 s (allowed: 1-4)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "veo31", "continuity": "extend", "resolution": "1080p"},
            "resolution: veo31 extends only at 720p (allowed: 720p)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "veo31", "seconds": 8, "references": ["a.png"] * 4},
            "references: 4 images, more than veo31 takes (allowed: 0-3)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "veo31", "seconds": 4, "references": ["a.png"]},
            "seconds: veo31's reference-to-video makes 8 s clips (allowed: 8)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "wan27", "references": ["a.png"]},
            "references: wan27 has no reference-to-video endpoint (use continuity 'keyframes', or one of these models) "
            "(allowed: veo31, kling-o3-standard, seedance2, seedance2-fast)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "wan27", "continuity": "keyframes", "references": ["a"] * 14},
            "references: 14 images, more than nano-banana-2 (with keyframe 0 in every edit) takes (allowed: 0-13)",
        ),
        ({"prompt": "x", "max_parallel": 0}, "max_parallel: Input should be greater than or equal to 1"),
        (
            {"prompt": "x", "segments": 2, "continuity": "keyframes", "rerender_keyframes": [3]},
            "rerender_keyframes: keyframe(s) [3] do not exist (allowed: 0-2)",
        ),
        (
            {"prompt": "x", "provider": "fal", "model": "ltx23-fast", "seconds": 14, "resolution": "2160p"},
            "seconds: 14 is not allowed for ltx23-fast at 2160p (allowed: 6, 8, 10)",
        ),
    ],
)
def test_bad_input_is_refused_with_the_field_and_allowed_values(fields: dict[str, object], expected: str) -> None:
    assert expected in refusal(**fields)


def test_storage_urls_are_normalised(tmp_path) -> None:
    assert ExtendRequest(prompt="x", storage=str(tmp_path)).storage == f"file://{tmp_path}"
    assert ExtendRequest(prompt="x", storage="s3://bucket/prefix/").storage == "s3://bucket/prefix"
    assert ExtendRequest(prompt="x", storage="memory://jobs").storage == "memory://jobs"


def test_job_identity_ignores_budget_storage_and_rerender() -> None:
    base = ExtendRequest(prompt=KOREAN, segments=3, seconds=4)
    same = ExtendRequest(prompt=KOREAN, segments=3, seconds=4, budget_usd=1, rerender=[2], storage="memory://x")
    other = ExtendRequest(prompt=KOREAN, segments=4, seconds=4)
    assert base.job_id() == same.job_id()
    assert base.job_id() != other.job_id()
    assert ExtendRequest(prompt="A cat walks in Seoul").job_id().startswith("a-cat-walks-in-seoul-")


def test_explicit_default_and_implicit_default_are_the_same_job() -> None:
    assert ExtendRequest(prompt="x").job_id() == ExtendRequest(prompt="x", seconds=4, model="preview").job_id()


def test_seed_is_stable_per_prompt() -> None:
    assert ExtendRequest(prompt=KOREAN).effective_seed == ExtendRequest(prompt=KOREAN).effective_seed
    assert ExtendRequest(prompt=KOREAN, seed=7).effective_seed == 7


def test_json_schema_has_title_and_description_for_every_field() -> None:
    schema = ExtendRequest.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("title") and prop.get("description"), name
    positions = [schema["properties"][name]["position"] for name in ExtendRequest.model_fields]
    assert positions == sorted(positions)
