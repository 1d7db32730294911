"""A deterministic opening image for text-to-video preview shots: sky, horizon, hills and texture,
so camera motion, blur and colour drift are all visible in the result; and the subject's reference
image drawn into it, as a reference-to-video model puts the subject into the shot."""

from __future__ import annotations

import cv2
import numpy as np


def opening_frame(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top, bottom = rng.uniform(20, 90, 3), rng.uniform(120, 230, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones((1, width, 1), np.float32)
    xs = np.arange(width, dtype=np.float32)
    for layer in range(3):
        base = height * (0.55 + 0.12 * layer)
        amplitude = height * rng.uniform(0.03, 0.08)
        phase, wavelength = rng.uniform(0, 2 * np.pi), width / rng.uniform(1.0, 3.0)
        ridge = base + amplitude * np.sin(xs / wavelength * 2 * np.pi + phase)
        shade = rng.uniform(30, 160, 3) * (1.0 - 0.2 * layer)
        mask = np.arange(height, dtype=np.float32)[:, None] >= ridge[None, :]
        image[mask] = shade
    for _ in range(12):  # lights / stars: small sharp details that blur visibly
        cx, cy = int(rng.uniform(0, width)), int(rng.uniform(0, height * 0.5))
        radius = max(1, int(rng.uniform(0.003, 0.012) * width))
        cv2.circle(image, (cx, cy), radius, rng.uniform(200, 255, 3).tolist(), -1, lineType=cv2.LINE_AA)
    texture = rng.normal(0.0, 4.0, (height // 4 + 1, width // 4 + 1, 1)).astype(np.float32)
    image += cv2.resize(texture, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def with_reference(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The frame with the reference image inset at the lower right (a quarter of the width, framed)."""
    height, width = frame.shape[:2]
    scale = min(width / 4 / reference.shape[1], height / 2 / reference.shape[0])  # keeps its proportions
    inset_w, inset_h = max(8, round(reference.shape[1] * scale)), max(8, round(reference.shape[0] * scale))
    thumb = cv2.resize(reference, (inset_w, inset_h), interpolation=cv2.INTER_AREA)
    out = frame.copy()
    margin = max(2, width // 64)
    top, left = height - inset_h - margin, width - inset_w - margin
    cv2.rectangle(out, (left - 2, top - 2), (left + inset_w + 1, top + inset_h + 1), (240, 240, 240), -1)
    out[top : top + inset_h, left : left + inset_w] = thumb
    return out
