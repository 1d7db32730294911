"""The pixel judge on real MP4s: each flaw it must see, injected into clean clips at a random time and
strength, is found and named; clean clips of the kinds most easily mistaken for flaws pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sora_extend.preview.scene import opening_frame
from sora_extend.preview.still import render_still
from sora_extend.quality.flaws import Asked, clip_flaws, still_flaws
from sora_extend.quality.scan import scan_clip
from tests.flaws_factory import CleanKind, Clip, Injected, clean_clip, inject

SMALL = {"seconds": 3, "width": 320, "height": 180}


def _flaws(clip: Clip) -> list[str]:
    asked = Asked(clip.seconds, clip.width, clip.height, False, clip.first, clip.last, clip.source_last)
    return [flaw.kind for flaw in clip_flaws(scan_clip(clip.path), asked)]


@pytest.mark.parametrize("kind", ["chain", "keyframes", "text", "extension", "fade", "push", "whip", "night"])
def test_clean_clips_pass(kind: CleanKind, tmp_path: Path) -> None:
    assert _flaws(clean_clip(tmp_path, kind, 3, **SMALL)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base", "flaw", "named"),
    [
        ("chain", "cut", "cut"),
        ("push", "black", "black"),
        ("fade", "frozen", "frozen"),
        ("chain", "colour", "colour"),
        ("keyframes", "sharpness", "sharpness"),
        ("chain", "start", "start"),
        ("keyframes", "end", "end"),
        ("extension", "continuation", "continuation"),
    ],
)
def test_each_hard_flaw_is_found_and_named(base: CleanKind, flaw: Injected, named: str, tmp_path: Path) -> None:
    clean = clean_clip(tmp_path, base, 5, **SMALL)  # type: ignore[arg-type]
    spoiled = inject(clean, flaw, tmp_path / "spoiled.mp4", np.random.default_rng(11))
    assert named in _flaws(spoiled)


def test_length_size_and_silence_against_what_was_asked(tmp_path: Path) -> None:
    clip = clean_clip(tmp_path, "text", 2, **SMALL)  # type: ignore[arg-type]
    scan = scan_clip(clip.path)
    assert [flaw.kind for flaw in clip_flaws(scan, Asked(6, 320, 180))] == ["length"]
    assert [flaw.kind for flaw in clip_flaws(scan, Asked(3, 180, 320))] == ["size"]  # portrait asked
    spoiled = inject(clip, "silent", tmp_path / "silent.mp4", np.random.default_rng(1))
    words = [flaw.words for flaw in clip_flaws(scan_clip(spoiled.path), Asked(3, 320, 180, audio=True))]
    assert words and words[0].startswith("silent soundtrack")
    assert clip_flaws(scan, Asked(3, 320, 180, audio=True)) == []  # the preview's own sound is there


def test_a_keyframe_still_of_another_scene_is_not_the_same_subject() -> None:
    base = opening_frame(640, 360, 1)
    assert still_flaws(render_still(640, 360, 2, base), base, []) == []  # an edit keeps the palette
    other = still_flaws(opening_frame(640, 360, 4), base, [])
    assert [flaw.kind for flaw in other] == ["subject"]
    assert [flaw.kind for flaw in still_flaws(np.full((360, 640, 3), 128, np.uint8), base, [])] == ["blank"]
    sheet = np.full((360, 640, 3), 250, np.uint8)  # a subject on white: few of a scene's colours, not none
    sheet[90:270, 240:400] = base[90:270, 240:400]
    assert still_flaws(base, None, [sheet]) == []
    foreign = np.zeros((360, 640, 3), np.uint8)
    foreign[..., 1] = 220  # pure green: nothing of it in the scene
    assert [flaw.kind for flaw in still_flaws(base, None, [foreign])] == ["subject"]
