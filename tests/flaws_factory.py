"""Clean clips and the same clips with a flaw injected, for the quality gate's tests and benchmark.

Clean shots are what the pipeline really renders (preview clips from an image, keyframe animatics,
extensions) plus the shots a flaw detector most easily mistakes for flaws: a slow fade and a slow push-in
(a fraction of a grey level per frame), a whip pan (a lot of motion), a dark night scene. A flaw is
injected into a clean clip's decoded frames at a given time and strength and the clip is encoded again
with the project's encoder, so a freeze is an encoder-level duplicate, not a bit-exact copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

from sora_extend.media.audio import AUDIO_RATE, decode_audio_span
from sora_extend.media.encode import Mp4Writer
from sora_extend.preview.renderer import PreviewSpec, render_preview
from sora_extend.preview.scene import opening_frame
from sora_extend.preview.still import render_still

Injected = Literal["cut", "black", "frozen", "start", "end", "continuation", "colour", "sharpness", "silent"]
CleanKind = Literal["chain", "keyframes", "text", "extension", "fade", "push", "whip", "night"]


@dataclass
class Clip:
    """A clip on disk and what it was asked to be (the images it had to start and end on)."""

    path: Path
    seconds: float
    width: int
    height: int
    fps: int
    first: np.ndarray | None = None
    last: np.ndarray | None = None
    source_last: np.ndarray | None = None


def read_clip(path: Path) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Every frame (RGB), the soundtrack (float32 stereo at 48 kHz, empty without one) and the frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = round(float(stream.average_rate or 24))
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        has_audio = bool(container.streams.audio)
    sound = decode_audio_span(path, 0.0, 0.0, len(frames) / fps) if has_audio else np.zeros((2, 0), np.float32)
    return frames, sound, fps


def write_clip(path: Path, frames: list[np.ndarray], sound: np.ndarray, fps: int) -> Path:
    height, width = frames[0].shape[:2]
    with Mp4Writer(path, width=width, height=height, fps=fps, audio=sound.size > 0) as writer:
        for index, frame in enumerate(frames):
            if sound.size:
                writer.write_audio(sound[:, index * AUDIO_RATE // fps : (index + 1) * AUDIO_RATE // fps])
            writer.write_frame(frame)
    return path


def _preview(
    path: Path, seconds: float, width: int, height: int, fps: int, seed: int, **images: np.ndarray | None
) -> Path:
    spec = PreviewSpec(caption=f"shot {seed}", seconds=seconds, width=width, height=height, fps=fps, seed=seed)
    return render_preview(spec, images.get("first"), path, images.get("last"))


def _synthetic(path: Path, seconds: float, width: int, height: int, fps: int, seed: int, kind: CleanKind) -> Clip:
    """Shots that stress the detectors: nearly still ones, a whip pan, a dark scene."""
    base = opening_frame(width * 4 if kind == "whip" else width, height, seed)
    if kind == "night":
        base = (base.astype(np.float32) * 0.3).astype(np.uint8)  # dark, but not black: a lit sky low down
    frames = []
    count = round(seconds * fps)
    for index in range(count):
        t = index / fps
        if kind == "fade":  # a third of a grey level a frame
            frame = np.clip(base.astype(np.float32) - 0.35 * index, 0, 255).astype(np.uint8)
        elif kind == "push":  # 1 % a second
            scale = 1.0 + 0.01 * t
            matrix = np.array([[scale, 0, (1 - scale) * width / 2], [0, scale, (1 - scale) * height / 2]])
            frame = cv2.warpAffine(base, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        elif kind == "whip":  # two thirds of the width a second
            left = round(2 / 3 * width * t) % (3 * width)
            frame = np.ascontiguousarray(base[:, left : left + width])
        else:  # night: dark, a slow drift, a camera's noise
            matrix = np.array([[1.0, 0, 4.0 * t], [0, 1.0, 0]])
            frame = cv2.warpAffine(base, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            noise = np.random.default_rng(seed * 1000 + index).normal(0, 2.0, frame.shape)
            frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
        frames.append(frame)
    write_clip(path, frames, np.zeros((2, 0), np.float32), fps)
    return Clip(path, seconds, width, height, fps)


def clean_clip(
    folder: Path, kind: CleanKind, seed: int, seconds: float = 4, width: int = 640, height: int = 360, fps: int = 24
) -> Clip:
    """One clean clip of the given kind, as a model would hand it back."""
    path = folder / f"clean-{kind}-{seed}.mp4"
    if kind in ("fade", "push", "whip", "night"):
        return _synthetic(path, seconds, width, height, fps, seed, kind)
    first = opening_frame(width, height, seed)
    if kind == "text":
        _preview(path, seconds, width, height, fps, seed)
        return Clip(path, seconds, width, height, fps)
    if kind == "chain":
        _preview(path, seconds, width, height, fps, seed, first=first)
        return Clip(path, seconds, width, height, fps, first=first)
    if kind == "keyframes":
        last = render_still(width, height, seed + 1, first)
        _preview(path, seconds, width, height, fps, seed, first=first, last=last)
        return Clip(path, seconds, width, height, fps, first=first, last=last)
    # extension: new footage after a source clip's last frame, which it does not show again
    source_last = render_still(width, height, seed + 2, first)
    spec = PreviewSpec(
        caption=f"shot {seed}", seconds=seconds, width=width, height=height, fps=fps, seed=seed, continuation=True
    )
    render_preview(spec, source_last, path)
    return Clip(path, seconds, width, height, fps, source_last=source_last)


FILE_FLAWS = ("cut", "black", "frozen", "colour", "sharpness", "silent")


def spoil(path: Path, flaw: Injected, out: Path, rng: np.random.Generator) -> Path:
    """The clip at `path` with one flaw it can carry by itself (FILE_FLAWS) at a random time and strength
    (within what counts as that flaw), written to `out` (which may be `path`)."""
    frames, sound, fps = read_clip(path)
    count = len(frames)
    height, width = frames[0].shape[:2]
    at = int(rng.integers(round(0.5 * fps), max(round(0.5 * fps) + 1, count - round(1.5 * fps))))
    if flaw == "cut":  # another shot from `at` on
        other = opening_frame(width, height, int(rng.integers(10_000, 20_000)))
        other_clip = _preview(
            out.with_suffix(".other.mp4"), count / fps, width, height, fps, int(rng.integers(1000)), first=other
        )
        replacement, _, _ = read_clip(other_clip)
        other_clip.unlink()
        frames[at:] = replacement[at:count]
    elif flaw == "black":
        length = round(float(rng.uniform(0.3, 1.0)) * fps) + 1
        at = min(at, count - length)
        level = int(rng.integers(0, 17))
        for index in range(at, at + length):
            frames[index] = np.full_like(frames[index], level)
    elif flaw == "frozen":
        length = round(float(rng.uniform(1.0, 2.0)) * fps) + 1
        at = min(at, count - length)
        for index in range(at + 1, at + length):
            frames[index] = frames[at]
    elif flaw == "colour":
        shift = float(rng.uniform(15, 30)) * np.array([np.cos(angle := rng.uniform(0, 2 * np.pi)), np.sin(angle)])
        for index in range(at, count):
            lab = cv2.cvtColor(frames[index].astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
            lab[..., 1] += shift[0]
            lab[..., 2] += shift[1]
            frames[index] = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
    elif flaw == "sharpness":
        sigma = float(rng.uniform(3.0, 8.0)) * width / 1280
        for index in range(at, count):
            frames[index] = cv2.GaussianBlur(frames[index], (0, 0), sigma)
    elif flaw == "silent":
        sound = np.zeros_like(sound)
    else:
        raise ValueError(f"a clip cannot carry a {flaw!r} flaw by itself (it needs the images it was asked for)")
    return write_clip(out, frames, sound, fps)


def inject(clip: Clip, flaw: Injected, out: Path, rng: np.random.Generator) -> Clip:
    """The clip with one flaw at a random time and strength; what it was asked to be stays the same."""
    asked = Clip(out, clip.seconds, clip.width, clip.height, clip.fps, clip.first, clip.last, clip.source_last)
    if flaw in FILE_FLAWS:
        spoil(clip.path, flaw, out, rng)
        return asked
    # The model ignored the image: another scene where it had to start (end, continue) on the given one.
    elsewhere = opening_frame(clip.width, clip.height, int(rng.integers(10_000, 20_000)))
    seed = int(rng.integers(1000))
    if flaw == "continuation":
        spec = PreviewSpec(
            caption="elsewhere",
            seconds=clip.seconds,
            width=clip.width,
            height=clip.height,
            fps=clip.fps,
            seed=seed,
            continuation=True,
        )
        render_preview(spec, elsewhere, out)
    else:
        first = elsewhere if flaw == "start" else clip.first
        last = elsewhere if flaw == "end" else clip.last
        _preview(out, clip.seconds, clip.width, clip.height, clip.fps, seed, first=first, last=last)
    return asked
