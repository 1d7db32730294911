"""The re-encode path of the merge, with moviepy: segments of different sizes, rates or codecs,
crossfades, and tails the hand-off guard skipped. Compositing clips on a timeline is what moviepy
is for; it is much slower than stream copy (see benchmarks/), so it only runs when copy cannot be exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from moviepy import AudioClip, CompositeAudioClip, CompositeVideoClip, VideoFileClip, afx, vfx

from sora_extend.media.audio import AUDIO_RATE
from sora_extend.media.joins import JoinPlan, MergeResult
from sora_extend.media.probe import probe


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
) -> MergeResult:
    first = probe(inputs[0]).video
    assert first is not None
    width, height = size or (first.width, first.height)
    rate = fps or round(first.fps) or 24
    sources = [VideoFileClip(str(path), audio_fps=AUDIO_RATE) for path in inputs]
    try:
        placed = []
        start = 0.0
        joins_at: list[float] = []
        for k, source in enumerate(sources):
            clip = source
            frame = 1.0 / (source.fps or rate)
            head = frame if k > 0 and joins[k - 1].dedupe_first_frame else 0.0
            tail = joins[k].trim_tail_frames * frame if k < len(joins) else 0.0
            if head or tail:
                clip = clip.subclipped(head, clip.duration - tail)
            clip = _cover(clip, width, height)
            fade_in = joins[k - 1].crossfade_s if k > 0 else 0.0
            fade_out = joins[k].crossfade_s if k < len(joins) else 0.0
            if fade_in:
                clip = clip.with_effects([vfx.CrossFadeIn(fade_in)])
                if clip.audio is not None:
                    clip = clip.with_audio(clip.audio.with_effects([afx.AudioFadeIn(fade_in)]))
            if fade_out and clip.audio is not None:
                clip = clip.with_audio(clip.audio.with_effects([afx.AudioFadeOut(fade_out)]))
            start -= fade_in
            placed.append(clip.with_start(start))
            start += clip.duration
            joins_at.append(start)
        audio_tracks = [clip.audio.with_start(clip.start) for clip in placed if clip.audio is not None]
        timeline = CompositeVideoClip(placed, size=(width, height)).with_duration(start)
        # Silence where no segment has audio: the merged file always carries an audio track.
        silence = AudioClip(lambda t: np.zeros((np.size(t), 2)), duration=start, fps=AUDIO_RATE)
        timeline = timeline.with_audio(CompositeAudioClip([silence, *audio_tracks]).with_duration(start))
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
    return MergeResult(method="re-encode", frames=frames, duration=start, seconds=0.0, joins_at=joins_at[:-1])
