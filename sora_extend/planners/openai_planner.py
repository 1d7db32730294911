"""An LLM planner over any OpenAI-compatible chat API (OpenAI, vLLM, Ollama, OpenRouter...).

The model returns structured output (a JSON schema generated from `LLMPlan`); the shot prompts are then
composed here, deterministically, so the story bible is in every prompt whatever the model wrote. A
plan with the wrong number of shots is sent back once with the validation error; a second bad answer
fails (or falls back to the template planner when the request allows it).
"""

from __future__ import annotations

import json
import logging
from typing import Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sora_extend.errors import MissingKeyError, TerminalProviderError
from sora_extend.openai_chat import chat_client, chat_error
from sora_extend.plan import ShotPlan, StoryBible
from sora_extend.planners.base import Beat, assemble_plan, detect_language
from sora_extend.request import ExtendRequest
from sora_extend.settings import Settings

logger = logging.getLogger(__name__)

LANGUAGE_NAMES = {"ko": "Korean", "en": "English"}


class LLMBible(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(description="The base prompt restated faithfully: who/what the video follows.")
    characters: list[str] = Field(description="Recurring characters with fixed appearance and wardrobe.")
    setting: str
    style: str = Field(description="One visual style for every shot.")
    light: str = Field(description="One lighting description for every shot.")


class LLMShot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(description="What happens in this shot, continuing the previous one.")
    camera: str = Field(description="Camera move or framing.")
    transition: Literal["continuous", "crossfade", "cut"] = Field(
        description="How this shot joins the previous one; continuous unless the story needs a new angle."
    )
    end_still: str = Field(description="What the shot's very last frame shows, as one still image.")


class LLMPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    bible: LLMBible
    shots: list[LLMShot]


class PlannerError(TerminalProviderError):
    """The LLM did not produce a usable plan."""


INSTRUCTIONS = """You plan long videos that are rendered as a chain of short clips by an image-to-video model.
Each clip starts from the final frame of the previous clip, so consecutive shots must flow into each other:
same characters, wardrobe, place, style and light; motion that continues; no sudden jumps unless the shot's
transition is "cut". Write a story bible once (it is repeated in every clip's prompt) and exactly the
requested number of shots, each one short and concrete (what is seen, what moves, the camera).
For every shot also describe its very last frame as a still image: those stills can be drawn first and
every clip rendered from one still to the next. Keep the meaning of the base prompt exactly; do not add
new main characters.
Write all text in {language}."""


class OpenAIPlanner:
    def __init__(self, settings: Settings) -> None:
        if settings.openai_api_key is None:
            raise MissingKeyError("OPENAI_API_KEY", "openai-api-key", "planner 'openai'")
        self.settings = settings
        self.model = settings.planner_model
        self.name = f"openai:{self.model}"
        self.client = chat_client(settings.openai_api_key, settings.openai_base_url, settings.http_timeout_s)

    def plan(self, request: ExtendRequest) -> ShotPlan:
        language = "en" if request.prompt_language == "english" else detect_language(request.prompt)
        brief = {
            "prompt": request.prompt,
            "segments": request.segments,
            "seconds": request.seconds,
            "language": language,
            "transition": request.transition,
        }
        messages: list[dict[str, str]] = [
            {"role": "system", "content": INSTRUCTIONS.format(language=LANGUAGE_NAMES.get(language, language))},
            {"role": "user", "content": json.dumps(brief, ensure_ascii=False)},
        ]
        problem = ""
        for attempt in (1, 2):
            answer, raw = self._ask(messages)
            problem = self._problem(answer, request)
            if not problem and answer is not None:
                return self._to_plan(answer, request, language)
            logger.warning("planner: attempt %d returned an unusable plan: %s", attempt, problem)
            messages += [
                {"role": "assistant", "content": raw},
                {
                    "role": "user",
                    "content": f"That plan is invalid: {problem}. Return the corrected plan with "
                    f"exactly {request.segments} shots.",
                },
            ]
        raise PlannerError(
            f"the planner model returned an unusable plan twice: {problem}", provider="openai", model=self.model
        )

    def _ask(self, messages: list[dict[str, str]]) -> tuple[LLMPlan | None, str]:
        try:
            if self.settings.planner_api == "responses":
                response = self.client.responses.parse(
                    model=self.model,
                    instructions=messages[0]["content"],
                    input=messages[1:],  # type: ignore[arg-type]
                    text_format=LLMPlan,
                )
                return response.output_parsed, response.output_text
            completion = self.client.chat.completions.parse(
                model=self.model,
                messages=messages,
                response_format=LLMPlan,  # type: ignore[arg-type]
            )
        except (ValidationError, json.JSONDecodeError) as exc:
            return None, f"(not valid JSON for the schema: {exc.__class__.__name__})"
        except openai.OpenAIError as exc:
            raise chat_error(
                exc, "planner API", model=self.model, key_name="OPENAI_API_KEY", terminal=PlannerError
            ) from None
        message = completion.choices[0].message
        if message.refusal:
            raise PlannerError(f"the planner model refused: {message.refusal}", provider="openai", model=self.model)
        return message.parsed, message.content or ""

    @staticmethod
    def _problem(answer: LLMPlan | None, request: ExtendRequest) -> str:
        if answer is None:
            return "the answer did not match the JSON schema"
        if len(answer.shots) != request.segments:
            return f"it has {len(answer.shots)} shots but {request.segments} are needed"
        empty = [i + 1 for i, shot in enumerate(answer.shots) if not shot.action.strip()]
        if empty:
            return f"shot(s) {empty} have no action"
        if not answer.bible.subject.strip() or not answer.bible.style.strip() or not answer.bible.light.strip():
            return "the story bible needs a subject, a style and a light"
        return ""

    def _to_plan(self, answer: LLMPlan, request: ExtendRequest, language: str) -> ShotPlan:
        beats = [Beat(shot.action, shot.camera, shot.transition, shot.end_still) for shot in answer.shots]
        return assemble_plan(
            request,
            title=answer.title,
            language=language,
            planner=self.name,
            bible=StoryBible(**answer.bible.model_dump()),
            beats=beats,
        )
