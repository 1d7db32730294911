"""Hand-off frame extraction on real MP4s, including files whose metadata lies."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sora_extend.errors import MediaError
from sora_extend.media.frames import first_frame, last_frame, last_frames
from sora_extend.media.probe import probe
from tests.media_factory import (
    decode_all,
    fragmented,
    read_index,
    with_edit_list,
    write_clip,
    write_vfr_clip,
)


def test_last_frame_is_the_true_last_frame(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "plain.mp4", 53)
    assert read_index(last_frame(clip)) == 52
    assert read_index(first_frame(clip)) == 0


def test_last_frames_come_in_order_with_distance_from_the_end(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "plain.mp4", 40)
    frames = last_frames(clip, 5)
    assert [read_index(f.rgb) for f in frames] == [35, 36, 37, 38, 39]
    assert [f.from_end for f in frames] == [4, 3, 2, 1, 0]


def test_audio_longer_than_video(tmp_path: Path) -> None:
    # ffmpeg -sseof starts after the last video frame on such files and writes nothing
    clip = write_clip(tmp_path / "long-audio.mp4", 48, audio_seconds=4.0)
    info = probe(clip)
    assert info.audio is not None and info.audio.duration > info.video.duration + 1.5
    assert read_index(last_frame(clip)) == 47


def test_edit_list_cut(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "source.mp4", 96, gop_seconds=2.0)
    cut = with_edit_list(source, tmp_path / "cut.mp4", start=0.7)
    truth = decode_all(cut)
    assert read_index(truth[0][1]) > 0  # the edit list hides the frames before the cut
    assert np.array_equal(last_frame(cut), truth[-1][1])
    assert read_index(last_frame(cut)) == 95


def test_fragmented_mp4(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "source.mp4", 72)
    frag = fragmented(source, tmp_path / "frag.mp4")
    capture = cv2.VideoCapture(str(frag))
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert reported != 72  # OpenCV's count is wrong on fragmented files: why we do not seek by it
    assert read_index(last_frame(frag)) == 71


def test_variable_frame_rate(tmp_path: Path) -> None:
    times = [0.0, 0.04, 0.05, 0.2, 0.21, 0.5, 0.9, 0.91, 1.7, 1.75, 2.9]
    clip = write_vfr_clip(tmp_path / "vfr.mp4", times)
    frames = last_frames(clip, 2)
    assert [read_index(f.rgb) for f in frames] == [9, 10]
    assert frames[-1].time == pytest.approx(2.9, abs=0.002)


def test_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not an mp4 at all")
    with pytest.raises(MediaError, match=r"bogus\.mp4"):
        last_frame(bogus)
