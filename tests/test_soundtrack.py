"""The merged soundtrack on real MP4s, measured with ffmpeg (its decoder and its ebur128 filter), not with
the code under test: no click at any join, one loudness, levels left alone when asked, silence kept silent,
equal-power crossfades; and the soundtrack options refused before anything is spent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from sora_extend.catalogue import build_catalogue
from sora_extend.media.crossfade import crossfade
from sora_extend.media.frames import last_frame
from sora_extend.media.merge import JoinPlan, MergeResult, SoundPlan, merge_videos
from sora_extend.media.probe import probe
from sora_extend.preview import PreviewSpec, render_preview
from sora_extend.request import ExtendRequest
from tests.emulators.fal_schemas import FIXTURES, FalSchemas
from tests.fal_truth import catalogue_problems, price_problems
from tests.media_factory import ffmpeg, write_clip
from tests.sound_checks import click_ratio, decode, ebur128, segment_spans

FPS = 24
# Shot seeds whose preview soundtracks come 13 dB apart (and in different chords, phases, voices).
SEEDS = (11, 12, 13, 14)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four 2 s shots chained from each other's last frame, each with its own soundtrack, level and phase."""
    folder = tmp_path_factory.mktemp("soundtrack")
    made: list[Path] = []
    first = None
    for k, seed in enumerate(SEEDS):
        spec = PreviewSpec(caption=f"shot {k}", seconds=2, width=320, height=180, fps=FPS, seed=seed, story_seed=7)
        made.append(render_preview(spec, first, folder / f"shot{k}.mp4"))
        first = last_frame(made[-1])
    return made


JOINS = [JoinPlan(dedupe_first_frame=True), JoinPlan(transition="cut"), JoinPlan(dedupe_first_frame=True)]


def _spans(result: MergeResult) -> list[tuple[float, float]]:
    return segment_spans(result.duration, result.joins_at)


def test_joins_do_not_click_and_every_clip_plays_at_one_loudness(clips: list[Path], tmp_path: Path) -> None:
    before = [ebur128(clip).integrated for clip in clips]
    assert max(before) - min(before) >= 10  # the shots really come at different levels

    result = merge_videos(clips, tmp_path / "out.mp4", JOINS)
    assert result.method == "stream-copy"
    sound = decode(tmp_path / "out.mp4")
    steps = [click_ratio(sound, at) for at in result.joins_at]
    assert max(steps) <= 1.0, steps  # the largest step at every join is no bigger than around it

    segments = [ebur128(tmp_path / "out.mp4", start, end).integrated for start, end in _spans(result)]
    assert max(segments) - min(segments) <= 3.0, segments
    whole = ebur128(tmp_path / "out.mp4")
    assert abs(whole.integrated - (-14.0)) <= 1.0 and whole.true_peak <= -1.0, whole
    assert [clip.gain_db > 0 for clip in result.sound.clips] == [True] * 4

    # The measurement sees clicks where there are some: the same shots spliced end to end by ffmpeg.
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{clip}'\n" for clip in clips))
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c:v", "copy", "-c:a", "aac", str(tmp_path / "ff.mp4"))
    spliced = decode(tmp_path / "ff.mp4")
    ends = np.cumsum([probe(clip).duration for clip in clips])[:-1]  # where the concat demuxer lays them end to end
    assert min(click_ratio(spliced, at, search_s=0.05) for at in ends) >= 3.0


def test_loudness_off_leaves_every_clip_as_it_came(clips: list[Path], tmp_path: Path) -> None:
    result = merge_videos(clips, tmp_path / "out.mp4", JOINS, sound=SoundPlan(loudness_lufs=None))
    before = [ebur128(clip).integrated for clip in clips]
    after = [ebur128(tmp_path / "out.mp4", start, end).integrated for start, end in _spans(result)]
    assert after == pytest.approx(before, abs=0.5)
    assert max(click_ratio(decode(tmp_path / "out.mp4"), at) for at in result.joins_at) <= 1.0
    assert all(clip.gain_db == 0 for clip in result.sound.clips)


def test_a_silent_clip_stays_silent(tmp_path: Path) -> None:
    shots = [
        write_clip(tmp_path / "a.mp4", 48, flash_frame=12, bed=True),
        write_clip(tmp_path / "quiet.mp4", 48, audio_seconds=0),
        write_clip(tmp_path / "c.mp4", 48, flash_frame=12, bed=True, start_index=500),
    ]
    result = merge_videos(shots, tmp_path / "out.mp4", [JoinPlan(transition="cut")] * 2)
    sound = decode(tmp_path / "out.mp4")
    middle = sound[:, round(2.05 * 48_000) : round(3.95 * 48_000)]
    assert float(np.abs(middle).max()) < 1e-3  # no noise floor raised, nothing leaking in
    assert result.sound.clips[1].lufs is None and result.sound.clips[1].gain_db == 0
    assert ebur128(tmp_path / "out.mp4", 0, 2).integrated == pytest.approx(-14, abs=1.0)


def test_a_video_crossfade_keeps_one_loudness(clips: list[Path], tmp_path: Path) -> None:
    joins = [JoinPlan(transition="crossfade", crossfade_s=0.5), JoinPlan(transition="cut"), JOINS[2]]
    result = merge_videos(clips, tmp_path / "out.mp4", joins)
    assert result.method == "stream-copy, 2 of 4 segments re-encoded"
    segments = [ebur128(tmp_path / "out.mp4", start, end).integrated for start, end in _spans(result)]
    assert max(segments) - min(segments) <= 3.0, segments
    assert abs(ebur128(tmp_path / "out.mp4").integrated - (-14.0)) <= 1.0


def test_crossfades_keep_the_power_whatever_the_two_sounds_share() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.1, (2, 4800)).astype(np.float32), rng.normal(0, 0.1, (2, 4800)).astype(np.float32)
    unrelated = crossfade(a, b)
    middle = unrelated[:, 1800:3000]
    assert 20 * np.log10(np.std(middle) / 0.1) == pytest.approx(0.0, abs=0.5)  # a linear fade dips 3 dB here
    same = crossfade(a, a.copy())  # the same sound going on: neither dip nor bump
    assert np.allclose(same, a, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--loudness", "5"], "loudness: 5 LUFS is out of range (allowed: -70 to -5 (LUFS), or off)"),
        (["--loudness", "-80"], "loudness: -80 LUFS is out of range (allowed: -70 to -5 (LUFS), or off)"),
        (
            ["--soundtrack", "jazz"],
            "soundtrack: Input should be 'clips', 'score' or 'score-only' (allowed: clips, score, score-only)",
        ),
        (
            ["--soundtrack", "score", "--soundtrack-model", "veo31"],
            "soundtrack_model: unknown music model 'veo31' ('veo31' is a video model, not a music model) "
            "(allowed: preview-score, sonilo-video, sonilo-text, stable-audio-25)",
        ),
        (
            ["--soundtrack-model", "sonilo-video"],
            "soundtrack_model: only applies to soundtrack 'score' or 'score-only'",
        ),
    ],
)
def test_bad_soundtrack_options_exit_2_with_one_error_line_before_anything_is_spent(
    options: list[str], message: str, fal_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "a fox in the snow", "--provider", "fal", "--model", "tiny-fal", *options])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}")
    assert fal_emulator.submissions == []


def test_finishing_choices_keep_the_job_and_its_clips() -> None:
    plain = ExtendRequest(prompt="a fox")
    scored = ExtendRequest(prompt="a fox", soundtrack="score", loudness=-23)
    assert scored.job_id() == plain.job_id()
    assert scored.soundtrack_model == "preview-score" and scored.loudness_lufs == -23
    assert ExtendRequest(prompt="a fox", loudness="off").loudness_lufs is None


def test_music_rows_are_held_to_fals_published_schemas_and_prices(tmp_path: Path) -> None:
    schemas = FalSchemas.load()
    assert [p for p in catalogue_problems(build_catalogue(), schemas) if "music" in p] == []
    override = tmp_path / "music.toml"
    override.write_text(
        '[music.sonilo-text]\nlength = { field = "seconds", min_s = 1, max_s = 600 }\nprice = { per_second = 0.01 }\n'
        '[music.stable-audio-25]\nlength = { field = "seconds_total", min_s = 1, max_s = 300 }\n',
        encoding="utf-8",
    )
    wrong = build_catalogue(override)
    problems = catalogue_problems(wrong, schemas)
    assert "sonilo-text (text_to_music 1 s): sends 'seconds', which sonilo/v1.1/text-to-music does not have" in problems
    assert any(p.startswith("stable-audio-25 (text_to_music 300 s): seconds_total: 300 is greater") for p in problems)
    fixtures = {d["endpoint_id"]: d for d in (json.loads(p.read_text("utf-8")) for p in FIXTURES.glob("*.json"))}
    assert price_problems(wrong, schemas, fixtures) == ["sonilo-text: $0.01/second, fal 0.0025/second"]
