"""ffmpeg audio filters (alimiter, sidechaincompress) on float32 stereo arrays, through PyAV's filter graph."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.filter import Graph

from sora_extend.media.audio import AUDIO_RATE

CHUNK = 8192


class AudioFilter:
    """A graph from one or more stereo inputs through `filter_name` to planar float output; samples go in
    as (2, n) arrays, in step across the inputs, and come out the same way."""

    def __init__(self, filter_name: str, options: str, inputs: int = 1) -> None:
        self.graph = Graph()
        self.sources = [
            self.graph.add_abuffer(
                format="fltp", sample_rate=AUDIO_RATE, layout="stereo", time_base=Fraction(1, AUDIO_RATE), name=f"in{k}"
            )
            for k in range(inputs)
        ]
        work = self.graph.add(filter_name, options)
        planar = self.graph.add("aformat", "sample_fmts=fltp")
        self.sink = self.graph.add("abuffersink")
        for k, source in enumerate(self.sources):
            source.link_to(work, 0, k)
        work.link_to(planar)
        planar.link_to(self.sink)
        self.graph.configure()
        self.pts = 0

    def push(self, *signals: np.ndarray) -> np.ndarray:
        """Filter the next samples of every input; returns what the filter let out so far."""
        length = signals[0].shape[1]
        for begin in range(0, length, CHUNK):
            for source, signal in zip(self.sources, signals, strict=True):
                chunk = np.ascontiguousarray(signal[:, begin : begin + CHUNK], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = AUDIO_RATE, self.pts + begin
                source.push(frame)
        self.pts += length
        return self._drain()

    def flush(self) -> np.ndarray:
        for source in self.sources:
            source.push(None)
        return self._drain()

    def _drain(self) -> np.ndarray:
        out = []
        while True:
            try:
                out.append(self.sink.pull().to_ndarray())
            except (av.BlockingIOError, av.EOFError):
                break
        return np.concatenate(out, axis=1) if out else np.zeros((2, 0), dtype=np.float32)
