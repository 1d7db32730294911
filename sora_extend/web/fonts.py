"""A font for self-contained pages: the shipped Noto Sans KR (SIL OFL), cut down to the characters one
page uses, as a CSS @font-face rule with the font inline. A page then shows Hangul on any device, even
one without a Korean font, and loads nothing from the internet."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import pylopdf_fonts_ko

if TYPE_CHECKING:
    from fontTools.ttLib import TTFont

FAMILY = "Sora Extend Sans KR"


def _font() -> TTFont:
    """The shipped font, parsed lazily. fontTools is imported here, by the first page that needs the font:
    a run's first step does not wait for it."""
    from fontTools.ttLib import TTFont

    return TTFont(io.BytesIO(_font_bytes()), lazy=True)


@lru_cache(maxsize=1)
def _font_bytes() -> bytes:
    with open(pylopdf_fonts_ko.sans_path(), "rb") as handle:
        return handle.read()


@lru_cache(maxsize=64)
def subset_font(characters: str) -> tuple[bytes, list[int]]:
    """An OpenType font holding only `characters`, and the code points it holds (those the font has).
    Cutting takes most of a second; pages with the same characters (a worker's runs, a served library)
    get the same cut once."""
    from fontTools import subset

    options = subset.Options()
    options.layout_features = ["*"]  # keep Hangul jamo composition and kerning
    options.notdef_outline = True
    font = _font()
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue(), sorted(font.getBestCmap())


def _unicode_range(points: list[int]) -> str:
    spans: list[list[int]] = []
    for point in points:
        if spans and point == spans[-1][1] + 1:
            spans[-1][1] = point
        else:
            spans.append([point, point])
    return ", ".join(f"U+{a:X}" if a == b else f"U+{a:X}-{b:X}" for a, b in spans)


def _characters(text: str) -> str:
    return "".join(sorted(char for char in set(text) if ord(char) > 0x7F and not char.isspace()))


def _rule(src: str, points: list[int]) -> str:
    return (
        f'@font-face {{ font-family: "{FAMILY}"; src: url({src}) format("opentype"); '
        f"font-weight: 100 900; font-display: swap; unicode-range: {_unicode_range(points)}; }}"
    )


def font_face(text: str) -> str:
    """The @font-face rule for the non-ASCII characters of `text`, the font inline; empty when the font has
    none of them.

    The face claims exactly the characters it holds (unicode-range), so it can come first in a font stack:
    `system-ui` on Linux must not come before it, as Chrome then draws missing Hangul as empty boxes
    instead of falling back along the stack. Every weight maps to it (bold is synthesised)."""
    characters = _characters(text)
    if not characters:
        return ""
    font, points = subset_font(characters)
    if not points:
        return ""
    return _rule(f"data:font/otf;base64,{base64.b64encode(font).decode('ascii')}", points)


@lru_cache(maxsize=1)
def _covered() -> frozenset[int]:
    return frozenset(_font().getBestCmap())


def linked_font_face(text: str, url: Callable[[str], str]) -> str:
    """The same rule for a page served live, with the font fetched from `url(characters)` instead of
    inline: cutting a font takes about half a second, which a page served on every request cannot wait
    for; the font's own request can (and the browser keeps it while the characters stay the same)."""
    characters = "".join(char for char in _characters(text) if ord(char) in _covered())
    return _rule(url(characters), [ord(char) for char in characters]) if characters else ""


def font_file(characters: str) -> bytes:
    """The font cut to `characters`, as served for `linked_font_face`."""
    return subset_font(characters)[0]
