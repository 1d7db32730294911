"""Caption layout with moviepy's TextClip (wrapping, alignment) in Noto Sans KR, which the project
installs (pylopdf-fonts-ko), so Hangul renders the same on every machine whatever fonts the OS has."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pylopdf_fonts_ko
from PIL import ImageFont

MAX_CAPTION_CHARS = 220


def font_path() -> str:
    return str(pylopdf_fonts_ko.sans_path())


@lru_cache(maxsize=32)
def caption_layer(text: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and an alpha mask (float 0-1), both full-frame, with the caption at the bottom."""
    from moviepy import TextClip  # a quarter of a second to import: only runs that render previews pay it

    if len(text) > MAX_CAPTION_CHARS:
        text = text[: MAX_CAPTION_CHARS - 1].rstrip() + "…"
    font_size = max(12, round(min(width, height) * 0.035))
    box_width = round(width * 0.9)
    margin = (font_size // 2, font_size // 3)
    clip = TextClip(
        font=font_path(),
        text="\n".join(wrap(text, font_size, box_width - 2 * margin[0])),
        font_size=font_size,
        size=(box_width, None),
        method="label",
        color="white",
        bg_color=(0, 0, 0, 150),
        text_align="center",
        margin=margin,
        transparent=True,
    )
    rgb = clip.get_frame(0).astype(np.uint8)
    alpha = clip.mask.get_frame(0).astype(np.float32) if clip.mask is not None else np.ones(rgb.shape[:2])
    clip.close()
    h, w = rgb.shape[:2]
    h = min(h, height)
    layer = np.zeros((height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=np.float32)
    top = height - h - round(height * 0.04)
    left = (width - min(w, width)) // 2
    layer[top : top + h, left : left + min(w, width)] = rgb[:h, : min(w, width)]
    mask[top : top + h, left : left + min(w, width)] = alpha[:h, : min(w, width)]
    return layer, mask


def wrap(text: str, font_size: int, width: int) -> list[str]:
    """Lines of `text` no wider than `width` pixels, broken at spaces (inside a word only when the word alone
    is too wide). TextClip's own "caption" wrapping measures the text once per character, about 0.5 s per
    caption; measuring once per word makes the same lines in a few milliseconds."""
    font = ImageFont.truetype(font_path(), font_size)
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # a word wider than the box (e.g. text without spaces) breaks where it must
            if line and font.getlength(line + char) > width:
                lines.append(line)
                line = ""
            line += char
    return [*lines, line] if line else lines
