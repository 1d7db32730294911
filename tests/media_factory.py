"""Real MP4 files for media tests, including files whose metadata lies.

Every frame carries its own index as a row of black/white blocks, so a test can tell exactly which
frame a decoder returned. Sync clips carry a white flash and a 1 kHz beep at the same instant.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np

from sora_extend.media.audio import AUDIO_RATE
from sora_extend.media.encode import Mp4Writer

BITS = 12


def indexed_frame(index: int, width: int = 320, height: int = 180, flash: bool = False) -> np.ndarray:
    if flash:
        return np.full((height, width, 3), 255, dtype=np.uint8)
    ramp = np.linspace(40, 120, width, dtype=np.float32)[None, :, None]
    frame = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
    frame[..., 2] = (index * 7) % 200
    block = width // BITS
    for bit in range(BITS):
        value = 230 if (index >> bit) & 1 else 10
        frame[: height // 3, bit * block : (bit + 1) * block] = value
    return frame


def read_index(rgb: np.ndarray) -> int:
    height, width = rgb.shape[:2]
    block = width // BITS
    index = 0
    for bit in range(BITS):
        cell = rgb[height // 12 : height // 4, bit * block + block // 4 : (bit + 1) * block - block // 4]
        if cell.mean() > 120:
            index |= 1 << bit
    return index


def beep(seconds: float, at: float | None, rate: int = AUDIO_RATE, length: float = 0.03) -> np.ndarray:
    samples = np.zeros((2, round(seconds * rate)), dtype=np.float32)
    if at is not None:
        start = round(at * rate)
        t = np.arange(round(length * rate)) / rate
        tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        samples[:, start : start + tone.size] = tone[: max(0, samples.shape[1] - start)]
    return samples


def music_bed(seconds: float, rate: int = AUDIO_RATE, seed: int = 0) -> np.ndarray:
    """A stereo bed like a soundtrack, not silence: a slowly swelling chord over band-limited noise,
    peaking under 0.2 so a 0.5 beep on top stays detectable. (An AAC encoder is several times faster on
    silence, so a merge benchmark on silent clips flatters whoever re-encodes audio.)"""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    chord = sum(np.sin(2 * np.pi * hz * t + rng.uniform(0, 6.3)) for hz in rng.choice([196, 247, 294, 330, 392], 3))
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6.3))
    walk = np.cumsum(rng.normal(0, 1, (2, n)), axis=1)  # brown noise, minus its slow drift: band-limited
    noise = walk - np.array([np.convolve(channel, np.ones(480) / 480, "same") for channel in walk])
    noise /= max(float(np.abs(noise).max()), 1e-9)
    left = 0.04 * chord * swell + 0.05 * noise[0]
    right = 0.04 * np.roll(chord, 37) * swell + 0.05 * noise[1]
    return np.stack([left, right]).astype(np.float32)


def write_clip(
    path: Path,
    frames: int,
    *,
    fps: int = 24,
    width: int = 320,
    height: int = 180,
    audio_seconds: float | None = None,
    flash_frame: int | None = None,
    first: np.ndarray | None = None,
    start_index: int = 0,
    gop_seconds: float = 1.0,
    spoil_last: int = 0,
    spoil: str = "black",
    bed: bool = False,
    bed_db: float = 0.0,
) -> Path:
    """An indexed clip; `first` replaces frame 0 (a hand-off frame); a flash and beep at `flash_frame`;
    the last `spoil_last` frames faded to black or motion-blurred (what the hand-off guard must skip);
    `bed`: a music-and-noise soundtrack under the beep instead of silence, `bed_db` louder or quieter."""
    has_audio = audio_seconds != 0
    with Mp4Writer(path, width=width, height=height, fps=fps, audio=has_audio, gop_seconds=gop_seconds) as writer:
        for i in range(frames):
            if i == 0 and first is not None:
                frame = first
            else:
                frame = indexed_frame(start_index + i, width, height, flash=i == flash_frame)
            if i >= frames - spoil_last:
                frame = (frame * 0.02).astype(np.uint8) if spoil == "black" else cv2.GaussianBlur(frame, (41, 41), 12)
            writer.write_frame(frame)
        if has_audio:
            seconds = audio_seconds if audio_seconds is not None else frames / fps
            sound = beep(seconds, flash_frame / fps if flash_frame is not None else None)
            bed_gain = np.float32(10 ** (bed_db / 20))
            writer.write_audio(sound + bed_gain * music_bed(seconds, seed=start_index) if bed else sound)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def with_edit_list(source: Path, target: Path, start: float) -> Path:
    """A stream-copy cut that starts between keyframes: the file keeps the earlier frames and an edit
    list that hides them, so packet counts and durations disagree with what plays."""
    ffmpeg("-i", str(source), "-ss", f"{start}", "-c", "copy", str(target))
    return target


def fragmented(source: Path, target: Path) -> Path:
    ffmpeg(
        "-i",
        str(source),
        "-c",
        "copy",
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof",
        str(target),
    )
    return target


def write_vfr_clip(path: Path, times: list[float], width: int = 320, height: int = 180) -> Path:
    """Frames shown at irregular times (variable frame rate), indexed 0..n-1."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": "16", "preset": "veryfast", "bf": "0"}
        for index, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(indexed_frame(index, width, height), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_all(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(container.streams.video[0])]


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples of the whole audio track and the sample rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=stream.codec_context.sample_rate)
        chunks = []
        for frame in container.decode(stream):
            chunks.extend(r.to_ndarray()[0] for r in resampler.resample(frame))
        chunks.extend(r.to_ndarray()[0] for r in resampler.resample(None))
        return np.concatenate(chunks), stream.codec_context.sample_rate


def beep_onsets(samples: np.ndarray, rate: int, threshold: float = 0.25) -> list[float]:
    """Times where the signal first passes `threshold` after at least 100 ms under it."""
    onsets: list[float] = []
    quiet_until = -1.0
    for index in np.flatnonzero(np.abs(samples) > threshold):
        t = index / rate
        if t > quiet_until:
            onsets.append(t)
        quiet_until = t + 0.1
    return onsets


def flash_times(path: Path) -> list[float]:
    return [t for t, rgb in decode_all(path) if rgb.mean() > 200]
