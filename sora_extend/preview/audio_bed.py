"""A deterministic stand-in for a model's sound: what a video model delivers with a clip, and the problems
it brings to a join. Every shot comes at its own level (anywhere in 20 dB, as real models' clips do), with
its own phase and chord over a drone shared by the story, a voice-like line in its middle, and no fade at
either end: joining the shots cleanly is the merge's job, as it is with a real model's clips."""

from __future__ import annotations

import numpy as np

_SEMITONES = (0, 3, 5, 7, 10)  # minor pentatonic: any two shots sound fine next to each other
LEVEL_SPREAD_DB = 20.0  # under a loudest shot of about -18 LUFS: -18 to -38 LUFS, as models' clips come
LOUDEST = 2.2
VOICE_FROM, VOICE_TO = 0.3, 0.65  # share of the shot where the voice speaks
VOICE_TOP_HZ = 2000.0  # the voice's harmonics stay under this (the preview score sits above it)


def _voice(t: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A buzzy, syllable-paced line, like speech in level and rhythm (not in words)."""
    pitch = rng.uniform(110.0, 220.0)
    harmonics = [k for k in range(1, 12) if k * pitch < VOICE_TOP_HZ]
    tone = sum(np.sin(2 * np.pi * k * pitch * t + rng.uniform(0, 2 * np.pi)) / k for k in harmonics)
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t)  # about four syllables a second
    inside = (t >= VOICE_FROM * seconds) & (t < VOICE_TO * seconds)
    return 0.12 * tone * syllables * inside


def audio_bed(seconds: float, rate: int, *, story_seed: int, shot_seed: int) -> np.ndarray:
    """Float32 stereo samples shaped (2, n)."""
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    drone_hz = 55.0 * 2 ** ((story_seed % 12) / 12)
    rng = np.random.default_rng(shot_seed)
    level = 10 ** (-rng.uniform(0.0, LEVEL_SPREAD_DB) / 20)
    phase = rng.uniform(0, 2 * np.pi)
    chord = [drone_hz * 4 * 2 ** (_SEMITONES[i] / 12) for i in rng.choice(len(_SEMITONES), 3, replace=False)]
    left = 0.05 * np.sin(2 * np.pi * drone_hz * t + phase)
    right = 0.05 * np.sin(2 * np.pi * drone_hz * t + phase + 0.3)
    swell = 0.75 - 0.25 * np.cos(2 * np.pi * t / max(seconds, 1e-3))
    for i, hz in enumerate(chord):
        tone = 0.02 * swell * np.sin(2 * np.pi * hz * t + phase * (i + 2))
        left += tone * (1.0 - 0.3 * i)
        right += tone * (0.4 + 0.3 * i)
    voice = _voice(t, seconds, rng)
    return (LOUDEST * level * np.stack([left + voice, right + 0.8 * voice])).astype(np.float32)
