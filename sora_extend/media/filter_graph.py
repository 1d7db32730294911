"""ffmpeg audio filters (ebur128, alimiter, sidechaincompress) on float32 stereo arrays, through PyAV's
filter graph."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import numpy as np
from av.filter import Graph

from sora_extend.media.audio import AUDIO_RATE

CHUNK = 8192


class AudioFilter:
    """A graph from one or more stereo inputs through a chain of filters (name, options) to planar float
    output; samples go in as (2, n) arrays, in step across the inputs, and come out the same way, unless
    `keep` is off (a meter: only what it reports matters)."""

    def __init__(self, chain: list[tuple[str, str]], inputs: int = 1, keep: bool = True) -> None:
        self.keep = keep
        self.graph = Graph()
        self.sources = [
            self.graph.add_abuffer(
                format="fltp", sample_rate=AUDIO_RATE, layout="stereo", time_base=Fraction(1, AUDIO_RATE), name=f"in{k}"
            )
            for k in range(inputs)
        ]
        filters = [self.graph.add(name, options) for name, options in chain]
        filters.append(self.graph.add("aformat", "sample_fmts=fltp"))
        self.sink = self.graph.add("abuffersink")
        for k, source in enumerate(self.sources):
            source.link_to(filters[0], 0, k)
        for before, after in itertools.pairwise([*filters, self.sink]):
            before.link_to(after)
        self.graph.configure()
        self.pts = 0
        self.metadata: dict[str, str] = {}  # the latest of what the filter reported on the frames it let out

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
                frame = self.sink.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            if self.keep:
                out.append(frame.to_ndarray())
            self.metadata.update(frame.metadata)
        return np.concatenate(out, axis=1) if out else np.zeros((2, 0), dtype=np.float32)
