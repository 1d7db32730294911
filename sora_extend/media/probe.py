"""What a media file really holds: streams, sizes, rates and durations, read with PyAV."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
from pydantic import BaseModel

from sora_extend.errors import MediaError


class VideoInfo(BaseModel):
    codec: str
    width: int
    height: int
    pix_fmt: str
    fps: float
    fps_fraction: str
    time_base: str
    duration: float
    frames: int  # from the container's sample table; exact for MP4, unlike OpenCV's estimate
    extradata_sha256: str

    def stream_copy_key(self) -> tuple[object, ...]:
        """Segments can share one stream-copied track only if all of this matches."""
        return (self.codec, self.width, self.height, self.pix_fmt, self.fps_fraction, self.extradata_sha256)


class AudioInfo(BaseModel):
    codec: str
    sample_rate: int
    channels: int
    duration: float


class MediaInfo(BaseModel):
    path: str
    size_bytes: int
    duration: float
    video: VideoInfo | None
    audio: AudioInfo | None


def _seconds(value: int | None, time_base: Fraction | None) -> float:
    if value is None or time_base is None:
        return 0.0
    return float(value * time_base)


def probe(path: Path) -> MediaInfo:
    """Probe a media file; raises MediaError if it cannot be opened as media."""
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path.name} is not a readable media file: {exc}") from exc
    with container:
        video = audio = None
        if container.streams.video:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            video = VideoInfo(
                codec=ctx.name,
                width=ctx.width,
                height=ctx.height,
                pix_fmt=ctx.format.name if ctx.format else "",
                fps=float(rate),
                fps_fraction=f"{rate.numerator}/{rate.denominator}" if rate else "0/1",
                time_base=str(stream.time_base),
                duration=_seconds(stream.duration, stream.time_base),
                frames=stream.frames,
                extradata_sha256=hashlib.sha256(ctx.extradata or b"").hexdigest(),
            )
        if container.streams.audio:
            stream = container.streams.audio[0]
            audio = AudioInfo(
                codec=stream.codec_context.name,
                sample_rate=stream.codec_context.sample_rate,
                channels=stream.codec_context.channels,
                duration=_seconds(stream.duration, stream.time_base),
            )
        duration = float(container.duration / av.time_base) if container.duration else 0.0
    return MediaInfo(path=str(path), size_bytes=path.stat().st_size, duration=duration, video=video, audio=audio)
