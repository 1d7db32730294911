"""Extract the hand-off frame that seeds the next segment.

The guard looks at the last few frames and takes the last one unless it is black or clearly blurred
next to its neighbours (fades, motion blur), in which case it takes the latest good one and says so.
The frame is produced at exactly the next request's size (cover: scale and centre-crop, no bars) and,
with colour re-anchoring on, its Lab colour statistics are matched to segment 1's hand-off frame so
colour drift cannot compound hop after hop.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping

import numpy as np

from sora_extend import layout
from sora_extend.hashing import sha256_bytes
from sora_extend.media.frames import DecodedFrame, last_frames
from sora_extend.media.images import (
    decode_png,
    encode_png,
    fit_to_size,
    lab_stats,
    match_colour,
    mean_luma,
    sharpness,
)
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.keys import BLACK_LUMA, BLUR_RATIO, GUARD_WINDOW, MAX_ANCHOR_SHIFT, handoff_key
from sora_extend.pipeline.records import HandoffRecord, SegmentRecord
from sora_extend.pipeline.steps import HandoffStep
from sora_extend.pipeline.stored import read_image

logger = logging.getLogger(__name__)


def choose_frame(frames: list[DecodedFrame]) -> tuple[DecodedFrame, list[dict[str, float]]]:
    """The latest frame that is neither black nor blurred relative to the window."""
    scores = [{"from_end": float(f.from_end), "sharpness": sharpness(f.rgb), "luma": mean_luma(f.rgb)} for f in frames]
    median = statistics.median(score["sharpness"] for score in scores)
    for frame, score in zip(reversed(frames), reversed(scores), strict=True):
        if score["luma"] >= BLACK_LUMA and score["sharpness"] >= BLUR_RATIO * median:
            return frame, scores
    return frames[-1], scores  # nothing usable: keep the true last frame rather than invent one


def anchor_colour(rgb: np.ndarray, anchor_rgb: np.ndarray) -> tuple[np.ndarray, float]:
    target_mean, target_std = lab_stats(anchor_rgb)
    mean, _ = lab_stats(rgb)
    shift = float(np.linalg.norm(target_mean - mean))
    if shift > MAX_ANCHOR_SHIFT:
        # Blend toward the anchor only as far as the cap allows.
        weight = MAX_ANCHOR_SHIFT / shift
        target_mean = mean + (target_mean - mean) * weight
        _, std = lab_stats(rgb)
        target_std = std + (target_std - std) * weight
    return match_colour(rgb, target_mean, target_std), min(shift, MAX_ANCHOR_SHIFT)


def extract_handoff(job: Job, step: HandoffStep, inputs: Mapping[str, object]) -> HandoffRecord:
    """The hand-off frame of the segment `step` names (matched to the anchor frame's colours, if any)."""
    segment, anchor = inputs[step.segment], inputs[step.anchor] if step.anchor else None
    assert isinstance(segment, SegmentRecord) and (anchor is None or isinstance(anchor, HandoffRecord))
    width, height = job.request.size
    key = handoff_key(job.request, step, inputs)
    record_rel = layout.handoff_record(segment.index)
    existing = job.store.read_model(record_rel, HandoffRecord)
    if existing is not None and existing.key == key and job.store.exists(existing.path):
        return existing

    local = job.cache.fetch(job.store, segment.path, segment.sha256)
    chosen, scores = choose_frame(last_frames(local, GUARD_WINDOW))
    rgb = fit_to_size(chosen.rgb, width, height, "cover")
    shift = 0.0
    if anchor is not None:
        rgb, shift = anchor_colour(rgb, decode_png(read_image(job, anchor)))
    png = encode_png(rgb)
    rel = layout.handoff(segment.index)
    job.store.write_bytes(rel, png)
    record = HandoffRecord(
        segment=segment.index,
        key=key,
        path=rel,
        sha256=sha256_bytes(png),
        width=width,
        height=height,
        from_end=chosen.from_end,
        frame_time=round(chosen.time, 4),
        sharpness=round(next(s["sharpness"] for s in scores if s["from_end"] == chosen.from_end), 3),
        candidates=scores,
        colour_anchored=anchor is not None,
        colour_shift=round(shift, 3),
    )
    job.store.write_json(record_rel, record)
    if chosen.from_end:
        logger.warning(
            "segment %d: last frame is black or blurred; handing off the frame %d before it",
            segment.index,
            chosen.from_end,
        )
    logger.info(
        "segment %d: hand-off frame %s (%dx%d, colour shift %.2f)",
        segment.index,
        job.store.url(rel),
        width,
        height,
        shift,
    )
    return record
