"""Measuring a merged file's sound the way a listener's tools do, independent of the code under test:
ffmpeg's own decoder and its ebur128 filter (EBU R128 loudness, true peak), through the static ffmpeg
binary imageio-ffmpeg ships (CI has no system ffmpeg)."""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

RATE = 48_000
JOIN_WINDOW_S = 0.02  # a click, and the AAC frame it is smeared over, lies within 20 ms of the join
AROUND_S = 0.2  # the sound either side of that window: what "normal" steps look like there


@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS
    true_peak: float  # dBTP


def segment_spans(duration: float, joins_at: list[float]) -> list[tuple[float, float]]:
    """(start, end) of every segment of a merged file, from where its joins are."""
    return list(itertools.pairwise([0.0, *joins_at, duration]))


def _ffmpeg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", *args], capture_output=True, check=True)


def ebur128(path: Path, start: float | None = None, end: float | None = None) -> Loudness:
    """Integrated loudness and true peak of the file's sound (or of [start, end) seconds of it)."""
    chain = "ebur128=peak=true"
    if start is not None or end is not None:
        chain = f"atrim=start={start or 0}" + (f":end={end}" if end is not None else "") + f",{chain}"
    log = _ffmpeg("-nostats", "-i", str(path), "-map", "0:a", "-af", chain, "-f", "null", "-").stderr.decode()
    summary = log[log.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)[1])  # type: ignore[index]
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    return Loudness(integrated, float(peak[1]) if peak else float("-inf"))


def decode(path: Path) -> np.ndarray:
    """The file's sound as ffmpeg decodes it: float32 stereo (2, n) at 48 kHz, sample 0 at time 0."""
    raw = _ffmpeg("-v", "error", "-i", str(path), "-map", "0:a", "-f", "f32le", "-ac", "2", "-ar", str(RATE), "-")
    return np.frombuffer(raw.stdout, dtype=np.float32).reshape(-1, 2).T


def band_db(sound: np.ndarray, band: tuple[float, float] | None, window_s: float = 0.1) -> np.ndarray:
    """Energy (dB) per window of `window_s`: in `band` (Hz) or over the whole spectrum."""
    size = round(window_s * RATE)
    windows = sound[:, : sound.shape[1] // size * size].reshape(2, -1, size).mean(axis=0)
    spectrum = np.abs(np.fft.rfft(windows * np.hanning(size), axis=1)) ** 2
    hz = np.fft.rfftfreq(size, 1 / RATE)
    pick = (hz >= band[0]) & (hz < band[1]) if band else np.ones_like(hz, dtype=bool)
    return 10 * np.log10(spectrum[:, pick].sum(axis=1) + 1e-12)


def click_ratio(samples: np.ndarray, at: float, search_s: float = 0.0) -> float:
    """The largest sample-to-sample step within JOIN_WINDOW_S of a join, over the largest in the
    AROUND_S of sound either side of that window: above 1 where the join adds a step of its own.
    `search_s`: the join is somewhere within this of `at` (a tool that does not say where it joined):
    centre on the largest step there."""
    steps = np.abs(np.diff(samples, axis=1)).max(axis=0)
    centre, half, around = round(at * RATE), round(JOIN_WINDOW_S * RATE), round(AROUND_S * RATE)
    reach = round(search_s * RATE)
    if reach:
        centre += int(np.argmax(steps[centre - reach : centre + reach])) - reach
    at_join = steps[centre - half : centre + half].max()
    beside = np.concatenate(
        [steps[centre - half - around : centre - half], steps[centre + half : centre + half + around]]
    )
    return float(at_join / max(float(beside.max()), 1e-9))
