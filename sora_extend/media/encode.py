"""A small H.264 + AAC MP4 writer over PyAV, shared by the preview renderer, tests and benchmarks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

AUDIO_RATE = 48_000
AUDIO_FRAME = 1024  # AAC frame size


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
        audio_rate: int = AUDIO_RATE,
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
        self.audio = None
        if audio:
            self.audio = self.container.add_stream("aac", rate=audio_rate)
            self.audio.layout = "stereo"
            self.audio.bit_rate = 128_000
        self.audio_rate = audio_rate
        self._frame_index = 0
        self._sample_index = 0
        self._pending = np.zeros((2, 0), dtype=np.float32)

    def write_frame(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._frame_index
        self._frame_index += 1
        self.container.mux(self.video.encode(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        """Append float32 samples shaped (2, n) in [-1, 1]; encoded in whole AAC frames."""
        if self.audio is None:
            raise ValueError("this writer was opened without audio")
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)], axis=1)
        whole = self._pending.shape[1] // AUDIO_FRAME * AUDIO_FRAME
        self._encode_audio(self._pending[:, :whole])
        self._pending = self._pending[:, whole:]

    def _encode_audio(self, samples: np.ndarray) -> None:
        assert self.audio is not None
        for start in range(0, samples.shape[1], AUDIO_FRAME):
            chunk = np.ascontiguousarray(samples[:, start : start + AUDIO_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = self.audio_rate
            frame.pts = self._sample_index
            self._sample_index += chunk.shape[1]
            self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            if self._pending.shape[1]:
                self._encode_audio(self._pending)
                self._pending = self._pending[:, :0]
            self.container.mux(self.audio.encode(None))
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
