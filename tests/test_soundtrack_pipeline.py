"""The soundtrack through the whole pipeline against the fal emulator (the real fal_client over loopback):
4 x 4 s keyframes on a model with sound, whose clips come at their own level, pitch and phase; measured
with ffmpeg (its decoder, its ebur128 filter), not with the code under test. Then a score on top of the
same clips: one paid music request, heard under every segment, ducked under the clips' loud sound, never
paid again; and the review page that shows all of it, in Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.records import FinalRecord, ScoreRecord, SegmentRecord
from sora_extend.pipeline.report import Report, write_report
from sora_extend.pipeline.run import graph_for, run_job
from sora_extend.preview.score import BELL_BAND_HZ
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings
from tests.conftest import point_at_fal
from tests.emulators import FalEmulator
from tests.emulators.fal_schemas import with_test_model
from tests.sound_checks import band_db, click_ratio, decode, ebur128, segment_spans

pytestmark = pytest.mark.slow
PROMPT = "A lighthouse keeper climbs the stairs at dusk"
SONILO = "sonilo/v1.1/video-to-music"
WINDOW_S = 0.1


@dataclass
class Emulated:
    fal: FalEmulator
    request: ExtendRequest
    job: Job
    records: dict[str, object]
    clips_only: Path  # final.mp4 as the default soundtrack made it


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulated]:
    """One keyframes run on the emulator with default settings (shared: the clips are the slow part)."""
    folder = tmp_path_factory.mktemp("soundtrack-pipeline")
    with pytest.MonkeyPatch.context() as patch, FalEmulator(schemas=with_test_model(), progress_seconds=0.2) as fal:
        patch.setenv("SORA_EXTEND_WORK_DIR", str(folder / "work"))
        point_at_fal(patch, fal)
        request = ExtendRequest(
            prompt=PROMPT,
            segments=4,
            seconds=4,
            provider="fal",
            model="tiny-veo",
            continuity="keyframes",
            storage=f"file://{folder / 'storage'}",
        )
        job = Job(job_ref(request))
        _, outcome = run_job(job)
        assert outcome.ok, outcome.error
        clips_only = folder / "clips-only.mp4"
        shutil.copy(job.store.path("final.mp4"), clips_only)
        yield Emulated(fal, request, job, outcome.records, clips_only)
        assert fal.server_errors == []
    reload_settings()


def _final(records: dict[str, object]) -> FinalRecord:
    final = records["merge"]
    assert isinstance(final, FinalRecord)
    return final


def _spans(final: FinalRecord) -> list[tuple[float, float]]:
    return segment_spans(final.duration, final.joins_at)


def test_emulated_clips_join_without_a_click_at_one_loudness(emulated: Emulated) -> None:
    segments = [r for r in emulated.records.values() if isinstance(r, SegmentRecord)]
    levels = [ebur128(Path(emulated.job.store.path(record.path))).integrated for record in segments]
    assert len(levels) == 4 and max(levels) - min(levels) >= 10, levels  # they came up to 20 dB apart

    final = _final(emulated.records)
    video = emulated.clips_only
    sound = decode(video)
    assert len(final.joins_at) == 3
    steps = [click_ratio(sound, at) for at in final.joins_at]
    assert max(steps) <= 1.0, steps  # at every join the largest step is no bigger than in the sound around it
    per_segment = [ebur128(video, start, end).integrated for start, end in _spans(final)]
    assert max(per_segment) - min(per_segment) <= 3.0, per_segment
    whole = ebur128(video)
    assert abs(whole.integrated - (-14.0)) <= 1.0 and whole.true_peak <= -1.0, whole

    assert final.sound is not None and final.sound.target_lufs == -14.0
    assert [clip.segment for clip in final.sound.clips] == [1, 2, 3, 4]
    assert all(clip.lufs_after is not None and abs(clip.lufs_after + 14) <= 1.5 for clip in final.sound.clips)


def test_a_score_is_paid_once_heard_under_every_segment_and_ducked(emulated: Emulated) -> None:
    fal = emulated.fal
    before = len(fal.submissions)
    request = ExtendRequest(**emulated.request.model_dump(exclude={"soundtrack_model"}) | {"soundtrack": "score"})
    assert request.soundtrack_model == "sonilo-video"
    job = Job(job_ref(request))
    assert job.job_id == emulated.job.job_id  # the same clips: only the score is new
    plan, outcome = run_job(job)
    assert outcome.ok, outcome.error
    paid = fal.submissions[before:]
    assert [submission.endpoint for submission in paid] == [SONILO]  # one request, and no clip again

    score = outcome.records["score"]
    final = _final(outcome.records)
    assert isinstance(score, ScoreRecord) and score.scored_from == "video"
    assert score.duration == pytest.approx(final.duration, abs=0.1)  # the model scored the whole video
    assert score.cost_usd == pytest.approx(0.009 * np.ceil(final.duration))
    assert final.sound is not None and final.sound.soundtrack == "score" and final.sound.score_sha256 == score.sha256

    scored, plain = decode(Path(job.store.path("final.mp4"))), decode(emulated.clips_only)
    # The preview score rings above every sound the preview clips make: there it can be told apart.
    bells, bells_before = band_db(scored, BELL_BAND_HZ, WINDOW_S), band_db(plain, BELL_BAND_HZ, WINDOW_S)
    per_window = round(final.duration / WINDOW_S)
    for start, end in _spans(final):  # the music is there under every segment
        inside = slice(round(start / WINDOW_S) + 2, min(per_window, round(end / WINDOW_S)) - 2)
        assert np.median(bells[inside]) - np.median(bells_before[inside]) >= 15
    loudness = band_db(plain, None, WINDOW_S)[5:-5]  # the clips' own sound, away from the score's fades
    loud = loudness >= np.percentile(loudness, 80)
    quiet = loudness <= np.percentile(loudness, 20)
    music = bells[5:-5]
    assert np.median(music[loud]) <= np.median(music[quiet]) - 4  # the music dips under the loud parts
    whole = ebur128(Path(job.store.path("final.mp4")))
    assert abs(whole.integrated - (-14.0)) <= 1.0 and whole.true_peak <= -1.0, whole

    _, again = run_job(Job(job_ref(request)))
    assert again.ok and len(fal.submissions) == before + 1  # a rerun submits nothing
    report = write_report(job, plan, graph_for(request, plan, job.state()), outcome.records, {})
    assert report.manifest.score is not None and report.manifest.score.request_id == score.request_id
    assert report.manifest.cost_usd == pytest.approx(sum(e.cost_usd for e in job.ledger.entries()))


def test_the_review_page_shows_the_joins_sound_and_plays_the_scored_video(
    emulated: Emulated,
    browser: Any,
) -> None:
    request = ExtendRequest(**emulated.request.model_dump(exclude={"soundtrack_model"}) | {"soundtrack": "score"})
    job = Job(job_ref(request))
    plan, outcome = run_job(job)  # the score from the test before, or made now
    assert outcome.ok, outcome.error
    report: Report = write_report(job, plan, graph_for(request, plan, job.state()), outcome.records, {})
    assert [seam.audio_step is not None and seam.audio_step <= 1.0 for seam in report.seams] == [True] * 3
    page = browser.new_page()
    page.goto(Path(job.store.path("review.html")).as_uri())
    cards = page.locator(".join-row")
    assert cards.count() == 3
    first = cards.nth(0).inner_text()
    assert "sample step at the join" in first and "no click" in first
    assert "loudness either side (3 s)" in first and "LUFS →" in first
    assert "clips as rendered" in first and "brought to -14 LUFS" in first
    facts = page.locator(".facts").inner_text()
    assert "score, -14 LUFS target" in facts and "sonilo-video" in facts
    duration = page.evaluate(
        """() => new Promise(done => {
            const video = document.querySelector('video');
            if (video.readyState >= 1) done(video.duration);
            else video.addEventListener('loadedmetadata', () => done(video.duration));
        })"""
    )
    assert duration == pytest.approx(_final(outcome.records).duration, abs=0.1)
    assert page.locator("video").get_attribute("src") == "final.mp4"
    page.close()
