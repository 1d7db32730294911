"""A quiet, deterministic audio bed: a chord per shot over a drone shared by the whole story."""

from __future__ import annotations

import numpy as np

_SEMITONES = (0, 3, 5, 7, 10)  # minor pentatonic: any two shots sound fine next to each other


def audio_bed(seconds: float, rate: int, *, story_seed: int, shot_seed: int) -> np.ndarray:
    """Float32 stereo samples shaped (2, n)."""
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    drone_hz = 55.0 * 2 ** ((story_seed % 12) / 12)
    rng = np.random.default_rng(shot_seed)
    chord = [drone_hz * 4 * 2 ** (_SEMITONES[i] / 12) for i in rng.choice(len(_SEMITONES), 3, replace=False)]
    left = 0.10 * np.sin(2 * np.pi * drone_hz * t)
    right = 0.10 * np.sin(2 * np.pi * drone_hz * t + 0.3)
    swell = 0.5 - 0.5 * np.cos(2 * np.pi * t / max(seconds, 1e-3))
    for i, hz in enumerate(chord):
        tone = 0.04 * swell * np.sin(2 * np.pi * hz * t + i)
        left += tone * (1.0 - 0.3 * i)
        right += tone * (0.4 + 0.3 * i)
    edge = min(n // 2, round(0.01 * rate))  # 10 ms ramps: no click where clips meet
    if edge:
        ramp = np.linspace(0.0, 1.0, edge)
        for channel in (left, right):
            channel[:edge] *= ramp
            channel[-edge:] *= ramp[::-1]
    return np.stack([left, right]).astype(np.float32)
