"""Join segments into one MP4: stream copy when it is exact, else re-encode only what must change,
else everything (moviepy). The output is probed before success is declared."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from sora_extend.errors import MediaError
from sora_extend.media.joins import JoinPlan, MergeResult, StreamCopyUnsupported
from sora_extend.media.probe import probe
from sora_extend.media.regroup import regrouped_merge
from sora_extend.media.soundtrack import SoundPlan
from sora_extend.media.stream_copy import compatibility_blocker, stream_copy_merge

logger = logging.getLogger(__name__)

__all__ = ["JoinPlan", "MergeResult", "SoundPlan", "merge_videos"]


def merge_videos(
    inputs: Sequence[Path],
    output: Path,
    joins: Sequence[JoinPlan],
    *,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    sound: SoundPlan | None = None,
) -> MergeResult:
    """Stream copy when it is exact, otherwise a full re-encode; the result is probed before returning.
    `sound`: what to do to the sound (default: crossfaded joins, one loudness at -14 LUFS)."""
    if len(joins) != max(0, len(inputs) - 1):
        raise ValueError(f"{len(inputs)} inputs need {len(inputs) - 1} joins, got {len(joins)}")
    sound = sound or SoundPlan()
    started = time.monotonic()
    try:
        result = stream_copy_merge(inputs, joins, output, sound)
    except StreamCopyUnsupported as exc:
        result = _rework(inputs, output, joins, str(exc), size=size, fps=fps, sound=sound)
    _check_output(output, result)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _rework(
    inputs: Sequence[Path],
    output: Path,
    joins: Sequence[JoinPlan],
    reason: str,
    *,
    size: tuple[int, int] | None,
    fps: int | None,
    sound: SoundPlan,
) -> MergeResult:
    """Crossfades and trimmed tails: re-encode only the segments they touch when the codec parameters
    allow it, else everything (moviepy)."""
    output.unlink(missing_ok=True)
    infos = [probe(path) for path in inputs]
    if compatibility_blocker(infos) is None:
        try:
            return regrouped_merge(inputs, output, joins, infos, sound)
        except StreamCopyUnsupported as exc:
            reason = f"{reason}; {exc}"
            output.unlink(missing_ok=True)
    logger.info("merge: re-encoding everything (%s)", reason)
    from sora_extend.media.reencode import reencode_merge  # moviepy: imported only when a merge re-encodes

    result = reencode_merge(inputs, output, joins, size=size, fps=fps, sound=sound)
    result.reason = reason
    return result


def _check_output(output: Path, result: MergeResult) -> None:
    info = probe(output)
    if info.video is None:
        raise MediaError(f"merge produced {output.name} without a video stream")
    if info.audio is None:
        raise MediaError(f"merge produced {output.name} without an audio stream")
    if abs(info.duration - result.duration) > 0.1:
        raise MediaError(f"merge produced {info.duration:.3f} s, expected {result.duration:.3f} s")
