"""The re-encode path of the merge, with moviepy: segments of different sizes, rates or codecs,
crossfades, and tails the hand-off guard skipped. Compositing clips on a timeline is what moviepy
is for; it is much slower than stream copy (see benchmarks/), so it only runs when copy cannot be exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from moviepy import AudioArrayClip, CompositeVideoClip, VideoFileClip, vfx

from sora_extend.media.audio import AUDIO_RATE
from sora_extend.media.crossfade import join_fade_s
from sora_extend.media.frames import video_start
from sora_extend.media.joins import JoinPlan, MergeResult
from sora_extend.media.probe import probe
from sora_extend.media.soundtrack import SoundPart, SoundPlan, whole


def _cover(clip: VideoFileClip, width: int, height: int) -> VideoFileClip:
    """Scale to fill width x height and centre-crop the overflow, like the hand-off frames."""
    if (clip.w, clip.h) == (width, height):
        return clip
    scale = max(width / clip.w, height / clip.h)
    resized = clip.resized(new_size=(max(width, round(clip.w * scale)), max(height, round(clip.h * scale))))
    return resized.cropped(x_center=resized.w / 2, y_center=resized.h / 2, width=width, height=height)


def reencode_merge(
    inputs: Sequence[Path],
    output: Path,
    joins: Sequence[JoinPlan],
    *,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    sound: SoundPlan | None = None,
) -> MergeResult:
    first = probe(inputs[0]).video
    assert first is not None
    width, height = size or (first.width, first.height)
    rate = fps or round(first.fps) or 24
    # The sound is made apart from the pictures (soundtrack.py), from each clip's own file.
    sources = [VideoFileClip(str(path), audio=False) for path in inputs]
    try:
        placed = []
        parts: list[SoundPart] = []
        start = 0.0
        joins_at: list[float] = []
        for k, (path, source) in enumerate(zip(inputs, sources, strict=True)):
            clip = source
            frame = 1.0 / (source.fps or rate)
            head = frame if k > 0 and joins[k - 1].dedupe_first_frame else 0.0
            tail = joins[k].trim_tail_frames * frame if k < len(joins) else 0.0
            if head or tail:
                clip = clip.subclipped(head, clip.duration - tail)
            clip = _cover(clip, width, height)
            fade_in = joins[k - 1].crossfade_s if k > 0 else 0.0
            if fade_in:
                clip = clip.with_effects([vfx.CrossFadeIn(fade_in)])
            start -= fade_in
            placed.append(clip.with_start(start))
            fade = join_fade_s(joins[k - 1].transition) if k else 0.0
            parts.append(SoundPart(path, k, video_start(path) + head, start, start + clip.duration, fade))
            start += clip.duration
            joins_at.append(start)
        samples, report = whole(parts, start, sound or SoundPlan())
        timeline = CompositeVideoClip(placed, size=(width, height)).with_duration(start)
        # The merged file always carries an audio track, silent where no segment has sound.
        timeline = timeline.with_audio(AudioArrayClip(samples.T, fps=AUDIO_RATE))
        timeline.write_videofile(
            str(output),
            fps=rate,
            codec="libx264",
            audio_codec="aac",
            audio_fps=AUDIO_RATE,
            preset="veryfast",
            threads=2,
            ffmpeg_params=["-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
            logger=None,
        )
        timeline.close()
    finally:
        for source in sources:
            source.close()
    info = probe(output)
    frames = info.video.frames if info.video else 0
    return MergeResult(
        method="re-encode", frames=frames, duration=start, seconds=0.0, joins_at=joins_at[:-1], sound=report
    )
