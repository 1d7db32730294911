"""The offline default planner: a deterministic shot list built from the prompt alone.

It cannot understand the prompt, so it keeps the user's words verbatim as the story's subject and
varies what a cinematographer would vary between shots (beat, camera), in the prompt's language.
"""

from __future__ import annotations

from sora_extend.plan import ShotPlan, StoryBible
from sora_extend.planners.base import Beat, assemble_plan, detect_language
from sora_extend.request import ExtendRequest

_STYLE = {
    "ko": "시네마틱 실사 영상, 35mm 필름 질감, 장면 전체에 일관된 색보정",
    "en": "cinematic photoreal footage, 35mm film texture, one consistent colour grade throughout",
}
# (keywords, Korean light, English light): the first match wins; the last row is the default.
_LIGHT = (
    (
        ("밤", "야경", "night", "neon", "네온", "midnight", "자정"),
        "밤, 가로등과 네온사인의 따뜻한 빛, 깊은 그림자",
        "night, warm streetlight and neon glow, deep shadows",
    ),
    (
        ("노을", "석양", "sunset", "dusk", "황혼", "golden hour"),
        "해질녘 황금빛 역광, 길고 부드러운 그림자",
        "golden-hour backlight, long soft shadows",
    ),
    (
        ("비", "rain", "storm", "폭풍", "안개", "fog"),
        "흐린 하늘의 부드러운 확산광, 젖은 표면의 반사",
        "overcast diffuse light, reflections on wet surfaces",
    ),
    ((), "부드러운 자연광, 자연스러운 대비", "soft natural daylight, natural contrast"),
)
_BEATS = {
    "ko": (
        "도입: 주인공과 공간을 소개한다",
        "전개: 행동이 이어지고 주변이 드러난다",
        "절정: 가장 인상적인 순간",
        "마무리: 여운을 남기며 장면이 정리된다",
    ),
    "en": (
        "Opening: introduce the subject and the place",
        "Development: the action continues and the surroundings unfold",
        "Peak: the most striking moment",
        "Closing: the scene settles and lingers",
    ),
}
_CAMERA = {
    "ko": (
        "와이드 설정 숏, 천천히 다가가는 푸시인",
        "미디엄 트래킹 숏으로 주인공을 따라간다",
        "클로즈업, 얕은 심도",
        "어깨 너머 숏, 느린 팬",
        "로우 앵글 돌리 숏",
        "천천히 물러나는 와이드 숏",
    ),
    "en": (
        "wide establishing shot, slow push-in",
        "medium tracking shot following the subject",
        "close-up, shallow depth of field",
        "over-the-shoulder shot, slow pan",
        "low-angle dolly shot",
        "slow pull-back to a wide shot",
    ),
}


def _beat(index: int, total: int, language: str) -> str:
    opening, development, peak, closing = _BEATS[language]
    if index == 1:
        return opening
    if index == total:
        return closing
    return peak if total >= 4 and index == total - 1 else development


class TemplatePlanner:
    name = "template"

    def plan(self, request: ExtendRequest) -> ShotPlan:
        source = detect_language(request.prompt)
        language = "en" if request.prompt_language == "english" else source
        lowered = request.prompt.lower()
        light = next(row for row in _LIGHT if not row[0] or any(word in lowered for word in row[0]))
        bible = StoryBible(
            subject=request.prompt,
            style=_STYLE[language],
            light=light[1] if language == "ko" else light[2],
        )
        total = request.segments
        beats = [
            Beat(_beat(index, total, language), _CAMERA[language][(index - 1) % len(_CAMERA[language])])
            for index in range(1, total + 1)
        ]
        return assemble_plan(
            request, title=request.prompt[:80], language=language, planner=self.name, bible=bible, beats=beats
        )
