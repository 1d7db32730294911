"""The optional chat model judge (`--judge vlm`): a chat model with image input looks at the stills a clip
was made from (references, keyframes, its first image) and a few of its frames, and answers narrow yes/no
questions through a JSON schema (`ModelAnswer`).

General-purpose vision models rate overall video quality poorly but answer narrow questions about frames
well (same person? same place? morphing?), so that is all it is asked. Its answer is stored with the
verdict; the call is paid for once per take and judge model, and counted with the run's other costs.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import ValidationError

from sora_extend.catalogue import JudgeModelSpec
from sora_extend.errors import TerminalProviderError
from sora_extend.media.images import encode_jpeg
from sora_extend.openai_chat import chat_error
from sora_extend.quality.verdict import ModelAnswer

if TYPE_CHECKING:  # the SDK is imported by the call that needs it: a run without `--judge vlm` never does
    from openai import OpenAI

JUDGE_IMAGE_WIDTH = 512  # catalogue rows price one image at this width (16:9: 512x288)
FRAMES = 4
TEXT_TOKENS = 700  # instructions, shot prompt and labels, measured on the emulator's token count
ANSWER_TOKENS = 300

INSTRUCTIONS = """You check one clip of a long AI-generated video before it is used. You see the reference
stills it was made from (the subject and the keyframes it had to start and end on) and frames sampled from
the clip in order. Answer each question strictly about what you see: is it the same subject as the stills
(the same person, animal or object, not just the same kind), the same setting and light, are there visible
artefacts, does anything morph into something else, do the frames show what the shot prompt asks.
Then rate the clip 1-5 (1 unusable, 3 acceptable, 5 excellent) and give short reasons."""


class JudgeError(TerminalProviderError):
    """The judge model gave no usable answer."""


def _data_uri(rgb: np.ndarray) -> str:
    height, width = rgb.shape[:2]
    if width > JUDGE_IMAGE_WIDTH:
        size = (JUDGE_IMAGE_WIDTH, max(1, round(height * JUDGE_IMAGE_WIDTH / width)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(rgb, quality=80)).decode("ascii")


def estimate_usd(spec: JudgeModelSpec, stills: int) -> float:
    """What one verdict is expected to cost (before asking)."""
    return spec.cost((stills + FRAMES) * spec.image_tokens + TEXT_TOKENS, ANSWER_TOKENS)


def ask_judge(
    client: OpenAI,
    spec: JudgeModelSpec,
    shot_prompt: str,
    stills: list[tuple[str, np.ndarray]],
    frames: list[np.ndarray],
) -> tuple[ModelAnswer, float]:
    """The model's answer about a clip (or, with no frames, a still) and what it cost in USD."""
    content: list[dict[str, object]] = [{"type": "text", "text": f"Shot prompt: {shot_prompt}"}]
    for label, rgb in stills:
        content += [
            {"type": "text", "text": f"Reference still: {label}"},
            {"type": "image_url", "image_url": {"url": _data_uri(rgb), "detail": "low"}},
        ]
    for index, rgb in enumerate(frames, start=1):
        content += [
            {"type": "text", "text": f"Clip frame {index} of {len(frames)}"},
            {"type": "image_url", "image_url": {"url": _data_uri(rgb), "detail": "low"}},
        ]
    import openai

    try:
        completion = client.chat.completions.parse(
            model=spec.api_model,
            messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": content}],  # type: ignore[list-item, misc]
            response_format=ModelAnswer,
        )
    except (ValidationError, json.JSONDecodeError) as exc:
        raise JudgeError(
            f"the judge model's answer did not fit its schema ({type(exc).__name__})", provider="openai", model=spec.id
        ) from None
    except openai.OpenAIError as exc:
        raise chat_error(exc, "judge API", model=spec.id, key_name="OPENAI_API_KEY", terminal=JudgeError) from None
    message = completion.choices[0].message
    if message.refusal or message.parsed is None:
        raise JudgeError(
            f"the judge model gave no verdict: {message.refusal or 'empty answer'}", provider="openai", model=spec.id
        )
    usage = completion.usage
    cost = spec.cost(usage.prompt_tokens, usage.completion_tokens) if usage else estimate_usd(spec, len(stills))
    return message.parsed, cost
