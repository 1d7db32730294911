"""Whole-clip drift: how far each segment has wandered from segment 1, in colour, structure and sharpness.

In the spirit of LV-Bench's per-chunk deviation (each chunk measured against the first), without model
weights: a few evenly spaced frames per clip give its mean Lab colour, a small thumbnail (its layout) and
its sharpness; each is compared with segment 1's. Chain and keyframes runs of the same prompt can then be
compared on the same figures. The frames are those of the clip's one decode pass (`quality.scan`), so the
signature costs nothing more when the clip is judged.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sora_extend.media.images import ssim
from sora_extend.quality.scan import ClipScan, scan_clip

SAMPLES = 5
THUMB = (96, 54)  # small enough that camera moves of a few pixels do not count as structure drift


class ClipSignature(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    lab_mean: list[float]
    sharpness: float
    thumb: np.ndarray = Field(repr=False, exclude=True)


class Drift(BaseModel):
    colour: float = Field(..., description="Mean-Lab distance from segment 1 (roughly Delta E; 0 = same colours).")
    structure: float = Field(..., description="1 - SSIM of the clip's grey thumbnail against segment 1's (0 = same).")
    sharpness_ratio: float = Field(..., description="Sharpness relative to segment 1 (1 = as sharp; <1 = softer).")


def signature_of(scan: ClipScan, samples: int = SAMPLES) -> ClipSignature:
    """Colour, layout and sharpness of a scanned clip from `samples` of its frames, evenly spaced."""
    picks = {round(i * (len(scan.samples) - 1) / max(1, samples - 1)) for i in range(samples)}
    picked = [scan.samples[i] for i in sorted(picks)]
    thumbs = [cv2.resize(sample.picture, THUMB, interpolation=cv2.INTER_AREA) for sample in picked]
    return ClipSignature(
        lab_mean=[round(float(v), 4) for v in np.mean([sample.lab for sample in picked], axis=0)],
        sharpness=float(np.mean([sample.sharpness for sample in picked])),
        thumb=np.mean(thumbs, axis=0).astype(np.uint8),
    )


def signature(path: Path, samples: int = SAMPLES) -> ClipSignature:
    """Colour, layout and sharpness of a clip from `samples` evenly spaced frames."""
    return signature_of(scan_clip(path, audio=False), samples)


def drift(clip: ClipSignature, reference: ClipSignature) -> Drift:
    return Drift(
        colour=round(float(np.linalg.norm(np.subtract(clip.lab_mean, reference.lab_mean))), 3),
        structure=round(1.0 - ssim(clip.thumb, reference.thumb), 4),
        sharpness_ratio=round(clip.sharpness / max(reference.sharpness, 1e-6), 3),
    )
