"""Exact frame decode with PyAV.

The last frame is found by seeking (backwards, to a keyframe) about a second before the end of the
*video stream's* own duration and decoding to the end of the file. Container metadata can lie (edit
lists, fragmented MP4, VFR, audio longer than video): seeking only needs to land early enough, and
decoding to EOF always reaches the true last frame. If the seek yields nothing, the whole stream is
decoded. OpenCV's frame-count seek is not used: it returns no frame on such files.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from sora_extend.errors import MediaError

SEEK_MARGIN_S = 1.0


@dataclass(frozen=True)
class DecodedFrame:
    rgb: np.ndarray
    time: float  # presentation time in seconds
    from_end: int  # 0 = the last frame of the stream, 1 = the one before, ...


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{Path(path).name} is not a readable video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{Path(path).name} has no video stream")
    return container


def _video_end_seconds(container: av.container.InputContainer) -> float:
    stream = container.streams.video[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base) + float(stream.start_time or 0) * float(stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _decode_tail(container: av.container.InputContainer, count: int, seek_to: float | None) -> list[DecodedFrame]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if seek_to is not None:
        container.seek(int(seek_to / stream.time_base), stream=stream, backward=True, any_frame=False)
    # Keep decoded frames and convert only the ones returned: RGB conversion costs more than decoding.
    tail: deque[av.VideoFrame] = deque(maxlen=count)
    for frame in container.decode(stream):
        tail.append(frame)
    size = len(tail)
    return [
        DecodedFrame(rgb=frame.to_ndarray(format="rgb24"), time=float(frame.time or 0.0), from_end=size - 1 - i)
        for i, frame in enumerate(tail)
    ]


def last_frames(path: Path, count: int = 1) -> list[DecodedFrame]:
    """The last `count` frames of the video stream in presentation order (the last one is last)."""
    with _open(path) as container:
        end = _video_end_seconds(container)
        window = SEEK_MARGIN_S + count / float(container.streams.video[0].guessed_rate or 24)
        frames: list[DecodedFrame] = []
        if end > window:
            try:
                frames = _decode_tail(container, count, end - window)
            except av.error.FFmpegError:
                frames = []
        if len(frames) < count:
            container.seek(0)
            try:
                frames = _decode_tail(container, count, None)
            except av.error.FFmpegError as exc:
                raise MediaError(f"{Path(path).name} is damaged: decoding failed ({exc})") from exc
    if not frames:
        raise MediaError(f"{Path(path).name}: no video frame could be decoded")
    return frames


def last_frame(path: Path) -> np.ndarray:
    return last_frames(path, 1)[-1].rgb


def iter_frames(path: Path) -> Iterator[DecodedFrame]:
    """Every frame in presentation order; `from_end` is unknown while streaming and set to -1."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield DecodedFrame(rgb=frame.to_ndarray(format="rgb24"), time=float(frame.time or 0.0), from_end=-1)


def video_start(path: Path) -> float:
    """When the first frame is shown, on the file's own clock (what its sound is placed against)."""
    with _open(path) as container:
        for frame in container.decode(container.streams.video[0]):
            return float(frame.time or 0.0)
    raise MediaError(f"{Path(path).name}: no video frame could be decoded")


def first_frame(path: Path) -> np.ndarray:
    for frame in iter_frames(path):
        return frame.rgb
    raise MediaError(f"{Path(path).name}: no video frame could be decoded")


def sample_frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` evenly spaced frames (RGB), decoding the stream once and converting only those frames."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames
        if not total:  # no frame count in the container: count first
            total = sum(1 for _ in container.decode(stream))
            container.seek(0)
        wanted = {round(i * (total - 1) / max(1, count - 1)) for i in range(count)}
        return [frame.to_ndarray(format="rgb24") for i, frame in enumerate(container.decode(stream)) if i in wanted]
