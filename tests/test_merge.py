"""Merging real MP4s: frame counts, gapless audio, A/V sync measured by decoding, and the fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_extend.media.frames import last_frame
from sora_extend.media.merge import JoinPlan, merge_videos
from sora_extend.media.probe import probe
from tests.media_factory import beep_onsets, decode_all, decode_audio, ffmpeg, flash_times, read_index, write_clip

FPS = 24


def _sync_offsets(path: Path) -> list[float]:
    flashes = flash_times(path)
    samples, rate = decode_audio(path)
    beeps = beep_onsets(samples, rate)
    assert len(flashes) == len(beeps), (flashes, beeps)
    return [abs(f - b) for f, b in zip(flashes, beeps, strict=True)]


def test_stream_copy_cut_joins_keep_every_frame_and_sync(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{k}.mp4", 48, flash_frame=12 + k, start_index=100 * k) for k in range(4)]
    result = merge_videos(clips, tmp_path / "out.mp4", [JoinPlan(transition="cut")] * 3)
    assert result.method == "stream-copy"
    frames = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 4 * 48
    assert result.duration == pytest.approx(8.0, abs=1e-6)
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(8.0, abs=0.03)
    offsets = _sync_offsets(tmp_path / "out.mp4")
    assert len(offsets) == 4
    assert max(offsets) <= 0.005


def test_continuous_joins_show_the_repeated_frame_for_one_frame_period(tmp_path: Path) -> None:
    first = write_clip(tmp_path / "a.mp4", 48, flash_frame=30)
    second = write_clip(tmp_path / "b.mp4", 49, first=last_frame(first), start_index=500, flash_frame=20)
    third = write_clip(tmp_path / "c.mp4", 49, first=last_frame(second), start_index=900, flash_frame=10)
    joins = [JoinPlan(dedupe_first_frame=True)] * 2
    result = merge_videos([first, second, third], tmp_path / "out.mp4", joins)
    assert result.method == "stream-copy"
    frames = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 48 + 49 + 49  # nothing dropped
    times = [t for t, _ in frames]
    # The repeated image: segment a's last frame and segment b's first frame share one frame period.
    join = 47
    assert read_index(frames[join][1]) == read_index(frames[join + 1][1]) == 47
    assert times[join + 2] - times[join] == pytest.approx(1 / FPS, abs=1e-4)
    assert times[join + 1] - times[join] == pytest.approx(0.5 / FPS, abs=1e-4)
    assert result.duration == pytest.approx((48 + 48 + 48) / FPS, abs=1e-6)
    assert max(_sync_offsets(tmp_path / "out.mp4")) <= 0.005


def test_segments_without_audio_get_silence_not_a_gap(tmp_path: Path) -> None:
    clips = [
        write_clip(tmp_path / "a.mp4", 24, flash_frame=5),
        write_clip(tmp_path / "b.mp4", 24, audio_seconds=0),
        write_clip(tmp_path / "c.mp4", 24, flash_frame=5),
    ]
    result = merge_videos(clips, tmp_path / "out.mp4", [JoinPlan(transition="cut")] * 2)
    assert result.method == "stream-copy"
    samples, rate = decode_audio(tmp_path / "out.mp4")
    assert len(samples) / rate == pytest.approx(3.0, abs=0.03)
    assert beep_onsets(samples, rate) == pytest.approx([5 / FPS, 2 + 5 / FPS], abs=0.005)


def test_different_sizes_fall_back_to_a_reencode(tmp_path: Path) -> None:
    clips = [
        write_clip(tmp_path / "a.mp4", 24, width=320, height=180, flash_frame=6),
        write_clip(tmp_path / "b.mp4", 24, width=480, height=270, flash_frame=6),
    ]
    result = merge_videos(clips, tmp_path / "out.mp4", [JoinPlan(transition="cut")], size=(320, 180), fps=FPS)
    assert result.method == "re-encode"
    assert "width" in result.reason
    info = probe(tmp_path / "out.mp4")
    assert (info.video.width, info.video.height) == (320, 180)
    assert info.audio is not None
    assert len(decode_all(tmp_path / "out.mp4")) == 48
    assert max(_sync_offsets(tmp_path / "out.mp4")) <= 0.005


def test_crossfade_reencodes_only_the_segments_it_touches(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{k}.mp4", 48, flash_frame=18, start_index=100 * k) for k in range(4)]
    joins = [JoinPlan(transition="cut"), JoinPlan(transition="crossfade", crossfade_s=0.5), JoinPlan(transition="cut")]
    result = merge_videos(clips, tmp_path / "out.mp4", joins)
    assert result.method == "stream-copy, 2 of 4 segments re-encoded"
    frames = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 4 * 48 - 12
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(8.0 - 0.5, abs=0.05)
    untouched = [read_index(rgb) for _, rgb in frames[:48]]
    assert untouched[:18] + untouched[19:] == [*range(18), *range(19, 48)]  # clip 1 copied (18: the flash)
    mid_fade = frames[48 + 48 - 6][1]
    # Halfway through the fade the frame is a blend: its index blocks are neither clip's clean pattern.
    assert 20 < mid_fade[:30].mean() < 240
    assert max(_sync_offsets(tmp_path / "out.mp4")) <= 0.005


def test_crossfade_between_foreign_encodes_reencodes_everything(tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"{k}.mp4", 48) for k in range(2)]
    foreign = [tmp_path / f"foreign{k}.mp4" for k in range(2)]
    for clip, target in zip(clips, foreign, strict=True):  # another encoder's settings, as a provider's
        ffmpeg("-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(target))
    result = merge_videos(foreign, tmp_path / "out.mp4", [JoinPlan(transition="crossfade", crossfade_s=0.5)])
    assert result.method == "re-encode" and "codec parameters" in result.reason
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(4.0 - 0.5, abs=0.05)


def test_join_count_must_match(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4", 12)
    with pytest.raises(ValueError, match="need 1 joins"):
        merge_videos([clip, clip], tmp_path / "out.mp4", [])
