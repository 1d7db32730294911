"""One music bed for the whole video, laid under the clips' own sound (ducked where they are loud) or in
place of it. Ducking is ffmpeg's sidechaincompress (through PyAV's filter graph): the clips' sound drives
a compressor on the music, so the music dips under speech and loud effects and comes back between them.
"""

from __future__ import annotations

import numpy as np

from sora_extend.media.audio import AUDIO_RATE
from sora_extend.media.filter_graph import AudioFilter
from sora_extend.media.loudness import db_to_gain, integrated_lufs

# The bed sits this far under the clips' loudness: audible where they are quiet, never competing with them.
MUSIC_UNDER_LU = 8.0
# The compressor starts dipping the music where the clips come within this much of their own loudness
# (their quiet ambience stays under it); at 4:1, sound at the clips' loudness dips the music by about 7 dB.
DUCK_FROM_LU = 10.0
DUCK_RATIO, DUCK_ATTACK_MS, DUCK_RELEASE_MS = 4.0, 20.0, 300.0
EDGE_S = 0.02  # de-click where the score starts and where it stops
TAIL_FADE_S = 1.5  # a score longer than the video fades out over the video's last 1.5 s
MIN_THRESHOLD = 0.000977  # the lowest threshold sidechaincompress accepts (-60 dBFS)
# LUFS of a stereo signal vs the RMS of each of its (identical) channels: -0.691 + 10 log10(2) dB.
_LUFS_OVER_RMS_DB = 2.32


def fit_length(score: np.ndarray, count: int) -> np.ndarray:
    """The score cut or padded to `count` samples: it starts without a click, and ends without one
    (a fade over the last TAIL_FADE_S when it had to be cut short)."""
    fitted = np.zeros((2, count), dtype=np.float32)
    take = min(count, score.shape[1])
    fitted[:, :take] = score[:, :take]
    edge = min(take, round(EDGE_S * AUDIO_RATE))
    fitted[:, :edge] *= np.linspace(0.0, 1.0, edge, dtype=np.float32)
    tail = min(take, round((TAIL_FADE_S if score.shape[1] > count else EDGE_S) * AUDIO_RATE))
    fitted[:, take - tail : take] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
    return fitted


def under_clips(clips: np.ndarray, score: np.ndarray, clips_lufs: float | None) -> np.ndarray:
    """The clips' sound with the score under it: set MUSIC_UNDER_LU below the clips' loudness and ducked
    where the clips are loud. Both (2, n) with the same n."""
    music_lufs = integrated_lufs(score)
    if clips_lufs is None or music_lufs is None:  # silent clips: nothing to sit under or to duck for
        return clips + score
    music = score * db_to_gain(clips_lufs - MUSIC_UNDER_LU - music_lufs)
    threshold = db_to_gain(clips_lufs - _LUFS_OVER_RMS_DB - DUCK_FROM_LU)
    return clips + _ducked(music, clips, threshold)


def _ducked(music: np.ndarray, sidechain: np.ndarray, threshold: float) -> np.ndarray:
    options = (
        f"threshold={max(threshold, MIN_THRESHOLD):.6f}:ratio={DUCK_RATIO}:attack={DUCK_ATTACK_MS}"
        f":release={DUCK_RELEASE_MS}:detection=rms:makeup=1"
    )
    compressor = AudioFilter([("sidechaincompress", options)], inputs=2)
    ducked = np.concatenate([compressor.push(music, sidechain), compressor.flush()], axis=1)
    return ducked[:, : music.shape[1]]
