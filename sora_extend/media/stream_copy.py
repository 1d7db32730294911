"""Stream-copy merge: copy video packets, re-encode audio through one AAC encoder.

Why this way (measured in shared/reference/media.md): `-c copy` on both streams drifts ~21 ms per
join because every segment's AAC priming plays as silence; copying video and sending all audio
through a single encoder is gapless and sample-accurate, and costs a fraction of a re-encode.

Continuous joins: an image-to-video segment starts with the hand-off frame, which is the previous
segment's last frame, so a plain concatenation shows that image twice (a one-frame hold, visible in
a pan). Instead of dropping a frame (impossible without re-encoding a GOP) the two copies are each
shown for half a frame: the image is on screen for exactly one frame period, nothing is re-encoded,
and the frame count stays the sum of the inputs. The audio is cut at the same instants, so sync holds
at every join. Everything stream copy cannot do exactly (different codecs or sizes, crossfades,
trimming a segment's tail) goes to `merge.py`, which re-encodes what it must.

The sound (decoded, crossfaded at the joins, brought to one loudness, limited: `soundtrack.py`) is made
segment by segment while one AAC encoder, in a process of its own (`aac_file.py`), encodes it; its
packets are then copied beside the video, in time order.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from sora_extend.errors import MediaError
from sora_extend.media.aac_file import AacFile
from sora_extend.media.audio import AUDIO_RATE
from sora_extend.media.crossfade import join_fade_s
from sora_extend.media.joins import JoinPlan, MergeResult, StreamCopyUnsupported
from sora_extend.media.probe import MediaInfo, probe
from sora_extend.media.soundtrack import SoundPart, SoundPlan, Soundtrack, Stretch


def compatibility_blocker(infos: Sequence[MediaInfo]) -> str | None:
    """Why these files cannot share one stream-copied video track, or None if they can."""
    if any(info.video is None for info in infos):
        return "a segment has no video stream"
    keys = {info.video.stream_copy_key() for info in infos if info.video}
    if len(keys) > 1:
        first = infos[0].video
        for info in infos[1:]:
            assert info.video is not None and first is not None
            for name in ("codec", "width", "height", "pix_fmt", "fps_fraction", "extradata_sha256"):
                if getattr(info.video, name) != getattr(first, name):
                    return f"segments differ in {name} ({getattr(first, name)} vs {getattr(info.video, name)})"
    return None


def stream_copy_blocker(infos: Sequence[MediaInfo], joins: Sequence[JoinPlan]) -> str | None:
    """Why these segments cannot be joined by stream copy alone, or None if they can."""
    blocker = compatibility_blocker(infos)
    if blocker:
        return blocker
    if any(join.crossfade_s > 0 for join in joins):
        return "crossfade joins blend frames"
    if any(join.trim_tail_frames for join in joins):
        return "a segment's last frames must be trimmed (the hand-off guard skipped them)"
    return None


def _read_video_packets(path: Path) -> tuple[list[av.Packet], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None or packet.dts is None:
                continue
            if packet.is_discard:
                raise StreamCopyUnsupported(f"{path.name} uses an edit list that hides frames")
            packets.append(packet)
        return packets, stream.time_base


@dataclass(frozen=True)
class _Timeline:
    """The output's time base and frame period (in its ticks), and how the segments meet."""

    tb: Fraction
    frame: int
    half: int
    joins: Sequence[JoinPlan]


@dataclass
class _Segment:
    """One input's video packets, their times in output ticks, and the span of its own time it shows."""

    packets: list[av.Packet]
    pts: list[int]
    dts: list[int]
    first: int
    shift: int  # ticks of its first frame not shown: the second copy of a repeated frame shows half a frame
    span: int


def _segment(path: Path, k: int, timeline: _Timeline) -> _Segment:
    packets, in_tb = _read_video_packets(path)
    if not packets:
        raise MediaError(f"{path.name} has no video packets")
    scale = in_tb / timeline.tb
    pts = [int(p.pts * scale) for p in packets]
    dts = [int(p.dts * scale) for p in packets]
    first, last = min(pts), max(pts)
    joins = timeline.joins
    dedupe_in = k > 0 and joins[k - 1].dedupe_first_frame
    dedupe_out = k < len(joins) and joins[k].dedupe_first_frame
    shift = timeline.half if dedupe_in else 0
    span = (last - first - shift) + (timeline.half if dedupe_out else timeline.frame)
    return _Segment(packets, pts, dts, first, shift, span)


def stream_copy_merge(
    inputs: Sequence[Path],
    joins: Sequence[JoinPlan],
    output: Path,
    sound: SoundPlan | None = None,
    sounds: Sequence[Sequence[SoundPart]] | None = None,
) -> MergeResult:
    """`sounds`, when given: per input, the clips whose sound it carries, on its own timeline (0 = its first
    frame; a re-encoded group of crossfaded clips carries theirs); otherwise each input carries its own."""
    infos = [probe(path) for path in inputs]
    blocker = stream_copy_blocker(infos, joins)
    if blocker:
        raise StreamCopyUnsupported(blocker)
    first_video = infos[0].video
    assert first_video is not None
    fps = Fraction(first_video.fps_fraction)
    with av.open(str(inputs[0])) as template_container:
        template = template_container.streams.video[0]
        in_tb = template.time_base
        # Half a frame must be a whole number of ticks: halve the time base when it is not.
        frame_ticks = Fraction(1, 1) / fps / in_tb
        tb = in_tb if (frame_ticks / 2).denominator == 1 else in_tb / 2
        frame = int(Fraction(1, 1) / fps / tb)
        timeline = _Timeline(tb, frame, frame // 2, joins)
        output.parent.mkdir(parents=True, exist_ok=True)
        soundtrack = Soundtrack(sound or SoundPlan())
        audio_file = output.with_name(output.stem + ".sound.m4a")
        try:
            sizes = _encode_sound(inputs, timeline, soundtrack, sounds, audio_file)
            with av.open(str(audio_file)) as encoded:
                out = av.open(str(output), mode="w", options={"movflags": "+faststart"})
                try:
                    video_out = out.add_stream_from_template(template)
                    audio_out = out.add_stream_from_template(encoded.streams.audio[0])
                    audio = [packet for packet in encoded.demux(encoded.streams.audio[0]) if packet.size]
                    result = _copy_all(out, video_out, audio_out, audio, inputs, timeline)
                finally:
                    out.close()
        finally:
            audio_file.unlink(missing_ok=True)
    assert sizes == [round(at * AUDIO_RATE) for at in (*result.joins_at, result.duration)]
    result.sound = soundtrack.report
    return result


def _encode_sound(
    inputs: Sequence[Path],
    timeline: _Timeline,
    soundtrack: Soundtrack,
    sounds: Sequence[Sequence[SoundPart]] | None,
    audio_file: Path,
) -> list[int]:
    """The whole soundtrack, made segment by segment while the encoder (another process) encodes it; the
    output sample where each segment ends."""
    ends, done = [], 0
    with AacFile(audio_file) as encoder:
        for chunk in soundtrack.chunks(_stretches(inputs, timeline, sounds)):
            encoder.write(chunk)
            done += chunk.shape[1]
            ends.append(done)
        encoder.close()
    return ends


def _copy_all(
    out: av.container.OutputContainer,
    video_out: av.VideoStream,
    audio_out: av.AudioStream,
    audio: list[av.Packet],
    inputs: Sequence[Path],
    timeline: _Timeline,
) -> MergeResult:
    tb, frame = timeline.tb, timeline.frame
    offset = 0  # output time (in tb) where the current segment's first frame is shown
    last_dts: int | None = None
    frames = 0
    joins_at: list[float] = []
    audio_tb = float(audio_out.time_base or Fraction(1, AUDIO_RATE))
    for packet in audio:
        packet.stream = audio_out
    audio_at = [packet.dts * audio_tb for packet in audio]  # when each audio packet starts, in seconds
    taken = 0
    for k, path in enumerate(inputs):
        segment = _segment(path, k, timeline)
        video_packets = []
        for packet, p, d in zip(segment.packets, segment.pts, segment.dts, strict=True):
            new_pts = offset if p == segment.first else offset + p - segment.first - segment.shift
            new_dts = offset + d - segment.first - segment.shift
            if last_dts is not None and new_dts <= last_dts:
                new_dts = last_dts + 1
            if new_dts > new_pts:
                raise StreamCopyUnsupported(f"{path.name}: retimed frames would decode after they show")
            last_dts = new_dts
            packet.pts, packet.dts, packet.duration, packet.time_base = new_pts, new_dts, frame, tb
            packet.stream = video_out
            video_packets.append(packet)
        offset += segment.span
        end = float(offset * tb)
        upto = bisect.bisect_left(audio_at, end) if k < len(inputs) - 1 else len(audio)
        _interleave(out, video_packets, float(tb), audio[taken:upto], audio_at[taken:upto])
        taken = upto
        frames += len(segment.packets)
        joins_at.append(end)
    seconds = float(offset * tb)
    return MergeResult(method="stream-copy", frames=frames, duration=seconds, seconds=0.0, joins_at=joins_at[:-1])


def _stretches(
    inputs: Sequence[Path], timeline: _Timeline, sounds: Sequence[Sequence[SoundPart]] | None
) -> Iterator[Stretch]:
    """Where each input's sound goes on the output: the same timeline `_copy_all` lays the video on."""
    tb, offset = timeline.tb, 0
    for k, path in enumerate(inputs):
        segment = _segment(path, k, timeline)
        start, end = float(offset * tb), float((offset + segment.span) * tb)
        fade = join_fade_s(timeline.joins[k - 1].transition) if k else 0.0
        if sounds is None:
            source = float((segment.first + segment.shift) * tb)
            yield [SoundPart(path, k, source, start, end, fade)], end
        else:
            yield _placed(sounds[k], float(segment.shift * tb), start, end, fade), end
        offset += segment.span


def _placed(parts: Sequence[SoundPart], shift: float, start: float, end: float, fade: float) -> list[SoundPart]:
    """Parts on an input's own timeline, cut to the span of it the output shows ([shift, shift + length))
    and moved to where that span is on the output."""
    placed: list[SoundPart] = []
    shown_to = shift + (end - start)
    for part in parts:
        lo, hi = max(part.start, shift), min(part.end, shown_to)
        if hi <= lo:
            continue
        moved = start + lo - shift
        placed.append(
            SoundPart(
                part.path,
                part.clip,
                part.source + lo - part.start,
                moved,
                start + hi - shift,
                fade if not placed else part.fade_s,
            )
        )
    return placed


def _interleave(
    out: av.container.OutputContainer,
    video: list[av.Packet],
    video_tb: float,
    audio: list[av.Packet],
    audio_at: list[float],
) -> None:
    """Mux a segment's packets in time order so players can stream the file progressively."""
    timed = [(packet.dts * video_tb, 0, n) for n, packet in enumerate(video)]
    timed += [(at, 1, n) for n, at in enumerate(audio_at)]
    for _, kind, n in sorted(timed):
        out.mux(audio[n] if kind else video[n])
