"""poster.jpg: the small still the library shows on a job's card, written with every report. A finished
video shows the first frame of its middle segment (the opening frame is often a fade or a title); a failed
run shows its last good piece: the last frame of its last finished segment, else its latest keyframe still."""

from __future__ import annotations

import numpy as np

from sora_extend import layout
from sora_extend.media.images import decode_png, encode_jpeg, fit_to_size
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import KeyframeRecord
from sora_extend.pipeline.stored import read_image

POSTER_WIDTH = 320  # a card on a phone is about this wide; ~15 KB as JPEG


def poster_frame(
    job: Job, ends: dict[int, tuple[np.ndarray, np.ndarray]], keyframes: list[KeyframeRecord], completed: bool
) -> np.ndarray | None:
    """The picture a job's card shows, or None when nothing was rendered yet."""
    if ends:
        segments = sorted(ends)
        return ends[segments[len(segments) // 2]][0] if completed else ends[segments[-1]][1]
    if keyframes:
        return decode_png(read_image(job, max(keyframes, key=lambda record: record.index)))
    return None


def write_poster(
    job: Job, ends: dict[int, tuple[np.ndarray, np.ndarray]], keyframes: list[KeyframeRecord], completed: bool
) -> str | None:
    """Write poster.jpg; returns its path in the job folder, or None when there is no picture yet."""
    rgb = poster_frame(job, ends, keyframes, completed)
    if rgb is None:
        return None
    height, width = rgb.shape[:2]
    small = fit_to_size(rgb, POSTER_WIDTH, max(1, round(height * POSTER_WIDTH / width)))
    job.store.write_bytes(layout.POSTER, encode_jpeg(small, quality=80))
    return layout.POSTER
