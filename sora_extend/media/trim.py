"""Cut the head off a clip (re-encoding it): what is left of a stitched native extension once the
part the previous segment already shows is removed."""

from __future__ import annotations

from pathlib import Path

import av

from sora_extend.media.audio import decode_audio_span
from sora_extend.media.encode import Mp4Writer
from sora_extend.media.frames import iter_frames


def drop_head(source: Path, output: Path, start: float) -> Path:
    """Keep the frames shown at or after `start` seconds, and the audio from the same instant,
    at the source's own size and frame rate."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = round(float(stream.average_rate or stream.guessed_rate or 24))
        has_audio = bool(container.streams.audio)
    half_frame = 0.5 / fps
    kept = 0
    first_time = None
    with Mp4Writer(output, width=width, height=height, fps=fps, audio=has_audio) as writer:
        for frame in iter_frames(source):
            if first_time is None:
                first_time = frame.time
            if frame.time + half_frame < start:
                continue
            writer.write_frame(frame.rgb)
            kept += 1
        if has_audio and kept:
            writer.write_audio(decode_audio_span(source, first_time or 0.0, start, kept / fps))
    return output
