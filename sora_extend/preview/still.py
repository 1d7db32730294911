"""Offline keyframe stills: the opening still is drawn from the seed; an edit re-frames the image it
is given (a push-in or pull-back and a sideways move, a touch of light change), so every keyframe
visibly keeps the base still's look, as an image model's edit keeps identity."""

from __future__ import annotations

import cv2
import numpy as np

from sora_extend.media.images import fit_to_size
from sora_extend.preview.scene import opening_frame

MAX_REFRAME = 0.18  # how far an edit zooms in, as a fraction of the frame
MAX_SHIFT = 0.12  # how far it moves sideways, as a fraction of the width
MAX_LIGHT = 0.08  # relative brightness change


def render_still(width: int, height: int, seed: int, base: np.ndarray | None = None) -> np.ndarray:
    """An RGB still of exactly width x height; an edit of `base` when one is given."""
    if base is None:
        return opening_frame(width, height, seed)
    source = fit_to_size(base, width, height, "cover")
    rng = np.random.default_rng(seed)
    zoom = 1.0 + rng.uniform(0.04, MAX_REFRAME)
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT) * width
    matrix = np.array(
        [[zoom, 0.0, (1 - zoom) * width / 2 + shift], [0.0, zoom, (1 - zoom) * height / 2]], dtype=np.float64
    )
    reframed = cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    light = 1.0 + rng.uniform(-MAX_LIGHT, MAX_LIGHT)
    return np.clip(reframed.astype(np.float32) * light + 0.5, 0, 255).astype(np.uint8)
