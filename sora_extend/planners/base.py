"""The planner interface, the prompt composition every planner shares, and the planner registry."""

from __future__ import annotations

import re
from typing import NamedTuple, Protocol

from sora_extend.plan import Shot, ShotPlan, StoryBible, Transition
from sora_extend.request import ExtendRequest
from sora_extend.settings import Settings, get_settings

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")

_CONTINUE = {
    "ko": "이전 장면의 마지막 프레임에서 끊김 없이 이어서 시작한다. 같은 인물, 의상, 구도, 조명을 유지한다.",
    "en": "Continue seamlessly from the final frame of the previous shot; keep the same characters, "
    "wardrobe, framing and light.",
}
_CUT = {
    "ko": "새로운 앵글로 컷 전환하되 같은 이야기와 인물을 유지한다.",
    "en": "Hard cut to a new angle of the same story and characters.",
}
_SHOT = {"ko": "장면 {index}/{total}", "en": "Shot {index}/{total}"}


class Planner(Protocol):
    name: str

    def plan(self, request: ExtendRequest) -> ShotPlan: ...


def detect_language(text: str) -> str:
    """'ko' when the text contains Hangul, else 'en'. Enough to pick the template's phrasing."""
    return "ko" if _HANGUL.search(text) else "en"


def compose_prompt(
    bible: StoryBible,
    *,
    index: int,
    total: int,
    action: str,
    camera: str,
    transition_in: Transition,
    language: str,
) -> str:
    """The full provider prompt for one shot: story bible, shot beat, and how it joins the previous one."""
    lang = "ko" if language == "ko" else "en"
    parts = [bible.render(lang) + ".", _SHOT[lang].format(index=index, total=total) + ":"]
    if camera:
        parts.append(camera.rstrip(".") + ".")
    parts.append(action.rstrip(".") + ".")
    if index > 1:
        parts.append(_CUT[lang] if transition_in == "cut" else _CONTINUE[lang])
    return " ".join(parts)


class Beat(NamedTuple):
    """What a planner decides for one shot; the prompt itself is composed here, the same for all."""

    action: str
    camera: str
    transition: str = "continuous"  # the planner's proposal, used when the request says "auto"


def assemble_plan(
    request: ExtendRequest, *, title: str, language: str, planner: str, bible: StoryBible, beats: list[Beat]
) -> ShotPlan:
    shots = []
    for index, beat in enumerate(beats, start=1):
        transition = request.transition_into(index, beat.transition)
        prompt = compose_prompt(
            bible,
            index=index,
            total=len(beats),
            action=beat.action,
            camera=beat.camera,
            transition_in=transition,
            language=language,
        )
        shots.append(
            Shot(
                index=index,
                action=beat.action,
                camera=beat.camera,
                seconds=request.seconds or 0,
                transition_in=transition,
                prompt=prompt,
            )
        )
    return ShotPlan(title=title, language=language, planner=planner, bible=bible, shots=shots)


def get_planner(name: str, settings: Settings | None = None) -> Planner:
    if name == "template":
        from sora_extend.planners.template import TemplatePlanner

        return TemplatePlanner()
    if name == "openai":
        from sora_extend.planners.openai_planner import OpenAIPlanner

        return OpenAIPlanner(settings or get_settings())
    raise ValueError(f"unknown planner {name!r}")
