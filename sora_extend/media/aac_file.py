"""The merge's one AAC encoder, in a process of its own: the static ffmpeg that imageio-ffmpeg ships, fed
the finished soundtrack as float samples through a pipe, writing an .m4a whose packets the merge then
copies beside the video. One encoder for everything, so the sound stays gapless across every join.

Why a process: PyAV's encoder holds the GIL while it encodes, so the soundtrack work (decoding, measuring,
crossfading, limiting) could not run beside it on a thread. Here the encoder runs on the other core while
the sound is made, and the merge costs about what the encode alone costs when a second core is free.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from sora_extend.errors import MediaError
from sora_extend.media.audio import AUDIO_RATE


class AacFile:
    """Float32 stereo samples (2, n) in, one AAC track at 48 kHz out (an .m4a at `path`)."""

    def __init__(self, path: Path, bit_rate: int = 160_000) -> None:
        self.path = path
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "f32le", "-ar", str(AUDIO_RATE)]
        command += ["-ac", "2", "-i", "pipe:0", "-c:a", "aac", "-b:a", str(bit_rate), str(path)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, samples: np.ndarray) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(np.ascontiguousarray(samples.T, dtype=np.float32).data)
        except BrokenPipeError:  # the encoder stopped: say why
            self.close()
            raise

    def close(self) -> Path:
        """Wait for the encoder; the finished file, or MediaError with what ffmpeg said."""
        assert self.process.stdin is not None and self.process.stderr is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        errors = self.process.stderr.read()
        self.process.stderr.close()
        if self.process.wait() != 0:
            raise MediaError(f"encoding the soundtrack failed: {errors.decode(errors='replace').strip()[-300:]}")
        return self.path

    def __enter__(self) -> AacFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
