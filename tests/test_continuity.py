"""Continuity at the joins: the hand-off guard, colour re-anchoring, the seam report, the contact
sheet, and transitions per join, on real MP4s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sora_extend.media.contact_sheet import contact_sheet
from sora_extend.media.frames import last_frames
from sora_extend.media.images import decode_png, lab_stats, mean_luma
from sora_extend.media.merge import JoinPlan, merge_videos
from sora_extend.pipeline.handoff import choose_frame
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.records import FinalRecord, HandoffRecord, SegmentRecord
from sora_extend.pipeline.report import write_report
from sora_extend.pipeline.run import graph_for, run_job
from sora_extend.request import ExtendRequest
from tests.media_factory import decode_all, read_index, write_clip


@pytest.mark.parametrize("spoil", ["black", "blur"])
def test_guard_skips_black_or_blurred_last_frames(tmp_path: Path, spoil: str) -> None:
    clip = write_clip(tmp_path / "spoiled.mp4", 48, spoil_last=3, spoil=spoil)
    chosen, scores = choose_frame(last_frames(clip, 6))
    assert chosen.from_end == 3 and read_index(chosen.rgb) == 44
    assert len(scores) == 6
    plain = write_clip(tmp_path / "plain.mp4", 48)
    assert choose_frame(last_frames(plain, 6))[0].from_end == 0


def test_trimmed_tail_never_reaches_the_output(tmp_path: Path) -> None:
    first = write_clip(tmp_path / "a.mp4", 48, spoil_last=3)
    second = write_clip(tmp_path / "b.mp4", 48, start_index=500)
    result = merge_videos([first, second], tmp_path / "out.mp4", [JoinPlan(trim_tail_frames=3)])
    assert result.method == "stream-copy, 1 of 2 segments re-encoded"
    frames = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 45 + 48
    assert min(mean_luma(rgb) for _, rgb in frames) > 16  # no black frame before the join


def _run(storage: str, prompt: str, segments: int, **fields: object) -> tuple[Job, dict[str, object]]:
    request = ExtendRequest(prompt=prompt, segments=segments, seconds=2, resolution="360p", storage=storage, **fields)  # type: ignore[arg-type]
    job = Job(job_ref(request))
    _, outcome = run_job(job)
    assert outcome.ok, outcome.error
    return job, outcome.records


def _mean_lab(job: Job, record: SegmentRecord) -> np.ndarray:
    frames = last_frames(job.cache.fetch(job.store, record.path, record.sha256), 1)
    return lab_stats(frames[-1].rgb)[0]


def test_colour_reanchoring_bounds_drift_over_hops(storage_url: str) -> None:
    drift = {}
    for anchor in (True, False):
        job, records = _run(storage_url, "A lantern-lit alley at night", 8, colour_anchor=anchor)
        first, last = records["segment-01"], records["segment-08"]
        assert isinstance(first, SegmentRecord) and isinstance(last, SegmentRecord)
        drift[anchor] = float(np.linalg.norm(_mean_lab(job, last) - _mean_lab(job, first)))
        handoffs = [record for record in records.values() if isinstance(record, HandoffRecord)]
        assert len(handoffs) == 7 and all(h.colour_anchored == (anchor and h.segment > 1) for h in handoffs)
    print(f"8-hop drift: on {drift[True]:.2f}, off {drift[False]:.2f}")
    assert drift[True] <= 1.5 and drift[False] > 2 * drift[True]


def _report(job: Job, records: dict[str, object]):  # type: ignore[no-untyped-def]
    from sora_extend.pipeline.planning import plan_job
    from sora_extend.planners import get_planner

    plan = plan_job(job, get_planner("template"))
    return write_report(job, plan, graph_for(job.request, plan, job.state()), records, {})


def test_seam_report_drift_and_contact_sheet(storage_url: str) -> None:
    job, records = _run(storage_url, "A cyclist crosses a bridge", 3, transitions=["continuous", "cut"])
    final = records["merge"]
    # continuous: the repeated frame shares one frame period; a cut starts exactly after 2 x 2 s
    assert final.joins_at == pytest.approx([2.0 - 1 / 48, 4.0], abs=1e-3)  # type: ignore[attr-defined]
    report = _report(job, records)
    assert [seam.transition for seam in report.seams] == ["continuous", "cut"]
    continuous, cut = report.seams
    assert continuous.shared == "hand-off" and continuous.start_psnr is not None and continuous.start_psnr >= 35
    assert continuous.start_ssim is not None and continuous.start_ssim > 0.9
    assert cut.shared is None and cut.start_psnr is None  # a cut is a new shot: nothing was seeded
    assert cut.colour_delta > continuous.colour_delta and cut.motion_jump > continuous.motion_jump
    assert job.store.read_json("seams.json")[0]["boundary"] == 1

    assert [figure.segment for figure in report.drift] == [1, 2, 3]
    assert report.drift[0].colour == 0 and report.drift[0].structure == 0 and report.drift[0].sharpness_ratio == 1
    assert report.drift[2].structure > report.drift[1].structure  # a cut to a new shot moves further away
    assert job.store.read_json("drift.json")[2]["segment"] == 3

    sheet = decode_png(job.store.read_bytes("contact_sheet.png"))
    assert report.contact_sheet_link is not None and Path(report.contact_sheet_link).exists()
    assert sheet.shape[1] == 3 * (2 * 256 + 6) and sheet.shape[0] > 144


def test_contact_sheet_layout() -> None:
    frame = np.full((90, 160, 3), 200, dtype=np.uint8)
    sheet = contact_sheet([(frame, frame)] * 9, thumb_width=100, per_row=4)
    assert sheet.shape == (3 * (56 + 22 + 6), 4 * (200 + 6), 3)


def test_crossfade_joins_overlap(storage_url: str) -> None:
    _, records = _run(storage_url, "A slow dissolve", 3, transition="crossfade", crossfade_seconds=0.5)
    final = records["merge"]
    assert isinstance(final, FinalRecord)
    assert final.duration == pytest.approx(3 * 2 + 2 / 24 - 2 * 0.5, abs=0.05)
    assert final.method == "stream-copy, 3 of 3 segments re-encoded"  # every join is a crossfade here
    assert [j.crossfade_s for j in final.joins] == [0.5, 0.5]
