"""Measure what viewers see at each join of a merged video: colour jumps, motion jumps, audio jumps.

Frames are read around each join from the final file itself (seek + short decode), so the report
describes the output, whatever merge path produced it.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from pydantic import BaseModel, Field

from sora_extend.media.audio import AUDIO_RATE, decode_audio_span
from sora_extend.media.images import colour_delta
from sora_extend.media.loudness import integrated_lufs

WINDOW_S = 0.5  # frames this far either side of a join describe "normal" motion there
MOTION_FLOOR = 1.0  # grey levels: below this, frame differences are encoder noise, not motion
AUDIO_WINDOW_S = 0.1
CLICK_WINDOW_S, CLICK_AROUND_S = 0.02, 0.2  # a click lies within 20 ms of the join; 200 ms either side is normal
LOUDNESS_WINDOW_S = 3.0  # EBU R128's short-term window: what a listener hears just before and after a join


class SeamMeasure(BaseModel):
    at_s: float
    colour_delta: float = Field(..., description="Mean-Lab distance between the frames either side of the join.")
    motion_jump: float = Field(
        ...,
        description="Frame difference across the join / median difference of the neighbouring frames (at least "
        "1 grey level, so still shots do not turn encoder noise into a jump); about 1 = smooth.",
    )
    audio_jump_db: float = Field(..., description="RMS level in the 100 ms after the join minus the 100 ms before.")
    audio_step: float | None = Field(
        None,
        description="Largest sample-to-sample step within 20 ms of the join over the largest in the 200 ms either "
        "side: above 1 where the join adds a step of its own (a click).",
    )
    loudness_before_lufs: float | None = Field(None, description="Loudness of the 3 s before the join (None: silent).")
    loudness_after_lufs: float | None = Field(None, description="Loudness of the 3 s after the join (None: silent).")


def _frames_around(container: av.container.InputContainer, at: float) -> list[tuple[float, np.ndarray]]:
    stream = container.streams.video[0]
    container.seek(max(0, int((at - WINDOW_S - 1.0) / stream.time_base)), stream=stream, backward=True)
    frames = []
    for frame in container.decode(stream):
        time = float(frame.time or 0.0)
        if time > at + WINDOW_S:
            break
        if time >= at - WINDOW_S:
            frames.append((time, frame.to_ndarray(format="rgb24")))
    return frames


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)).mean())


def _rms_db(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0
    return 20 * np.log10(max(rms, 1e-6))


def _sides(frames: list[tuple[float, np.ndarray]], at: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The frames before a join and from it on."""
    return [rgb for time, rgb in frames if time < at - 1e-6], [rgb for time, rgb in frames if time >= at - 1e-6]


def _across(before: list[np.ndarray], after: list[np.ndarray]) -> np.ndarray:
    """The first new frame after a join. A continuous join shows its repeated frame twice for half a frame
    each: the frame past it is the one that can jump."""
    return after[1] if len(after) > 1 and _mad(before[-1], after[0]) < 1.0 else after[0]


@dataclass(frozen=True)
class JoinWindow:
    """What the final video shows around one join: the frames before it and from it on."""

    at: float
    before: list[np.ndarray]
    after: list[np.ndarray]

    @property
    def pair(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The last frame before the join and the first new frame after it (None where the file has no
        frame on one side)."""
        return (self.before[-1], _across(self.before, self.after)) if self.before and self.after else None


def join_windows(video: Path, joins_at: list[float]) -> list[JoinWindow]:
    """The frames around every join, decoded once for both the seam figures and the review page."""
    with av.open(str(video)) as container:
        return [JoinWindow(at, *_sides(_frames_around(container, at), at)) for at in joins_at]


def measure_seams(video: Path, windows: list[JoinWindow]) -> list[SeamMeasure | None]:
    """The figures of every join (None where the file has no frame on one side of it)."""
    with av.open(str(video)) as container:
        duration = float(container.duration / av.time_base) if container.duration else 0.0
    sound = decode_audio_span(video, 0.0, 0.0, duration)
    half = round(AUDIO_WINDOW_S * AUDIO_RATE)
    return [_measure(window, sound, half) for window in windows]


def _measure(window: JoinWindow, sound: np.ndarray, half: int) -> SeamMeasure | None:
    if window.pair is None:
        return None
    before, after = window.before, window.after
    last, across = window.pair
    neighbours = [_mad(x, y) for x, y in itertools.pairwise(before)]
    neighbours += [_mad(x, y) for x, y in itertools.pairwise(after[1:])]
    typical = statistics.median(neighbours) if neighbours else 0.0
    centre = round(window.at * AUDIO_RATE)
    audio = sound[:, max(0, centre - half) : centre + half]
    span = round(LOUDNESS_WINDOW_S * AUDIO_RATE)
    return SeamMeasure(
        at_s=round(window.at, 4),
        colour_delta=round(colour_delta(last, across), 3),
        motion_jump=round(_mad(last, across) / max(typical, MOTION_FLOOR), 3),
        audio_jump_db=round(_rms_db(audio[:, audio.shape[1] // 2 :]) - _rms_db(audio[:, : audio.shape[1] // 2]), 2),
        audio_step=_step_ratio(sound, centre),
        loudness_before_lufs=integrated_lufs(sound[:, max(0, centre - span) : centre]),
        loudness_after_lufs=integrated_lufs(sound[:, centre : centre + span]),
    )


def _step_ratio(sound: np.ndarray, centre: int) -> float | None:
    """How the largest sample step at a join compares with the sound around it (None: silence there)."""
    near, around = round(CLICK_WINDOW_S * AUDIO_RATE), round(CLICK_AROUND_S * AUDIO_RATE)
    if centre - near - around < 0 or centre + near + around > sound.shape[1]:
        return None
    steps = np.abs(np.diff(sound[:, centre - near - around : centre + near + around], axis=1)).max(axis=0)
    beside = max(float(steps[:around].max()), float(steps[-around:].max()))
    at_join = float(steps[around : around + 2 * near].max())
    return round(at_join / beside, 3) if beside > 1e-6 else None
