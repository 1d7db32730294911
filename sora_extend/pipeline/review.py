"""Review material for every run: the seam report (seams.json), the drift figures (drift.json) and the
contact sheet, in every continuation mode."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.media.contact_sheet import contact_sheet
from sora_extend.media.drift import Drift, drift
from sora_extend.media.images import decode_png, encode_png, psnr, ssim
from sora_extend.media.seams import JoinWindow, measure_seams
from sora_extend.pipeline.clip_review import clip_ends, clip_signature
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import HandoffRecord, ImageRecord, KeyframeRecord, SegmentRecord
from sora_extend.pipeline.steps import MergeStep
from sora_extend.pipeline.stored import read_image

MAX_PSNR = 99.0  # identical images have infinite PSNR; JSON has no infinity


class SeamRecord(BaseModel):
    boundary: int = Field(..., description="Between segment `boundary` and `boundary + 1`.")
    transition: str
    at_s: float
    shared: str | None = Field(None, description="The still both clips share there: 'hand-off' or 'keyframe'.")
    start_psnr: float | None = Field(None, description="Shared still vs the next segment's first frame (dB).")
    start_ssim: float | None = None
    end_psnr: float | None = Field(None, description="Shared still vs this segment's last frame (dB).")
    handoff_from_end: int | None = Field(None, description="Frames before the end the guard took the hand-off from.")
    anchor_shift: float | None = Field(None, description="Lab distance colour re-anchoring removed.")
    colour_delta: float
    motion_jump: float
    audio_jump_db: float
    audio_step: float | None = Field(None, description="Largest sample step at the join / around it (>1: a click).")
    loudness_before_lufs: float | None = Field(None, description="Loudness of the 3 s before the join.")
    loudness_after_lufs: float | None = Field(None, description="Loudness of the 3 s after the join.")


class DriftRecord(Drift):
    segment: int


# What a viewer notices at a join, from the seam figures. Within one shot, neighbouring frames differ by
# about 1 Lab unit and 1x the usual motion; a hard cut between unrelated shots measures 15+ and 5+.
COLOUR_SHIFT, COLOUR_JUMP = 4.0, 8.0  # mean-Lab distance across the join
MOTION_SHIFT, MOTION_JUMP = 2.0, 4.0  # frame change across the join / the usual frame change there
AUDIO_SHIFT_DB, AUDIO_JUMP_DB = 6.0, 12.0  # loudness step across the join
# Largest sample step at the join over the largest around it: sound spliced without a crossfade measures
# several times the usual step there (10-30x for unrelated soundtracks); a crossfaded join stays under 1.
AUDIO_CLICK = 2.0
START_PSNR_OFF = 25.0  # dB: below this the next clip did not start on the shared still


class Verdict(BaseModel):
    level: Literal["smooth", "check", "jump", "cut"]
    words: str = Field(..., description="What a viewer would notice, in plain words.")


def judge(seam: SeamRecord) -> Verdict:
    """A plain-words verdict on one join. A cut is a planned new shot: its jumps are intended."""
    if seam.transition == "cut":
        return Verdict(level="cut", words="cut to a new shot (jumps are intended)")
    jumps, shifts = [], []
    for value, shift, jump, words in (
        (seam.colour_delta, COLOUR_SHIFT, COLOUR_JUMP, "colour"),
        (seam.motion_jump, MOTION_SHIFT, MOTION_JUMP, "motion"),
        (abs(seam.audio_jump_db), AUDIO_SHIFT_DB, AUDIO_JUMP_DB, "audio"),
    ):
        if value >= jump:
            jumps.append(f"{words} jump")
        elif value >= shift:
            shifts.append(f"slight {words} jump")
    if seam.audio_step is not None and seam.audio_step >= AUDIO_CLICK:
        jumps.append("audio click")
    if seam.start_psnr is not None and seam.start_psnr < START_PSNR_OFF:
        jumps.append(f"next clip does not start on the {seam.shared or 'shared'} frame")
    if jumps:
        return Verdict(level="jump", words=", ".join(jumps + shifts))
    if shifts:
        return Verdict(level="check", words=", ".join(shifts))
    return Verdict(level="smooth", words="smooth" + (" crossfade" if seam.transition == "crossfade" else ""))


def _similarity(job: Job, still: ImageRecord, frame: np.ndarray) -> tuple[float, float] | None:
    """PSNR and SSIM of a stored still against a decoded frame (None when their sizes differ)."""
    image = decode_png(read_image(job, still))
    if frame.shape != image.shape:
        return None
    return round(min(psnr(image, frame), MAX_PSNR), 2), round(ssim(image, frame), 4)


def seam_report(
    job: Job,
    step: MergeStep,
    records: Mapping[str, object],
    video: Path,
    windows: list[JoinWindow],
    ends: dict[int, tuple[np.ndarray, np.ndarray]],
) -> list[SeamRecord]:
    """seams.json: the figures of every join of the final `video`, with how closely the clips either side
    start and end on the still they share (from the segments' own first and last frames, `ends`)."""
    seams = []
    for boundary, measure in enumerate(measure_seams(video, windows), start=1):
        if measure is None:
            continue
        before, after = records[step.segments[boundary - 1]], records[step.segments[boundary]]
        shared_id = step.joins[boundary - 1]
        shared = records.get(shared_id) if shared_id else None
        assert isinstance(before, SegmentRecord) and isinstance(after, SegmentRecord)
        figures: dict[str, float | int | str | None] = {}
        if isinstance(shared, ImageRecord) and after.seeded_from_sha256 == shared.sha256:
            figures["shared"] = "keyframe" if isinstance(shared, KeyframeRecord) else "hand-off"
            start = _similarity(job, shared, ends[after.index][0])
            if start:
                figures["start_psnr"], figures["start_ssim"] = start
            end = _similarity(job, shared, ends[before.index][1])
            if end and isinstance(shared, KeyframeRecord):  # a hand-off frame is the last frame by construction
                figures["end_psnr"] = end[0]
        if isinstance(shared, HandoffRecord):
            figures["handoff_from_end"] = shared.from_end
            figures["anchor_shift"] = shared.colour_shift if shared.colour_anchored else None
        seams.append(
            SeamRecord(
                boundary=boundary,
                transition=step.transitions[boundary - 1],
                **figures,  # type: ignore[arg-type]
                **measure.model_dump(),
            )
        )
    job.store.write_json(layout.SEAMS, [seam.model_dump() for seam in seams])
    return seams


def drift_report(job: Job, segments: list[SegmentRecord]) -> list[DriftRecord]:
    """drift.json: every segment against segment 1 (segment 1 itself reads 0 / 0 / 1)."""
    signatures = [clip_signature(job, record) for record in segments]
    figures = [
        DriftRecord(segment=record.index, **drift(clip, signatures[0]).model_dump())
        for record, clip in zip(segments, signatures, strict=True)
    ]
    job.store.write_json(layout.DRIFT, [figure.model_dump() for figure in figures])
    return figures


def segment_ends(job: Job, segments: list[SegmentRecord]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """First and last frame of every stored segment, by segment number."""
    return {record.index: clip_ends(job, record) for record in segments}


def write_contact_sheet(job: Job, ends: dict[int, tuple[np.ndarray, np.ndarray]]) -> str:
    """contact_sheet.png beside final.mp4: first and last frame of every segment. Returns a link to it."""
    job.store.write_bytes(layout.CONTACT_SHEET, encode_png(contact_sheet([ends[index] for index in sorted(ends)])))
    return job.store.link(layout.CONTACT_SHEET, job.settings.link_ttl_s)


def join_pairs(
    windows: list[JoinWindow] | None, ends: dict[int, tuple[np.ndarray, np.ndarray]]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per join, the last frame before it and the first new frame after it: as the final video shows them
    (`windows`: trimmed tails, crossfades and the repeated hand-off frame included), or, before there is one,
    the segments' own last and first frames."""
    if windows is None:
        return {k: (ends[k][1], ends[k + 1][0]) for k in sorted(ends) if k + 1 in ends}
    return {k: window.pair for k, window in enumerate(windows, start=1) if window.pair is not None}
