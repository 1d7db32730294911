"""How two clips' sounds meet at a join: how long they overlap, and the gain curves of the overlap.

Two unrelated soundtracks spliced end to end click where the waveforms meet (a step from one sample
to the next) however well the pictures join. Every join therefore crossfades the two sounds:

- continuous join: 30 ms, centred on the join (see CONTINUOUS_FADE_S for why 30);
- cut (a planned new shot): 10 ms, only to take the click out, so the cut still sounds like a cut;
- video crossfade: the sounds crossfade over the same overlap as the pictures.

The curves keep the power constant through the overlap (an equal-power crossfade), for the correlation
the two sounds actually have there: for unrelated sounds that is the classic sin/cos pair (a linear fade
would dip 3 dB at its middle), for the same sound continuing (the same ambience, a drone in phase) it
tends to a linear fade (sin/cos would bump 3 dB there). The gains are sin and cos of the fade's angle,
divided by sqrt(1 + r sin(pi t)), which keeps g_out^2 + g_in^2 + 2 r g_out g_in = 1 for correlation r.
"""

from __future__ import annotations

import numpy as np

# 30 ms for a continuous join. Long enough: it spans a whole period of the lowest tones a clip's bed
# carries (50 Hz hum, a drone: 20 ms), so even a bass waveform blends instead of stepping (shorter fades
# leave a thump in the lows). Short enough: under the ~50 ms beyond which overlapping sounds are heard as
# two events (an echo), and shorter than a syllable, so speech is not smeared. And it fits the join: the
# frame both clips share is on screen for one frame period (33-42 ms at 24-30 fps), so the sound changes
# over while that one frame is shown.
CONTINUOUS_FADE_S = 0.030
# 10 ms at a cut: enough to remove the waveform step (the click), too short to soften the cut.
CUT_FADE_S = 0.010


def join_fade_s(transition: str) -> float:
    """The short crossfade centred on a join where the two clips meet end to end (not a video crossfade,
    whose sounds overlap as long as the pictures do)."""
    return CUT_FADE_S if transition == "cut" else CONTINUOUS_FADE_S


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two equally long stretches of sound (0 when either is silent)."""
    energy = float(np.sqrt(np.sum(np.square(a, dtype=np.float64)) * np.sum(np.square(b, dtype=np.float64))))
    return float(np.sum(a * b, dtype=np.float64)) / energy if energy > 0 else 0.0


def crossfade(leaving: np.ndarray, arriving: np.ndarray) -> np.ndarray:
    """`leaving` fading out while `arriving` fades in, both (2, n), with constant power throughout."""
    n = leaving.shape[1]
    if n == 0:
        return leaving.copy()
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    # Anti-correlated sound would need gains above 1 to keep its power: keep the equal-power pair there.
    r = min(1.0, max(0.0, correlation(leaving, arriving)))
    norm = np.sqrt(1.0 + r * np.sin(np.pi * t))
    fade_out = (np.cos(np.pi * t / 2) / norm).astype(np.float32)
    fade_in = (np.sin(np.pi * t / 2) / norm).astype(np.float32)
    return leaving * fade_out + arriving * fade_in
