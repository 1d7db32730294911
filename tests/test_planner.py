"""The template planner: deterministic, one shot per segment, the story bible in every prompt."""

from __future__ import annotations

from sora_extend.pipeline.planning import validate_plan
from sora_extend.planners import get_planner
from sora_extend.planners.base import detect_language
from sora_extend.request import ExtendRequest

KOREAN = "한 마리 고양이가 서울의 밤거리를 걷는다"


def test_korean_prompt_plans_in_korean_with_the_bible_in_every_shot() -> None:
    request = ExtendRequest(prompt=KOREAN, segments=5, seconds=4)
    plan = get_planner("template").plan(request)
    validate_plan(plan, request)
    assert plan.language == "ko"
    assert "밤" in plan.bible.light  # night light picked from the prompt
    for shot in plan.shots:
        assert KOREAN in shot.prompt
        assert plan.bible.style in shot.prompt and plan.bible.light in shot.prompt
        assert f"장면 {shot.index}/5" in shot.prompt
    assert "이전 장면의 마지막 프레임" not in plan.shots[0].prompt
    assert all("이전 장면의 마지막 프레임" in shot.prompt for shot in plan.shots[1:])
    assert len({shot.camera for shot in plan.shots}) == 5


def test_english_and_determinism() -> None:
    request = ExtendRequest(prompt="A lighthouse keeper at sunset", segments=3, seconds=6)
    first, second = (get_planner("template").plan(request) for _ in range(2))
    assert first == second
    assert first.language == "en" and "golden-hour" in first.bible.light
    assert "Continue seamlessly from the final frame of the previous shot" in first.shots[1].prompt


def test_cut_transitions_are_planned_as_new_shots() -> None:
    plan = get_planner("template").plan(ExtendRequest(prompt="A market", segments=3, transition="cut"))
    assert [shot.transition_in for shot in plan.shots] == ["continuous", "cut", "cut"]
    assert not plan.shots[1].continues_previous
    assert "Hard cut to a new angle" in plan.shots[1].prompt


def test_english_prompt_language_switches_the_scaffolding() -> None:
    plan = get_planner("template").plan(ExtendRequest(prompt=KOREAN, prompt_language="english"))
    assert plan.language == "en" and "Shot 1/3" in plan.shots[0].prompt and KOREAN in plan.shots[0].prompt


def test_language_detection() -> None:
    assert detect_language(KOREAN) == "ko"
    assert detect_language("a cat") == "en"


def test_transitions_per_join_override_the_default() -> None:
    request = ExtendRequest(
        prompt="A harbour", segments=4, transition="cut", transitions=["continuous", "crossfade", "cut"]
    )
    plan = get_planner("template").plan(request)
    assert [shot.transition_in for shot in plan.shots] == ["continuous", "continuous", "crossfade", "cut"]
    assert [shot.continues_previous for shot in plan.shots] == [False, True, True, False]
