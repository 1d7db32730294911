"""Loudness: each clip's integrated loudness (ITU-R BS.1770 / EBU R128: ffmpeg's ebur128 filter), the gain
that brings it to the target, and the peak limiter that keeps the result under -1 dBTP (ffmpeg's alimiter).
Both run through PyAV's filter graph: maintained implementations, no hand-written K-weighting or gating,
and nothing to install beyond PyAV (pyloudnorm would have pulled in SciPy: 77 MB more per merge process).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sora_extend.media.audio import AUDIO_RATE, decode_track
from sora_extend.media.filter_graph import AudioFilter

DEFAULT_TARGET_LUFS = -14.0  # YouTube's and Spotify's level (EBU R128 broadcast is -23, Apple -16)
MIN_TARGET_LUFS, MAX_TARGET_LUFS = -70.0, -5.0  # the range ffmpeg's loudnorm accepts
TRUE_PEAK_DBTP = -1.0  # the ceiling every target promises
# alimiter limits sample peaks; the peaks between samples, and the AAC encoder, add up to about a dB on top
# (measured with ffmpeg's ebur128 on the merged files), so it limits 1.5 dB under the true-peak ceiling.
LIMIT_DBFS = TRUE_PEAK_DBTP - 1.5
LIMIT_ATTACK_MS, LIMIT_RELEASE_MS = 5.0, 50.0
# Where the gain drives peaks into the limiter, the limiter takes loudness off too; at most this much is
# made up for (a clip of sharp peaks over near-silence would otherwise be driven ever harder).
MAX_MAKEUP_DB = 6.0
# A clip measuring under this is silence or room tone: bringing it to -14 LUFS would mean 30 dB of hiss,
# so it keeps its level.
SILENT_LUFS = -45.0

METER = ("ebur128", "metadata=1")
GATE_BLOCK = round(0.4 * AUDIO_RATE)  # BS.1770's gating block: nothing shorter has a loudness
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770: blocks under this are silence


def integrated_lufs(samples: np.ndarray) -> float | None:
    """Integrated loudness of float32 stereo samples (2, n); None for silence, or when shorter than one
    gating block."""
    if samples.shape[1] <= GATE_BLOCK:
        return None
    return _metered(AudioFilter([METER], keep=False), samples)


def _metered(meter: AudioFilter, samples: np.ndarray) -> float | None:
    """What a graph ending in the loudness meter reads for `samples`."""
    meter.push(samples)
    meter.flush()
    value = float(meter.metadata.get("lavfi.r128.I", "-inf"))
    return round(value, 2) if np.isfinite(value) and value > ABSOLUTE_GATE_LUFS else None


def spans_lufs(
    video: Path, duration: float, spans: list[tuple[float, float]]
) -> tuple[float | None, list[float | None]]:
    """A file's integrated loudness over its `duration`, and over each (start, end) span, in seconds."""
    samples, _, _ = decode_track(video).read(0.0, round(duration * AUDIO_RATE))
    parts = [samples[:, round(start * AUDIO_RATE) : round(end * AUDIO_RATE)] for start, end in spans]
    return integrated_lufs(samples), [integrated_lufs(part) for part in parts]


def matching_gain_db(lufs: float | None, target: float | None) -> float:
    """The gain that brings a clip measuring `lufs` to `target` (0: no target, or a silent clip)."""
    if target is None or lufs is None or lufs < SILENT_LUFS:
        return 0.0
    return round(target - lufs, 2)


def db_to_gain(db: float) -> float:
    return float(10 ** (db / 20))


def limited_gain_db(samples: np.ndarray, gain_db: float, target: float) -> float:
    """`gain_db`, plus what the peak limiter will take off the loudness where the gain drives peaks past
    its limit (measured on a limited copy, and made up once)."""
    gain = db_to_gain(gain_db)
    if float(np.abs(samples).max(initial=0.0)) * gain <= db_to_gain(LIMIT_DBFS):
        return gain_db
    after = _metered(AudioFilter([_LIMITER, METER], keep=False), samples * np.float32(gain))
    if after is None:
        return gain_db
    return round(gain_db + min(MAX_MAKEUP_DB, max(0.0, target - after)), 2)


def peak_limiter() -> AudioFilter:
    """ffmpeg's alimiter with its look-ahead compensated: as many samples come out as went in, at the same
    instants (A/V sync holds), none above LIMIT_DBFS."""
    return AudioFilter([_LIMITER])


_LIMITER = (
    "alimiter",
    f"limit={10 ** (LIMIT_DBFS / 20):.6f}:attack={LIMIT_ATTACK_MS}:release={LIMIT_RELEASE_MS}:level=0:latency=1",
)
