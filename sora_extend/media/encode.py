"""A small H.264 + AAC MP4 writer over PyAV, shared by the preview renderer, tests and benchmarks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from sora_extend.media.audio import AacEncoder


class Mp4Writer:
    """Writes RGB frames and float32 stereo audio to an MP4.

    x264 runs with a fixed thread count: its output depends on the thread count, and the preview
    renderer promises the same bytes for the same inputs on any machine.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        fps: int,
        audio: bool = True,
        crf: int = 18,
        preset: str = "veryfast",
        gop_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        self.container.metadata["encoder"] = "sora-extend"
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width = width
        self.video.height = height
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = Fraction(1, fps)
        self.video.options = {
            "crf": str(crf),
            "preset": preset,
            "g": str(max(1, round(fps * gop_seconds))),
            "threads": "2",
            "x264-params": "scenecut=0",
        }
        self.audio = AacEncoder(self.container, bit_rate=128_000) if audio else None
        self._frame_index = 0

    def write_frame(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._frame_index
        self._frame_index += 1
        self.container.mux(self.video.encode(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        """Append float32 samples shaped (2, n) in [-1, 1]."""
        if self.audio is None:
            raise ValueError("this writer was opened without audio")
        self.container.mux(self.audio.encode(samples))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.flush())
        self.container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.container.close()
