"""The merged video's soundtrack, from the clips' own sound: crossfaded at every join, each clip brought to
one loudness, optionally with one score for the whole video, and peak-limited under -1 dBTP.

Each merge path says where every clip's sound goes (`SoundPart`: which file, from where on its own clock,
to which span of the output); `Soundtrack.chunks` turns that into the samples of each stretch of the
output, streaming: a clip is decoded, measured and joined to the previous one while the merge encodes
what came before, so the audio work runs beside the AAC encoder instead of after it. Lengths are exact
(every stretch gets the samples of its time span), so A/V sync is what the video timeline says.

Loudness: every clip is measured (BS.1770, ffmpeg's ebur128) and brought to the target itself, so the common
level of the clips is the target and the whole video lands on it without a second pass over the file;
with a score, the mix is measured as a whole and brought to the target. Silent clips keep their level.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from sora_extend.media.audio import AUDIO_RATE, AudioTrack, decode_track
from sora_extend.media.crossfade import CONTINUOUS_FADE_S, crossfade
from sora_extend.media.filter_graph import AudioFilter
from sora_extend.media.loudness import (
    DEFAULT_TARGET_LUFS,
    db_to_gain,
    integrated_lufs,
    limited_gain_db,
    matching_gain_db,
    peak_limiter,
)
from sora_extend.media.score_mix import fit_length, under_clips

MARGIN = round(CONTINUOUS_FADE_S * AUDIO_RATE)  # sound read beyond a part's ends, for the joins' crossfades
# A clip's sound that stops this close to the end of its picture (or starts this late) is an encoder's rounding
# (AAC works in 1024-sample frames), not a silence the clip meant: the gap is filled by mirroring the sound.
ROUNDING_GAP = 2048
EDGE = round(0.01 * AUDIO_RATE)  # sound that really stops (or starts) mid-clip fades over 10 ms: no click
# A clip's first and last AAC frame (1024 samples, 21 ms) carry the codec's ringing where its sound starts or
# stops abruptly, and bringing a quiet clip up by 20 dB makes that ring a click at the join: they are left
# out and mirrored over from the sound next to them, like a gap (21 ms of a clip's edge: nothing audible).
CODEC_EDGE = 1024


class SoundPlan(BaseModel):
    """What the merge does to the sound."""

    loudness_lufs: float | None = Field(DEFAULT_TARGET_LUFS, description="Target; None = levels as they came.")
    score: Path | None = Field(None, description="A music file for the whole video.")
    score_only: bool = Field(False, description="The score replaces the clips' sound instead of going under it.")

    @property
    def soundtrack(self) -> Literal["clips", "score", "score-only"]:
        if self.score is None:
            return "clips"
        return "score-only" if self.score_only else "score"


class ClipLoudness(BaseModel):
    clip: int = Field(..., description="0-based input clip.")
    start: float = Field(..., description="Where its sound starts in the output (seconds).")
    end: float = Field(..., description="Where its sound ends in the output (a crossfade overlaps the next).")
    lufs: float | None = Field(..., description="Integrated loudness as it came (None: silent).")
    gain_db: float = Field(..., description="Gain applied to bring it to the target.")


class SoundReport(BaseModel):
    soundtrack: Literal["clips", "score", "score-only"] = "clips"
    target_lufs: float | None = None
    clips: list[ClipLoudness] = Field(default_factory=list)
    score_lufs: float | None = Field(None, description="The score's own loudness, as it came.")
    mix_gain_db: float = Field(0.0, description="With a score: the gain that brought the mix to the target.")


@dataclass(frozen=True)
class SoundPart:
    """One clip's sound on the output timeline."""

    path: Path
    clip: int
    source: float  # seconds on the clip file's own clock where this part's sound begins
    start: float  # seconds on the output timeline
    end: float
    fade_s: float = 0.0  # meeting the previous part end to end: the crossfade centred on `start`


Stretch = tuple[Sequence[SoundPart], float]  # the parts a stretch of the output holds, and where it ends


def _at(seconds: float) -> int:
    return round(seconds * AUDIO_RATE)


def _mirror(signal: np.ndarray, count: int) -> np.ndarray:
    """`count` samples that continue backwards from signal[:, 0] as its mirror image (no step there)."""
    take = signal[:, 1 : count + 1][:, ::-1]
    return np.pad(take, ((0, 0), (count - take.shape[1], 0)))


def _filled(body: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """A part's sound where the file has sound only over [lo, hi): short gaps at either end mirrored over,
    longer ones left silent with the sound fading out (or in) at their edge."""
    if hi <= lo:
        return body
    n = body.shape[1]
    if n - hi and n - hi <= ROUNDING_GAP:
        body[:, hi:] = _mirror(body[:, :hi][:, ::-1], n - hi)[:, ::-1]
    elif n - hi:
        edge = min(EDGE, hi - lo)
        body[:, hi - edge : hi] *= np.linspace(1.0, 0.0, edge, dtype=np.float32)
    if lo and lo <= ROUNDING_GAP:
        body[:, :lo] = _mirror(body[:, lo:], lo)
    elif lo:
        edge = min(EDGE, hi - lo)
        body[:, lo : lo + edge] *= np.linspace(0.0, 1.0, edge, dtype=np.float32)
    return body


def _inner(track: AudioTrack) -> AudioTrack:
    """The track without its codec edges."""
    if track.samples.shape[1] <= 2 * CODEC_EDGE:
        return AudioTrack(track.samples[:, :0], track.start)
    return AudioTrack(track.samples[:, CODEC_EDGE:-CODEC_EDGE], track.start + CODEC_EDGE / AUDIO_RATE)


class _Mixdown:
    """Places parts one after another, joins each to the previous one and applies its loudness gain;
    hands back the output samples that no later part can change any more."""

    def __init__(self, target: float | None, report: SoundReport) -> None:
        self.target, self.report = target, report
        self.held: np.ndarray | None = None  # the previous part, waiting for its join with the next
        self.held_post = np.zeros((2, 0), dtype=np.float32)  # its sound past its end
        self.held_end = 0  # output sample where it ends

    def add(self, part: SoundPart) -> np.ndarray:
        begin, end = _at(part.start), _at(part.end)
        if end <= begin:
            return np.zeros((2, 0), dtype=np.float32)
        track = _inner(decode_track(part.path))
        body = _filled(*track.read(part.source, end - begin))
        before = self._before(track, part.source, MARGIN, body)
        after = self._after(track, part.source + (end - begin) / AUDIO_RATE, body)
        del track  # the whole clip's sound is not needed any more: only what the output shows, and its edges
        lufs = integrated_lufs(body)
        gain_db = matching_gain_db(lufs, self.target)
        if gain_db and self.target is not None:
            gain_db = limited_gain_db(body, gain_db, self.target)
        self.report.clips.append(
            ClipLoudness(clip=part.clip, start=part.start, end=part.end, lufs=lufs, gain_db=gain_db)
        )
        gain = np.float32(db_to_gain(gain_db))
        for signal in (body, before, after):
            signal *= gain
        out = self._join(part, begin, body, before)
        self.held, self.held_post, self.held_end = body, after, end
        return out

    def finish(self) -> np.ndarray:
        out = self.held if self.held is not None else np.zeros((2, 0), dtype=np.float32)
        self.held = None
        return out

    def _join(self, part: SoundPart, begin: int, body: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Blend the previous part into this one (`before`: this part's sound just before its start);
        returns the previous part's finished samples (and any silence between them). `body` is changed in
        place where the blend reaches into it."""
        held = self.held
        if held is None:
            return np.zeros((2, begin), dtype=np.float32)  # silence before the first part (none when it starts at 0)
        overlap = self.held_end - begin
        if overlap > 0:  # the pictures crossfade: so do the sounds, over the same span
            overlap = min(overlap, held.shape[1], body.shape[1])
            body[:, :overlap] = crossfade(held[:, held.shape[1] - overlap :], body[:, :overlap])
            return held[:, : held.shape[1] - overlap]
        if overlap < 0:
            return np.concatenate([held, np.zeros((2, -overlap), dtype=np.float32)], axis=1)
        fade = min(_at(part.fade_s), 2 * held.shape[1], 2 * body.shape[1], 2 * self.held_post.shape[1])
        half, rest = fade // 2, fade - fade // 2
        if fade:  # end to end: a short crossfade centred on the join, over sound from both sides
            leaving = np.concatenate([held[:, held.shape[1] - half :], self.held_post[:, :rest]], axis=1)
            arriving = np.concatenate([before[:, before.shape[1] - half :], body[:, :rest]], axis=1)
            blended = crossfade(leaving, arriving)
            held[:, held.shape[1] - half :] = blended[:, :half]
            body[:, :rest] = blended[:, half:]
        return held

    @staticmethod
    def _before(track: AudioTrack, at: float, count: int, body: np.ndarray) -> np.ndarray:
        """The clip's own sound just before `at` (the part of it the picture does not show); mirrored from
        the part's start where the file has none."""
        before, lo, hi = track.read(at - count / AUDIO_RATE, count)
        missing = lo if hi == count else count  # only sound that reaches the part's start counts
        if missing:
            continuing = np.concatenate([before[:, missing:], body], axis=1)
            before[:, :missing] = _mirror(continuing, missing)
        return before

    @staticmethod
    def _after(track: AudioTrack, at: float, body: np.ndarray) -> np.ndarray:
        """The clip's own sound just after `at`; mirrored from the part's end where the file has none."""
        after, lo, hi = track.read(at, MARGIN)
        real = hi if lo == 0 else 0
        if real < MARGIN:
            reaching = np.concatenate([body, after[:, :real]], axis=1)
            after[:, real:] = _mirror(reaching[:, ::-1], MARGIN - real)[:, ::-1]
        return after


class _Buffer:
    """Samples waiting to be handed out in stretches of given lengths."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def push(self, samples: np.ndarray) -> None:
        if samples.shape[1]:
            self.parts.append(samples)
            self.size += samples.shape[1]

    def take(self, count: int) -> np.ndarray:
        joined = np.concatenate(self.parts, axis=1) if self.parts else np.zeros((2, 0), dtype=np.float32)
        if joined.shape[1] < count:  # only ever at the very end, by a rounding sample
            joined = np.pad(joined, ((0, 0), (0, count - joined.shape[1])))
        self.parts = [joined[:, count:]] if joined.shape[1] > count else []
        self.size = max(0, joined.shape[1] - count)
        return joined[:, :count]


class Soundtrack:
    """Renders the output's sound as `plan` says; `report` holds what it measured and did."""

    def __init__(self, plan: SoundPlan) -> None:
        self.plan = plan
        self.report = SoundReport(soundtrack=plan.soundtrack, target_lufs=plan.loudness_lufs)

    def chunks(self, stretches: Iterable[Stretch]) -> Iterator[np.ndarray]:
        """The samples of each stretch of the output, in order, exactly as long as its time span."""
        mix = _Mixdown(self.plan.loudness_lufs, self.report)
        if self.plan.score is not None:
            yield from self._scored(mix, stretches)
            return
        limiter = peak_limiter() if self.plan.loudness_lufs is not None else None
        buffer, ends, done = _Buffer(), [], 0
        for parts, end in stretches:
            for part in parts:
                buffer.push(_through(limiter, mix.add(part)))
            ends.append(_at(end))
            while ends and buffer.size >= ends[0] - done:
                yield buffer.take(ends[0] - done)
                done = ends.pop(0)
        buffer.push(_through(limiter, mix.finish()))
        if limiter is not None:
            buffer.push(limiter.flush())
        for end in ends:
            yield buffer.take(end - done)
            done = end

    def _scored(self, mix: _Mixdown, stretches: Iterable[Stretch]) -> Iterator[np.ndarray]:
        """With a score the mix is only known whole: the clips' sound first, then the score under or
        instead of it, then the whole brought to the target."""
        assert self.plan.score is not None
        pieces, ends = [], []
        for parts, end in stretches:
            pieces.extend(mix.add(part) for part in parts)
            ends.append(_at(end))
        pieces.append(mix.finish())
        total = ends[-1] if ends else 0
        clips = np.concatenate(pieces, axis=1)[:, :total] if pieces else np.zeros((2, 0), dtype=np.float32)
        clips = np.pad(clips, ((0, 0), (0, total - clips.shape[1])))
        score = decode_track(self.plan.score).samples
        self.report.score_lufs = integrated_lufs(score)
        fitted = fit_length(score, total)
        track = fitted if self.plan.score_only else under_clips(clips, fitted, integrated_lufs(clips))
        if self.plan.loudness_lufs is not None:
            self.report.mix_gain_db = matching_gain_db(integrated_lufs(track), self.plan.loudness_lufs)
            limiter = peak_limiter()
            track = track * np.float32(db_to_gain(self.report.mix_gain_db))
            track = np.concatenate([limiter.push(track), limiter.flush()], axis=1)
        done = 0
        for end in ends:
            yield track[:, done:end]
            done = end


def _through(limiter: AudioFilter | None, samples: np.ndarray) -> np.ndarray:
    return limiter.push(samples) if limiter is not None and samples.shape[1] else samples


def whole(parts: Sequence[SoundPart], end: float, plan: SoundPlan) -> tuple[np.ndarray, SoundReport]:
    """The whole soundtrack in one array (for the merge paths that encode it in one go)."""
    soundtrack = Soundtrack(plan)
    samples = np.concatenate(list(soundtrack.chunks([(parts, end)])), axis=1)
    return samples, soundtrack.report
