"""The planner interface and the prompt composition every planner shares."""

from __future__ import annotations

import re
from typing import NamedTuple, Protocol

from sora_extend.plan import Shot, ShotPlan, Still, StoryBible, Transition
from sora_extend.request import Continuity, ExtendRequest

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
_BETWEEN = {
    "ko": "주어진 첫 프레임에서 정확히 시작해 주어진 마지막 프레임에서 정확히 끝난다. "
    "같은 인물, 의상, 구도, 조명을 유지한다.",
    "en": "Start exactly on the given first frame and end exactly on the given last frame; keep the same "
    "characters, wardrobe, framing and light.",
}
_EXTEND = {
    "ko": "앞 장면의 영상을 그대로 이어서 계속한다. 같은 인물, 의상, 구도, 조명, 소리를 유지한다.",
    "en": "Continue the previous shot's video directly; keep the same characters, wardrobe, framing, light and sound.",
}
_SHOT = {"ko": "장면 {index}/{total}", "en": "Shot {index}/{total}"}
_STILL = {"ko": "키프레임 {index}/{total}", "en": "Keyframe {index}/{total}"}
_OPENING = {"ko": "첫 장면의 시작: {action}", "en": "The opening frame of shot 1: {action}"}
_BOUNDARY = {"ko": "장면 {index}의 마지막 순간: {action}", "en": "The last moment of shot {index}: {action}"}
_SAME_AS_BASE = {
    "ko": "참조 이미지와 같은 인물, 의상, 장소, 스타일, 조명을 그대로 유지하고 순간과 구도만 바꾼다.",
    "en": "Keep exactly the reference image's characters, wardrobe, place, style and light; change only the "
    "moment and the framing.",
}


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
    continuity: Continuity = "chain",
) -> str:
    """The full provider prompt for one shot: story bible, shot beat, and how it joins the previous one."""
    lang = "ko" if language == "ko" else "en"
    parts = [bible.render(lang) + ".", _SHOT[lang].format(index=index, total=total) + ":"]
    if camera:
        parts.append(camera.rstrip(".") + ".")
    parts.append(action.rstrip(".") + ".")
    if continuity == "keyframes":
        parts.append(_BETWEEN[lang])
    elif index > 1:
        parts.append(
            _CUT[lang] if transition_in == "cut" else _CONTINUE[lang] if continuity == "chain" else _EXTEND[lang]
        )
    return " ".join(parts)


def compose_still(
    bible: StoryBible, *, index: int, total: int, description: str, edit_of: int | None, language: str
) -> str:
    """The full image-model prompt for one keyframe: story bible, the moment, and (edits) what to keep."""
    lang = "ko" if language == "ko" else "en"
    parts = [
        bible.render(lang) + ".",
        _STILL[lang].format(index=index, total=total) + ":",
        description.rstrip(".") + ".",
    ]
    if edit_of is not None:
        parts.append(_SAME_AS_BASE[lang])
    return " ".join(parts)


class Beat(NamedTuple):
    """What a planner decides for one shot; the prompt itself is composed here, the same for all."""

    action: str
    camera: str
    transition: str = "continuous"  # the planner's proposal, used when the request says "auto"
    end_still: str = ""  # keyframes mode: what the shot's last frame shows (derived from the action if empty)


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
            continuity=request.mode,
        )
        shots.append(
            Shot(
                index=index,
                action=beat.action,
                camera=beat.camera,
                seconds=request.segment_seconds(index),
                transition_in=transition,
                prompt=prompt,
            )
        )
    stills = plan_stills(bible, beats, language) if request.mode == "keyframes" else []
    return ShotPlan(title=title, language=language, planner=planner, bible=bible, shots=shots, stills=stills)


def plan_stills(bible: StoryBible, beats: list[Beat], language: str) -> list[Still]:
    """One still per boundary: still 0 from the text alone, every later still an edit of still 0, so every
    keyframe is one edit away from the same image (a chain of edits would drift like a chain of clips)."""
    lang = "ko" if language == "ko" else "en"
    total = len(beats)
    descriptions = [_OPENING[lang].format(action=f"{beats[0].camera}, {beats[0].action}".strip(", "))]
    descriptions += [
        beat.end_still or _BOUNDARY[lang].format(index=index, action=beat.action)
        for index, beat in enumerate(beats, start=1)
    ]
    stills = []
    for index, description in enumerate(descriptions):
        edit_of = None if index == 0 else 0
        prompt = compose_still(
            bible, index=index, total=total, description=description, edit_of=edit_of, language=language
        )
        stills.append(Still(index=index, description=description, edit_of=edit_of, prompt=prompt))
    return stills
