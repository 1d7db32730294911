"""Re-encode only what a crossfade or a trimmed tail touches.

Segments joined by a crossfade, and a segment whose last frames the hand-off guard skipped, are
decoded and re-encoded together as one clip (a "group"); every other segment is left as it is, and
the groups and untouched segments are then joined by stream copy. That only works when the
re-encoded group carries exactly the same codec parameters as the untouched segments (true for clips
made with this project's encoder settings, e.g. the preview renderer); the caller checks and otherwise
re-encodes everything. A group's picture is re-encoded; its sound is not: the stream copy takes every
clip's sound from the clip itself, placed where the group shows it (the crossfades included).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from sora_extend.media.crossfade import join_fade_s
from sora_extend.media.encode import Mp4Writer
from sora_extend.media.frames import iter_frames, video_start
from sora_extend.media.joins import JoinPlan, MergeResult, StreamCopyUnsupported
from sora_extend.media.probe import MediaInfo, probe
from sora_extend.media.soundtrack import SoundPart, SoundPlan
from sora_extend.media.stream_copy import stream_copy_merge


def groups(count: int, joins: Sequence[JoinPlan]) -> list[list[int]]:
    """Runs of segment indices to re-encode together: linked by crossfades; a trimmed segment alone."""
    runs: list[list[int]] = [[0]]
    for k, join in enumerate(joins):
        if join.crossfade_s > 0:
            runs[-1].append(k + 1)
        else:
            runs.append([k + 1])
    return runs


def _kept_frames(path: Path, skip_first: bool, trim: int) -> tuple[int, Iterator[np.ndarray]]:
    """How many frames are kept, and those frames, streamed (a segment is never held in memory)."""
    with av.open(str(path)) as container:
        total = container.streams.video[0].frames
    end = total - trim

    def frames() -> Iterator[np.ndarray]:
        for index, frame in enumerate(iter_frames(path)):
            if (index == 0 and skip_first) or index >= end:
                continue
            yield frame.rgb

    return end - int(skip_first), frames()


def render_group(
    paths: Sequence[Path], clips: Sequence[int], inner: Sequence[JoinPlan], trim_last: int, output: Path, fps: int
) -> list[SoundPart]:
    """Decode `paths` (input clips `clips`), apply the inner joins (crossfades blend, continuous repeats drop
    the repeated frame) and `trim_last` frames off the end, and encode one silent clip with the project's
    encoder. Returns where each clip's sound goes on that clip's timeline."""
    first = next(iter_frames(paths[0])).rgb
    height, width = first.shape[:2]
    parts: list[SoundPart] = []
    shown = 0  # frames of the group laid down so far (the last ones may still be blended with the next clip)
    pending: list[np.ndarray] = []  # the previous segment's last frames, waiting to be blended
    with Mp4Writer(output, width=width, height=height, fps=fps, audio=False) as writer:
        for position, path in enumerate(paths):
            before = inner[position - 1] if position > 0 else None
            after = inner[position] if position < len(inner) else None
            fade_in = round(before.crossfade_s * fps) if before else 0
            fade_out = round(after.crossfade_s * fps) if after else 0
            skip_first = bool(before and before.dedupe_first_frame and not before.crossfade_s)
            trim = trim_last if after is None else after.trim_tail_frames
            count, frames = _kept_frames(path, skip_first, trim)
            start = shown - fade_in
            for index, rgb in enumerate(frames):
                if index < fade_in and pending:
                    alpha = (index + 1) / (fade_in + 1)
                    rgb = (pending.pop(0).astype(np.float32) * (1 - alpha) + rgb * alpha).astype(np.uint8)
                if index >= count - fade_out:
                    pending.append(rgb)
                else:
                    writer.write_frame(rgb)
            source = video_start(path) + (1 / fps if skip_first else 0.0)
            fade = join_fade_s(before.transition) if before else 0.0
            parts.append(SoundPart(path, clips[position], source, start / fps, (start + count) / fps, fade))
            shown = start + count
        for rgb in pending:
            writer.write_frame(rgb)
    return parts


def regrouped_merge(
    inputs: Sequence[Path], output: Path, joins: Sequence[JoinPlan], infos: Sequence[MediaInfo], sound: SoundPlan
) -> MergeResult:
    """Re-encode the groups, then stream-copy everything. Raises StreamCopyUnsupported when a
    re-encoded group's codec parameters differ from the untouched segments'."""
    first = infos[0].video
    assert first is not None
    fps = round(first.fps)
    pieces: list[Path] = []
    sounds: list[list[SoundPart]] = []
    between: list[JoinPlan] = []
    reworked = 0
    scratch = output.with_name(output.stem + ".groups")
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        for number, run in enumerate(groups(len(inputs), joins)):
            last = run[-1]
            trim = joins[last].trim_tail_frames if last < len(joins) else 0
            if len(run) == 1 and not trim:
                pieces.append(inputs[run[0]])
                sounds.append([SoundPart(inputs[run[0]], run[0], video_start(inputs[run[0]]), 0.0, math.inf)])
            else:
                group = scratch / f"group-{number:02d}.mp4"
                sounds.append(
                    render_group([inputs[i] for i in run], run, [joins[i] for i in run[:-1]], trim, group, fps)
                )
                video = probe(group).video
                if video is None or video.stream_copy_key() != first.stream_copy_key():
                    raise StreamCopyUnsupported(
                        "a re-encoded part would not match the other segments' codec parameters"
                    )
                pieces.append(group)
                reworked += len(run)
            if last < len(joins):
                between.append(joins[last].model_copy(update={"trim_tail_frames": 0}))
        result = stream_copy_merge(pieces, between, output, sound, sounds)
    finally:
        for path in scratch.glob("*.mp4"):
            path.unlink()
        scratch.rmdir()
    result.method = f"stream-copy, {reworked} of {len(inputs)} segments re-encoded"
    return result
