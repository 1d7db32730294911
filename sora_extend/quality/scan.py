"""One decode pass over a clip: the per-frame figures every judgement of it is made from.

Judging must cost a fraction of a second of CPU per clip, so each frame is looked at as the decoder
hands it over, without converting it to RGB: its luma plane is read in place, shrunk to a small grey
thumbnail (what a viewer perceives of the frame's layout) and summarised (level, contrast). Only a few
frames a second are converted to RGB, for their colour and sharpness, plus the first and the last frame,
which are compared with the images the clip was asked to start and end on. The deblocking filter is
skipped: it changes a frame by a fraction of a grey level, nothing these figures can see, and costs a
sixth of the decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from sora_extend.errors import MediaError
from sora_extend.media.audio import decode_audio_span
from sora_extend.media.images import lab_stats, sharpness

THUMB_WIDTH = 160  # grey thumbnail (about this wide): layout and motion, blind to encoder noise
SAMPLES_PER_SECOND = 2  # RGB frames for colour and sharpness
# Two more right after the first frame: the model's own rendering, before anything can have gone wrong, says
# how sharp the clip is meant to be (its first frame is the image it was given, often crisper).
OPENING_S = (0.15, 0.35)
PICTURE_WIDTH = 512  # the sampled frames are kept this wide, to be shown (to a chat model judge, on a page)
SHARPNESS_WIDTH = 640  # sharpness is measured at this width, whatever the clip's size, so it compares across sizes
COLOUR_WIDTH = 160
GRID = 4  # level and contrast are read from every GRID-th pixel of every GRID-th row
# Luma as coded (video range: black is 16) at or under a tenth of the range above black counts as black, as
# ffmpeg's blackdetect counts it.
BLACK_LUMA = 38


@dataclass
class Sample:
    """An RGB frame's figures: where it is, its mean Lab colour and its sharpness, and a small copy of it."""

    index: int
    time: float
    lab: np.ndarray
    sharpness: float
    picture: np.ndarray


def _sample(index: int, time: float, rgb: np.ndarray) -> Sample:
    smaller = _width(rgb, SHARPNESS_WIDTH)  # one resize of the full frame; the rest start from this copy
    lab, sharp = sample_figures(smaller)
    return Sample(index=index, time=time, lab=lab, sharpness=sharp, picture=_width(smaller, PICTURE_WIDTH))


@dataclass
class ClipScan:
    """What one pass over a clip saw. Arrays have one entry per decoded frame, in presentation order."""

    width: int
    height: int
    fps: float
    duration: float
    times: np.ndarray
    thumbs: np.ndarray  # (frames, height, width) float32 grey, about THUMB_WIDTH wide
    level: np.ndarray  # mean luma, 0-255
    contrast: np.ndarray  # luma standard deviation
    lit: np.ndarray  # fraction of the picture brighter than black (BLACK_LUMA)
    samples: list[Sample]
    first: np.ndarray  # RGB
    last: np.ndarray  # RGB
    has_audio: bool
    audio_dbfs: float | None  # RMS level of the whole soundtrack; None without one
    change: np.ndarray = field(init=False)  # mean abs thumbnail difference to the previous frame (0 for frame 0)

    def __post_init__(self) -> None:
        steps = np.abs(np.diff(self.thumbs, axis=0)).mean(axis=(1, 2)) if len(self.thumbs) > 1 else np.zeros(0)
        self.change = np.concatenate([[0.0], steps]).astype(np.float32)

    @property
    def frames(self) -> int:
        return len(self.times)

    def frame_s(self) -> float:
        return 1.0 / self.fps if self.fps else 1.0 / 24

    def pictures(self, count: int) -> list[np.ndarray]:
        """`count` of the sampled frames, evenly spaced from the first to the last."""
        picks = {round(i * (len(self.samples) - 1) / max(1, count - 1)) for i in range(count)}
        return [self.samples[i].picture for i in sorted(picks)]


def _width(rgb: np.ndarray, width: int) -> np.ndarray:
    height, now = rgb.shape[:2]
    if now <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(height * width / now))), interpolation=cv2.INTER_AREA)


def sample_figures(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean Lab colour (of a small copy: a mean needs no detail), and sharpness at SHARPNESS_WIDTH, of an RGB
    image (a frame or a still)."""
    return lab_stats(_width(rgb, COLOUR_WIDTH))[0], sharpness(_width(rgb, SHARPNESS_WIDTH))


def thumb_of(grid: np.ndarray) -> np.ndarray:
    """A luma grid shrunk by a whole factor to about THUMB_WIDTH (OpenCV's area filter is fastest at a whole
    factor, and a thumbnail needs no exact size)."""
    factor = max(1, round(grid.shape[1] / THUMB_WIDTH))
    height, width = grid.shape[0] // factor, grid.shape[1] // factor
    return cv2.resize(grid[: height * factor, : width * factor], (width, height), interpolation=cv2.INTER_AREA)


def grey_thumb(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """An RGB image as a grey thumbnail of the same size as `like` (a scan's), to compare a still with frames."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's 8-bit luma plane, read in place where the format allows."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8, count=plane.line_size * frame.height)
        return rows.reshape(frame.height, plane.line_size)[:, : frame.width]
    return frame.to_ndarray(format="gray")  # other formats (10-bit, RGB): convert


def scan_clip(path: Path, *, audio: bool = True) -> ClipScan:
    """Decode the clip once; `audio` False skips the soundtrack (for clips whose model makes none)."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{Path(path).name} is not a readable video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{Path(path).name} has no video stream")
        stream = container.streams.video[0]
        stream.codec_context.options = {"skip_loop_filter": "all"}
        fps = float(stream.average_rate or stream.guessed_rate or 24)
        every = max(1, round(fps / SAMPLES_PER_SECOND))
        opening = {round(seconds * fps) for seconds in OPENING_S}
        times: list[float] = []
        thumbs: list[np.ndarray] = []
        level: list[float] = []
        contrast: list[float] = []
        lit: list[float] = []
        samples: list[Sample] = []
        first: np.ndarray | None = None
        last_frame: av.VideoFrame | None = None
        for index, frame in enumerate(container.decode(stream)):
            grid = _luma(frame)[::GRID, ::GRID]  # a quarter of the rows and columns: plenty for these figures
            thumbs.append(thumb_of(grid))
            mean, std = cv2.meanStdDev(grid)
            level.append(float(mean[0, 0]))
            contrast.append(float(std[0, 0]))
            lit.append(cv2.countNonZero(cv2.compare(grid, BLACK_LUMA, cv2.CMP_GT)) / grid.size)
            time = float(frame.time if frame.time is not None else index / fps)
            times.append(time)
            if index % every == 0 or index in opening:
                rgb = frame.to_ndarray(format="rgb24")
                if index == 0:
                    first = rgb
                samples.append(_sample(index, time, rgb))
            last_frame = frame
        has_audio = bool(container.streams.audio)
        width, height = stream.codec_context.width, stream.codec_context.height
    if first is None or last_frame is None:
        raise MediaError(f"{Path(path).name}: no video frame could be decoded")
    last = last_frame.to_ndarray(format="rgb24")
    last_index = len(times) - 1
    if samples[-1].index != last_index:
        samples.append(_sample(last_index, times[-1], last))
    duration = times[-1] - times[0] + 1.0 / fps
    audio_dbfs = None
    if has_audio and audio:
        sound = decode_audio_span(path, times[0], 0.0, duration)
        rms = float(np.sqrt(np.mean(np.square(sound, dtype=np.float64)))) if sound.size else 0.0
        audio_dbfs = 20 * np.log10(max(rms, 1e-9))
    return ClipScan(
        width=width,
        height=height,
        fps=fps,
        duration=round(duration, 4),
        times=np.asarray(times, dtype=np.float64),
        thumbs=np.asarray(thumbs, dtype=np.float32),
        level=np.asarray(level, dtype=np.float32),
        contrast=np.asarray(contrast, dtype=np.float32),
        lit=np.asarray(lit, dtype=np.float32),
        samples=samples,
        first=first,
        last=last,
        has_audio=has_audio,
        audio_dbfs=None if audio_dbfs is None else round(float(audio_dbfs), 2),
    )
