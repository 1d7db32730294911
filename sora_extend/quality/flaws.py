"""What is wrong with a clip or a still, from its pixels alone: no model weights, no network.

Each detector reads a `ClipScan` (one decode pass) and what the piece was asked to be (`Asked`), and
returns the flaws it finds, each with where it is and how far past the line it goes (severity 1 = on the
line). The lines are set so that a viewer would call the flaw a defect and so that clean footage (camera
moves, slow fades, a clip easing between two keyframes) stays well clear of them; `benchmarks/quality_bench.py`
measures both sides on clips with flaws injected at random times and strengths.

What pixels cannot tell: whether a cut or a change of look was meant (every cut inside a clip is taken as
unplanned, since plans put cuts at joins), whether the subject is the right *person* (stills are compared by
palette and layout, which a costume change can fool), or whether the clip shows what its prompt asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from sora_extend.media.images import colour_delta, ssim
from sora_extend.quality.scan import OPENING_S, ClipScan, grey_thumb, sample_figures

FlawKind = Literal[
    "cut", "black", "blank", "frozen", "start", "end", "continuation", "colour", "sharpness", "length", "size",
    "audio", "subject", "model",
]  # fmt: skip

# Bump when a detector or a line below changes: stored verdicts are then judged again.
JUDGE_VERSION = 1
# A hard cut: the picture changes at once, far more than the motion around it, and stays changed.
CUT_CHANGE = 10.0  # grey levels of mean thumbnail difference: a cut between related shots measures 15+
CUT_RATIO = 4.0  # ... and this many times the usual frame-to-frame change around it
MOTION_FLOOR = 1.0  # grey levels: the usual change is at least this (still shots are not infinitely still)
CUT_WINDOW_S = 0.5
# Black or blank: a picture with nothing in it, for at least DEAD_S. Black: under 2 % of it brighter than
# black (ffmpeg blackdetect's default picture ratio); blank: one flat level of any brightness.
BLACK_RATIO = 0.02
BLANK_CONTRAST = 3.0
DEAD_S = 0.3
# Frozen: for at least FROZEN_S the picture moves less than FROZEN_MOTION grey levels in all.
FROZEN_MOTION = 0.8
REPEAT_CHANGE = 0.03  # a duplicate frame: most pairs in a frozen stretch change by nothing at all
FROZEN_S = 1.0
# Start and end: the first (last) frame is the image it was given, as a viewer sees it.
# A model's first frame is its encoding of the given image (0.99 here, 0.9+ from hosted models); another
# scene of similar layout still measures 0.6-0.7, since smooth skies and ground look alike at this size.
MATCH_SSIM = 0.75  # structural similarity of the frame and the image at 256x144
MATCH_COLOUR = 8.0  # Lab distance of their mean colours (0.5 for a clip that starts on its image)
# Colour cast: the clip's colours leave the path from its first image to its last (Lab a*, b*).
CAST_AB = 12.0
SUSTAINED_S = 0.5
# Sharpness collapse: the frames lose most of the detail of the frames that start (and end) the clip.
SOFT_RATIO = 0.3
SOFT_S = 1.0
# Length: a clip more than this much shorter or longer than asked.
LENGTH_SLACK = 0.15
SILENT_DBFS = -60.0
# Stills: an edit of keyframe 0 keeps its palette; another scene does not.
PALETTE_OVERLAP = 0.35
PALETTE_BINS = 16
# A subject's reference sheet (the subject on a plain ground) shares only part of a scene's palette; a still
# that shares almost none of it has lost the subject.
REFERENCE_OVERLAP = 0.1


class Flaw(BaseModel):
    kind: FlawKind
    words: str = Field(..., description="What is wrong, in plain words, e.g. 'hard cut at 2.1 s'.")
    at_s: float | None = Field(None, description="Where it starts in the clip (None for a still or the whole clip).")
    until_s: float | None = None
    severity: float = Field(..., ge=0, description="How far past the line: 1 = on it, 2 = twice as far.")


@dataclass(frozen=True)
class Asked:
    """What a clip was asked to be."""

    seconds: float
    width: int
    height: int
    audio: bool = False
    first: np.ndarray | None = None  # the image it must start on (RGB)
    last: np.ndarray | None = None  # the image it must end on (keyframes mode)
    source_last: np.ndarray | None = None  # extend: the last frame of the clip it continues


def _runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """(first, last) indices of every run of True."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        yield int(start), int(stop) - 1


def _span(scan: ClipScan, first: int, last: int) -> float:
    return float(scan.times[last] - scan.times[first]) + scan.frame_s()


def hard_cuts(scan: ClipScan) -> list[Flaw]:
    window = max(2, round(CUT_WINDOW_S * scan.fps))
    flaws = []
    for index in np.flatnonzero(scan.change >= CUT_CHANGE):
        if index == 0:
            continue
        around = np.concatenate(
            [scan.change[max(1, index - window) : index], scan.change[index + 1 : index + 1 + window]]
        )
        usual = max(float(np.median(around)) if around.size else 0.0, MOTION_FLOOR)
        ratio = float(scan.change[index]) / usual
        if ratio < CUT_RATIO:
            continue
        # A flash (one odd frame) comes back; a cut stays: the picture two frames on still differs.
        later = min(index + 2, scan.frames - 1)
        if later > index and np.abs(scan.thumbs[later] - scan.thumbs[index - 1]).mean() < 0.5 * scan.change[index]:
            continue
        at = float(scan.times[index] - scan.times[0])
        severity = min(ratio / CUT_RATIO, float(scan.change[index]) / CUT_CHANGE)
        flaws.append(Flaw(kind="cut", words=f"hard cut at {at:.1f} s", at_s=round(at, 2), severity=severity))
    return flaws


def dead_frames(scan: ClipScan) -> list[Flaw]:
    black = scan.lit <= BLACK_RATIO
    blank = scan.contrast <= BLANK_CONTRAST
    flaws = []
    for first, last in _runs(black | blank):
        span = _span(scan, first, last)
        if span < DEAD_S - 1e-6:
            continue
        kind: FlawKind = "black" if black[first : last + 1].mean() >= 0.5 else "blank"
        at = float(scan.times[first] - scan.times[0])
        words = f"{span:.1f} s of {'black' if kind == 'black' else 'blank'} frames at {at:.1f} s"
        flaws.append(
            Flaw(kind=kind, words=words, at_s=round(at, 2), until_s=round(at + span, 2), severity=span / DEAD_S)
        )
    return flaws


def freezes(scan: ClipScan) -> list[Flaw]:
    """Stretches of at least FROZEN_S in which the picture, added up frame by frame, moves less than
    FROZEN_MOTION grey levels. Encoder-level duplicates move nothing but a requantised keyframe now and then
    (a few tenths of a level); a slow fade or push-in moves a fraction of a level every frame, which adds up
    to several levels a second."""
    window = max(2, round(FROZEN_S * scan.fps))
    if scan.frames < window:
        return []
    moved = np.concatenate([[0.0], np.cumsum(scan.change[1:], dtype=np.float64)])
    # Frames i..i+window-1 moved moved[i+window-1] - moved[i] in all, and most of them not at all.
    still = moved[window - 1 :] - moved[: scan.frames - window + 1] <= FROZEN_MOTION
    repeats = np.lib.stride_tricks.sliding_window_view(scan.change, window)
    still &= np.median(repeats, axis=1) <= REPEAT_CHANGE
    covered = np.zeros(scan.frames, dtype=bool)
    for start in np.flatnonzero(still):
        covered[start : start + window] = True
    flaws = []
    for first, last in _runs(covered):
        span = _span(scan, first, last)
        at = float(scan.times[first] - scan.times[0])
        flaws.append(
            Flaw(
                kind="frozen",
                words=f"frozen for {span:.1f} s at {at:.1f} s",
                at_s=round(at, 2),
                until_s=round(at + span, 2),
                severity=span / FROZEN_S,
            )
        )
    return flaws


def _small(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (256, 144), interpolation=cv2.INTER_AREA)


def mismatch(frame: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """Structural similarity and mean-colour distance of a frame and the image it should show."""
    if frame.shape != image.shape:
        image = cv2.resize(image, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)
    return ssim(_small(frame), _small(image)), colour_delta(_small(frame), _small(image))


def _matches(kind: FlawKind, frame: np.ndarray, image: np.ndarray, what: str) -> list[Flaw]:
    similarity, colour = mismatch(frame, image)
    severity = max((1 - similarity) / (1 - MATCH_SSIM), colour / MATCH_COLOUR)
    if severity < 1:
        return []
    words = f"{what} (similarity {similarity:.2f}, colour off by {colour:.1f})"
    return [Flaw(kind=kind, words=words, at_s=None, severity=severity)]


def continuation_break(scan: ClipScan, source_last: np.ndarray) -> list[Flaw]:
    """An extension that does not pick up where its source clip ended: a cut at its first frame."""
    step = float(np.abs(scan.thumbs[0] - grey_thumb(source_last, scan.thumbs[0])).mean())
    window = max(2, round(CUT_WINDOW_S * scan.fps))
    usual = max(float(np.median(scan.change[1 : 1 + window])) if scan.frames > 1 else 0.0, MOTION_FLOOR)
    if step < CUT_CHANGE or step / usual < CUT_RATIO:
        return []
    words = f"does not continue its source clip (a cut at its start: {step:.0f} grey levels, {step / usual:.0f}x)"
    return [Flaw(kind="continuation", words=words, at_s=0.0, severity=min(step / CUT_CHANGE, step / usual / CUT_RATIO))]


def _ab(lab: np.ndarray) -> np.ndarray:
    return np.asarray(lab[1:3], dtype=np.float64)


def _off_path(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Distance from a point to the segment start-end (a clip may move between its two images' colours)."""
    line = end - start
    length = float(line @ line)
    t = 0.0 if length == 0 else float(np.clip((point - start) @ line / length, 0.0, 1.0))
    return float(np.linalg.norm(point - (start + t * line)))


def _sustained(scan: ClipScan, mask: np.ndarray, least_s: float) -> tuple[int, int] | None:
    """The longest run of flagged samples lasting at least `least_s`, as sample indices."""
    best = None
    for first, last in _runs(mask):
        span = scan.samples[last].time - scan.samples[first].time + scan.frame_s()
        if span >= least_s - 1e-6 and (best is None or last - first > best[1] - best[0]):
            best = (first, last)
    return best


def colour_cast(scan: ClipScan, asked: Asked) -> list[Flaw]:
    start = _ab(sample_figures(asked.first)[0]) if asked.first is not None else _ab(scan.samples[0].lab)
    end = _ab(sample_figures(asked.last)[0]) if asked.last is not None else start
    off = np.array([_off_path(_ab(sample.lab), start, end) for sample in scan.samples])
    run = _sustained(scan, off >= CAST_AB, SUSTAINED_S)
    if run is None:
        return []
    first, last = run
    at, until = scan.samples[first].time - scan.times[0], scan.samples[last].time - scan.times[0]
    worst = float(off[first : last + 1].max())
    words = f"colour cast from {at:.1f} s ({worst:.0f} Lab units off the colours it was asked for)"
    return [Flaw(kind="colour", words=words, at_s=round(at, 2), until_s=round(until, 2), severity=worst / CAST_AB)]


def sharpness_collapse(scan: ClipScan, asked: Asked) -> list[Flaw]:
    """The picture loses most of its detail for a while. How sharp the clip is meant to be is what the model
    itself rendered right after the first frame (the first frame is the image it was given, often crisper than
    the model renders anything): a clip that is soft throughout is the model's look, not a collapse."""
    opening = [sample.sharpness for sample in scan.samples if 0 < sample.time - scan.times[0] <= OPENING_S[-1] + 1e-6]
    expected = max(opening) if opening else scan.samples[0].sharpness
    if expected <= 1.0:  # a flat opening says nothing about detail
        return []
    ratios = np.array([sample.sharpness / expected for sample in scan.samples])
    run = _sustained(scan, ratios < SOFT_RATIO, SOFT_S)
    if run is None:
        return []
    first, last = run
    at = scan.samples[first].time - scan.times[0]
    worst = float(ratios[first : last + 1].min())
    words = f"picture goes soft from {at:.1f} s ({worst:.0%} of its opening detail)"
    severity = SOFT_RATIO / max(worst, 1e-3)
    return [Flaw(kind="sharpness", words=words, at_s=round(at, 2), severity=min(severity, 10.0))]


def format_flaws(scan: ClipScan, asked: Asked) -> list[Flaw]:
    flaws = []
    slack = max(0.5, LENGTH_SLACK * asked.seconds)
    off = scan.duration - asked.seconds
    if abs(off) > slack:
        words = f"{scan.duration:.1f} s long, asked for {asked.seconds:g} s"
        flaws.append(Flaw(kind="length", words=words, severity=abs(off) / slack))
    turned = (scan.width > scan.height) != (asked.width > asked.height)
    small = scan.width < 0.9 * asked.width or scan.height < 0.9 * asked.height
    if turned or small:
        words = f"{scan.width}x{scan.height}, asked for {asked.width}x{asked.height}"
        flaws.append(Flaw(kind="size", words=words, severity=2.0 if turned else 1.0))
    if asked.audio and not scan.has_audio:
        flaws.append(Flaw(kind="audio", words="no soundtrack (the model makes sound)", severity=1.0))
    elif asked.audio and scan.audio_dbfs is not None and scan.audio_dbfs < SILENT_DBFS:
        words = f"silent soundtrack ({scan.audio_dbfs:.0f} dBFS)"
        flaws.append(Flaw(kind="audio", words=words, severity=1.0))
    return flaws


def clip_flaws(scan: ClipScan, asked: Asked) -> list[Flaw]:
    """Every flaw of a clip against what it was asked to be."""
    dead = dead_frames(scan)
    # Going into and out of a black stretch is a cut of its own: the black frames are the flaw to name.
    edges = [(flaw.at_s or 0.0, flaw.until_s or 0.0) for flaw in dead]
    cuts = [cut for cut in hard_cuts(scan) if not any(a - 0.1 <= (cut.at_s or 0) <= b + 0.1 for a, b in edges)]
    flaws = cuts + dead + freezes(scan)
    if asked.first is not None:
        flaws += _matches("start", scan.first, asked.first, "does not start on the image it was given")
    if asked.last is not None:
        flaws += _matches("end", scan.last, asked.last, "does not end on the keyframe it was given")
    if asked.source_last is not None:
        flaws += continuation_break(scan, asked.source_last)
    flaws += colour_cast(scan, asked) + sharpness_collapse(scan, asked) + format_flaws(scan, asked)
    return flaws


def _palette(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(cv2.resize(rgb, (160, 90), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2Lab)
    hist = cv2.calcHist([lab], [1, 2], None, [PALETTE_BINS, PALETTE_BINS], [0, 256, 0, 256])
    return hist / max(float(hist.sum()), 1.0)


def palette_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """How much of two images' colour distributions (Lab a*, b*) coincide: 1 = the same palette."""
    return float(np.minimum(_palette(a), _palette(b)).sum())


def still_flaws(still: np.ndarray, base: np.ndarray | None, references: list[np.ndarray]) -> list[Flaw]:
    """A keyframe still: not blank, (an edit) the same subject and setting as the still it edits, and some of the
    subject's colours from its reference images."""
    grey = cv2.cvtColor(still, cv2.COLOR_RGB2GRAY)
    _, std = cv2.meanStdDev(grey[::GRID_STILL, ::GRID_STILL])
    if float(std[0, 0]) <= BLANK_CONTRAST:
        return [Flaw(kind="blank", words="the still is blank", severity=2.0)]
    flaws = []
    if base is not None:
        overlap = palette_overlap(still, base)
        if overlap < PALETTE_OVERLAP:
            words = f"not the same subject and setting as keyframe 0 (palette overlap {overlap:.2f})"
            flaws.append(Flaw(kind="subject", words=words, severity=PALETTE_OVERLAP / max(overlap, 0.01)))
    if references:
        overlap = max(palette_overlap(still, reference) for reference in references)
        if overlap < REFERENCE_OVERLAP:
            words = f"none of the subject's colours from the reference images (palette overlap {overlap:.2f})"
            flaws.append(Flaw(kind="subject", words=words, severity=REFERENCE_OVERLAP / max(overlap, 0.01)))
    return flaws


GRID_STILL = 2
