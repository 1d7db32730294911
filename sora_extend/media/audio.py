"""Audio decoding against a video's timeline: the piece merge, trim and the soundtrack share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48_000


@dataclass(frozen=True)
class AudioTrack:
    """A file's whole audio as float32 stereo (2, n) at 48 kHz, and where it starts on the file's clock."""

    samples: np.ndarray
    start: float  # seconds (the file's own timestamps) of samples[:, 0]

    def read(self, at: float, count: int) -> tuple[np.ndarray, int, int]:
        """`count` samples from `at` seconds on the file's clock, silence where the track has none, and
        the range [lo, hi) of the result that is real audio."""
        out = np.zeros((2, count), dtype=np.float32)
        offset = round((at - self.start) * AUDIO_RATE)
        src_from, dst_from = max(0, offset), max(0, -offset)
        take = max(0, min(count - dst_from, self.samples.shape[1] - src_from))
        out[:, dst_from : dst_from + take] = self.samples[:, src_from : src_from + take]
        return out, dst_from, dst_from + take


def decode_track(path: Path) -> AudioTrack:
    """The file's first audio stream, resampled to 48 kHz stereo (empty when it has none), up to where the
    stream says it ends: an AAC decoder also hands out the encoder's padding of the last frame, which is
    not the clip's sound (and would click where a crossfade reaches into it)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return AudioTrack(np.zeros((2, 0), dtype=np.float32), 0.0)
        stream = container.streams.audio[0]
        end = float(((stream.start_time or 0) + stream.duration) * stream.time_base) if stream.duration else None
        context = stream.codec_context
        # What AAC decoders hand out for a 48 kHz stereo track needs no resampling (a fifth of the decode).
        native = (context.format.name, context.layout.name, context.sample_rate) == ("fltp", "stereo", AUDIO_RATE)
        resampler = None if native else av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        for frame in container.decode(stream):
            for resampled in resampler.resample(frame) if resampler else (frame,):
                if first_time is None:
                    first_time = float(resampled.time) if resampled.time is not None else 0.0
                chunks.append(resampled.to_ndarray())
        if resampler:
            chunks.extend(resampled.to_ndarray() for resampled in resampler.resample(None))
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), dtype=np.float32)
    if end is not None:
        samples = samples[:, : max(0, round((end - (first_time or 0.0)) * AUDIO_RATE))]
    return AudioTrack(samples.astype(np.float32, copy=False), first_time or 0.0)


def decode_audio_span(path: Path, video_start: float, start: float, length: float) -> np.ndarray:
    """Float32 stereo samples (2, n) at 48 kHz for [start, start + length) seconds of the file's video
    timeline (0 = its first video frame at `video_start`). Silence where the file has no audio there."""
    samples, _, _ = decode_track(path).read(video_start + start, round(length * AUDIO_RATE))
    return samples


class AacEncoder:
    """One AAC stream fed with float32 stereo samples of any length, encoded in whole 1024-sample
    frames with continuous timestamps: gapless across everything written to it."""

    FRAME = 1024

    def __init__(self, container: av.container.OutputContainer, bit_rate: int = 160_000) -> None:
        self.stream = container.add_stream("aac", rate=AUDIO_RATE)
        self.stream.layout = "stereo"
        self.stream.bit_rate = bit_rate
        self.pending = np.zeros((2, 0), dtype=np.float32)
        self.next_pts = 0

    def encode(self, samples: np.ndarray) -> list[av.Packet]:
        self.pending = np.concatenate([self.pending, samples.astype(np.float32, copy=False)], axis=1)
        whole = self.pending.shape[1] // self.FRAME * self.FRAME
        packets = self._encode(self.pending[:, :whole])
        self.pending = self.pending[:, whole:]
        return packets

    def _encode(self, samples: np.ndarray) -> list[av.Packet]:
        packets: list[av.Packet] = []
        for begin in range(0, samples.shape[1], self.FRAME):
            chunk = np.ascontiguousarray(samples[:, begin : begin + self.FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self.next_pts
            self.next_pts += chunk.shape[1]
            packets.extend(self.stream.encode(frame))
        return packets

    def flush(self) -> list[av.Packet]:
        packets = self._encode(self.pending) if self.pending.shape[1] else []
        self.pending = self.pending[:, :0]
        return packets + list(self.stream.encode(None))
