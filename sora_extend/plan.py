"""The shot plan: a shared story bible, one shot per segment and (keyframes mode) one still per boundary.

`Shot.prompt` and `Still.prompt` are exactly what a provider receives: the story bible is repeated in
every prompt and segment k>1 says how it continues the previous one, so a model that sees one piece at
a time still keeps characters, style and light.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Transition = Literal["continuous", "crossfade", "cut"]


class StoryBible(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(..., min_length=1, description="Who or what the video follows.")
    characters: list[str] = Field(default_factory=list, description="Recurring characters, how they look.")
    setting: str = Field("", description="Where it happens.")
    style: str = Field(..., min_length=1, description="Visual style kept in every shot.")
    light: str = Field(..., min_length=1, description="Lighting kept in every shot.")

    def render(self, language: str) -> str:
        parts = [self.subject]
        if self.characters:
            parts.append(("등장인물: " if language == "ko" else "Characters: ") + "; ".join(self.characters))
        if self.setting:
            parts.append(("배경: " if language == "ko" else "Setting: ") + self.setting)
        parts.append(("스타일: " if language == "ko" else "Style: ") + self.style)
        parts.append(("조명: " if language == "ko" else "Light: ") + self.light)
        return " | ".join(parts)


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(..., ge=1, description="1-based segment number.")
    action: str = Field(..., min_length=1, description="What happens in this shot.")
    camera: str = Field("", description="Camera move or framing.")
    seconds: int = Field(..., ge=1)
    transition_in: Transition = Field(
        "continuous", description="How this shot joins the previous one (ignored for shot 1)."
    )
    prompt: str = Field(..., min_length=1, description="The full prompt sent to the video model.")

    @property
    def continues_previous(self) -> bool:
        """Whether this shot is seeded with the previous segment's hand-off frame."""
        return self.index > 1 and self.transition_in != "cut"


class Still(BaseModel):
    """A keyframe: the still at a boundary. Still 0 opens shot 1; still k ends shot k and opens shot k+1."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(..., ge=0)
    description: str = Field(..., min_length=1, description="What the still shows.")
    edit_of: int | None = Field(
        None,
        ge=0,
        description="The still this one is an edit of (identity one hop from it); empty = drawn from the text.",
    )
    prompt: str = Field(..., min_length=1, description="The full prompt sent to the image model.")


class ShotPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    language: str = Field(..., description="Language of the shot prompts (ISO 639-1, e.g. ko, en).")
    planner: str = Field(..., description="Which planner wrote it (and model, for LLM planners).")
    bible: StoryBible
    shots: list[Shot]
    stills: list[Still] = Field(default_factory=list, description="Keyframes mode: one still per boundary (N+1).")

    @property
    def total_seconds(self) -> int:
        return sum(shot.seconds for shot in self.shots)
