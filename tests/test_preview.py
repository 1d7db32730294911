"""The offline preview provider's renderer, on real MP4s."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import ImageFont

from sora_extend.media.frames import first_frame, iter_frames, last_frame
from sora_extend.media.images import psnr
from sora_extend.media.probe import probe
from sora_extend.preview import PreviewSpec, render_preview
from sora_extend.preview.captions import caption_layer, font_path
from sora_extend.preview.scene import opening_frame

SPEC = PreviewSpec(caption="한 마리 고양이가 서울의 밤거리를 걷는다", seconds=2, width=320, height=180, fps=24, seed=3)


def test_text_to_video_clip_has_the_requested_size_duration_and_audio(tmp_path: Path) -> None:
    out = render_preview(SPEC, None, tmp_path / "t2v.mp4")
    info = probe(out)
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 320, 180)
    assert info.video.frames == 48 and info.video.duration == 2.0
    assert info.audio is not None and info.audio.codec == "aac" and info.audio.sample_rate == 48000


def test_image_to_video_starts_exactly_on_the_hand_off_frame(tmp_path: Path) -> None:
    seed_frame = opening_frame(320, 180, seed=42)
    out = render_preview(SPEC, seed_frame, tmp_path / "i2v.mp4")
    assert psnr(first_frame(out), seed_frame) >= 35
    assert probe(out).video.frames == 49  # the repeated seed frame, then 2 s of new footage
    assert psnr(last_frame(out), seed_frame) < 35  # the camera moved


def test_hand_off_frame_is_resized_to_the_clip(tmp_path: Path) -> None:
    out = render_preview(SPEC, opening_frame(640, 480, seed=1), tmp_path / "resized.mp4")
    assert first_frame(out).shape == (180, 320, 3)


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    a = render_preview(SPEC, None, tmp_path / "a.mp4")
    b = render_preview(SPEC, None, tmp_path / "b.mp4")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    c = render_preview(SPEC.model_copy(update={"seed": 4}), None, tmp_path / "c.mp4")
    assert c.read_bytes() != a.read_bytes()


def test_caption_shows_mid_clip_and_never_on_the_first_or_last_frame(tmp_path: Path) -> None:
    spec = SPEC.model_copy(update={"width": 640, "height": 360})
    out = render_preview(spec, None, tmp_path / "cap.mp4")
    frames = [f.rgb for f in iter_frames(out)]
    _, mask = caption_layer(spec.caption, 640, 360)
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    band = slice(rows[0], rows[-1] + 1)
    plain = opening_frame(640, 360, seed=spec.seed)
    assert psnr(frames[0][band], plain[band]) > 35
    assert psnr(frames[len(frames) // 2][band], plain[band]) < 25
    assert np.abs(frames[-1][band].astype(int) - frames[-2][band].astype(int)).mean() < 6


def test_the_caption_font_has_real_hangul_glyphs() -> None:
    font = ImageFont.truetype(font_path(), 32)
    missing = font.getmask("\uffff").getbbox()
    for char in "한글고양이":
        bbox = font.getmask(char).getbbox()
        assert bbox is not None and bbox != missing
    assert font_path().endswith(".otf") and "site-packages" in font_path()
