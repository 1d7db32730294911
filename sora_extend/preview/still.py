"""Offline keyframe stills: the opening still is drawn from the seed; an edit re-frames the image it
is given (a push-in and a sideways move) and keeps its colours, as an image model's edit keeps the
identity and light of the still it was given."""

from __future__ import annotations

import cv2
import numpy as np

from sora_extend.media.images import fit_to_size
from sora_extend.preview.scene import opening_frame

MAX_REFRAME = 0.18  # how far an edit zooms in, as a fraction of the frame
MAX_SHIFT = 0.12  # how far it moves sideways, as a fraction of the width


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
    return cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
