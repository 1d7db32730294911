"""Render one preview clip.

Frame 0 is the hand-off frame it was given, untouched, followed by `seconds` of new footage (so an
image-to-video clip is one frame longer than asked, like an ideal model whose first frame repeats
its seed: after the merge removes that repeat at each join, N clips of S seconds make N x S seconds).
The camera then pushes in and drifts sideways, the colours drift a little (a different direction per
shot, as real models drift), the shot's prompt fades in as a caption and fades out before the last
frame (so captions never burn into the next hand-off frame), and an audio bed plays underneath.

Given a last frame too (keyframes mode), the clip is an animatic between the two stills: the first
pushes in while the last pulls back into place and fades over it, so the clip ends exactly on it.
A continuation (extend mode) starts from the clip's last frame but does not show it again: only the
new footage after it, as a model's extension does.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, Field

from sora_extend.media.audio import AUDIO_RATE
from sora_extend.media.encode import Mp4Writer
from sora_extend.media.images import fit_to_size
from sora_extend.preview.audio_bed import audio_bed
from sora_extend.preview.captions import caption_layer
from sora_extend.preview.scene import opening_frame

ZOOM_PER_SECOND = 0.01
PAN_PER_SECOND = 0.004  # fraction of the width
DRIFT_PER_SECOND = 0.004  # relative gain change per channel
CAPTION_FADE_S = 0.3
CAPTION_CLEAR_S = 0.5  # caption gone this long before the end: the hand-off guard's window sees clean frames


class PreviewSpec(BaseModel):
    caption: str
    seconds: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: int = Field(24, gt=0)
    seed: int = Field(0, ge=0)
    story_seed: int = Field(0, ge=0)
    audio: bool = True
    continuation: bool = Field(False, description="Leave out the first frame: the clip continues another one.")


def _camera(base: np.ndarray, t: float, direction: float) -> np.ndarray:
    height, width = base.shape[:2]
    scale = 1.0 + ZOOM_PER_SECOND * t
    shift = direction * PAN_PER_SECOND * width * t
    matrix = np.array(
        [[scale, 0.0, (1 - scale) * width / 2 + shift], [0.0, scale, (1 - scale) * height / 2]],
        dtype=np.float64,
    )
    return cv2.warpAffine(base, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _caption_opacity(t: float, seconds: float) -> float:
    fade = min(CAPTION_FADE_S, seconds / 4)
    clear = min(CAPTION_CLEAR_S, seconds / 4)
    if fade <= 0:
        return 0.0
    return float(np.clip(min(t / fade, (seconds - clear - t) / fade) - 0.5, 0.0, 1.0))


def _between(first: np.ndarray, last: np.ndarray, t: float) -> np.ndarray:
    """The animatic from `first` (t=0, exactly) to `last` (t=1, exactly)."""
    blend = t * t * (3.0 - 2.0 * t)  # smoothstep: the moves ease in and out of the stills
    leaving = _camera(first, 4.0 * t, 1.0)
    arriving = _camera(last, -4.0 * (1.0 - t), -1.0)
    return cv2.addWeighted(leaving, 1.0 - blend, arriving, blend, 0.0)


def _drifted(frame: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """The frame with each channel scaled by its gain, rounded and saturated in one pass (OpenCV works on the
    8-bit frame directly: a float copy of every 720p frame took a third of the render)."""
    return cv2.multiply(frame, (*map(float, gains), 0.0))


def render_preview(
    spec: PreviewSpec, first_frame: np.ndarray | None, out: Path, last_frame: np.ndarray | None = None
) -> Path:
    """Write the clip to `out` and return it. Same spec and stills: same bytes."""
    width, height = spec.width, spec.height
    base = opening_frame(width, height, spec.seed) if first_frame is None else fit_to_size(first_frame, width, height)
    end = None if last_frame is None else fit_to_size(last_frame, width, height)
    rng = np.random.default_rng(spec.seed)
    direction = float(rng.choice([-1.0, 1.0]))
    drift = rng.uniform(-1.0, 1.0, 3)
    drift = drift / max(np.abs(drift).max(), 1e-6) * DRIFT_PER_SECOND

    layer, mask = caption_layer(spec.caption, width, height)
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    top, bottom = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
    band_layer = layer[top:bottom].astype(np.float32)
    band_mask = mask[top:bottom, :, None]

    frame_count = max(1, round(spec.seconds * spec.fps)) + (0 if first_frame is None else 1)
    skip = 1 if spec.continuation and first_frame is not None else 0  # the continued clip already shows it
    sound = (
        audio_bed(frame_count / spec.fps, AUDIO_RATE, story_seed=spec.story_seed, shot_seed=spec.seed)
        if spec.audio
        else None
    )
    out = Path(out)
    with Mp4Writer(out, width=width, height=height, fps=spec.fps, audio=spec.audio) as writer:
        for index in range(skip, frame_count):
            if sound is not None:  # fed frame by frame so the file's audio and video interleave
                writer.write_audio(sound[:, index * AUDIO_RATE // spec.fps : (index + 1) * AUDIO_RATE // spec.fps])
            if index == 0:
                writer.write_frame(base)
                continue
            t = index / spec.fps
            if end is not None:
                if index == frame_count - 1:
                    writer.write_frame(end)
                    continue
                frame = _between(base, end, index / (frame_count - 1))
            else:
                frame = _drifted(_camera(base, t, direction), 1.0 + drift * t)
            opacity = _caption_opacity(t, frame_count / spec.fps)
            if opacity > 0 and bottom > top:
                alpha = band_mask * opacity
                band = frame[top:bottom] * (1 - alpha) + band_layer * alpha
                frame[top:bottom] = np.clip(band + 0.5, 0, 255).astype(np.uint8)
            writer.write_frame(frame)
    return out
