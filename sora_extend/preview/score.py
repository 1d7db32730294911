"""The offline stand-in for a music model: a procedural score for the whole video, for $0.

A slow arpeggio of bell tones (decaying partials) over a soft pad, its key and pace drawn from the seed.
It lives above the preview clips' own sound (their voice stays under 2 kHz, the bells ring from 2.3 to
about 5 kHz), so a listener, and a test, can tell the two apart.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from sora_extend.media.audio import AUDIO_RATE

_SCALE = (0, 2, 4, 7, 9)  # major pentatonic
BELL_LOW_HZ = 2300.0
BELL_BAND_HZ = (BELL_LOW_HZ, 5500.0)  # where the bells' notes lie (their partials ring higher, softer)


def render_score(seconds: float, seed: int) -> np.ndarray:
    """Float32 stereo (2, n) at 48 kHz."""
    n = max(1, round(seconds * AUDIO_RATE))
    rng = np.random.default_rng(seed)
    root = BELL_LOW_HZ * 2 ** (int(rng.integers(0, 6)) / 12)
    notes = [root * 2 ** (step / 12) for step in _SCALE]  # one octave: the partials stay far under Nyquist
    beat = float(rng.uniform(0.22, 0.36))  # seconds between notes
    score = np.zeros((2, n), dtype=np.float64)
    ring = round(1.2 * AUDIO_RATE)
    t = np.arange(ring) / AUDIO_RATE
    for k, at in enumerate(range(0, n, round(beat * AUDIO_RATE))):
        hz = notes[int(rng.integers(0, len(notes)))]
        bell = np.exp(-t * 4.0) * (np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(2 * np.pi * hz * 2.01 * t))
        bell[: min(ring, 48)] *= np.linspace(0.0, 1.0, min(ring, 48))  # a soft strike, not a click
        end = min(n, at + ring)
        pan = 0.3 + 0.4 * ((k * 7) % 5) / 4
        score[0, at:end] += 0.12 * (1 - pan) * bell[: end - at]
        score[1, at:end] += 0.12 * pan * bell[: end - at]
    whole = np.arange(n) / AUDIO_RATE
    pad = 0.02 * np.sin(2 * np.pi * notes[0] * whole) * (0.6 + 0.4 * np.sin(2 * np.pi * whole / 7.0))
    return (score + pad).astype(np.float32)


def write_wav(samples: np.ndarray, path: Path) -> Path:
    """16-bit PCM WAV at 48 kHz, stereo."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=AUDIO_RATE)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T.reshape(1, -1)), format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
