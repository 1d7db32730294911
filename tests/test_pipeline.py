"""The pipeline's steps as plain functions (no Prefect): idempotent, resumable, never paying twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sora_extend.errors import BudgetExceededError, TerminalProviderError
from sora_extend.ledger import LedgerEntry
from sora_extend.media.frames import first_frame
from sora_extend.media.images import decode_png, psnr
from sora_extend.pipeline.assemble import merge_job, write_manifest
from sora_extend.pipeline.budget import check_estimate
from sora_extend.pipeline.chain import render_chain
from sora_extend.pipeline.handoff import extract_handoff
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.planning import plan_job
from sora_extend.pipeline.segment import build_request, render_segment
from sora_extend.planners import get_planner
from sora_extend.providers.preview import PreviewProvider
from sora_extend.request import ExtendRequest
from sora_extend.settings import get_settings


class CountingPreview(PreviewProvider):
    """The real preview provider, counting submissions."""

    submissions = 0

    def submit(self, request):  # type: ignore[no-untyped-def]
        type(self).submissions += 1
        return super().submit(request)


@pytest.fixture
def job(storage_url: str) -> Job:
    CountingPreview.submissions = 0
    request = ExtendRequest(prompt="A paper boat drifts down a rainy street", segments=3, seconds=1, resolution="360p")
    return Job(job_ref(request))


def run_all(job: Job) -> tuple[list, dict]:
    plan = plan_job(job, get_planner("template"))
    return render_chain(job, plan, CountingPreview(job.spec, get_settings()))


def test_domain_package_imports_no_prefect() -> None:
    code = (
        "import sys, pkgutil, importlib, sora_extend\n"
        "for m in pkgutil.walk_packages(sora_extend.__path__, 'sora_extend.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('prefect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_full_pipeline_without_prefect_and_a_second_pass_pays_nothing(job: Job) -> None:
    segments, handoffs = run_all(job)
    assert CountingPreview.submissions == 3
    for record in segments[1:]:
        seed = decode_png(job.store.read_bytes(handoffs[record.index - 1].path))
        local = job.cache.fetch(job.store, record.path, record.sha256)
        assert psnr(first_frame(local), seed) >= 35
    plan = plan_job(job, get_planner("template"))
    final = merge_job(job, plan, segments, handoffs)
    assert final.duration == pytest.approx(3.0, abs=1 / 24)
    manifest = write_manifest(job, plan, segments, handoffs, final, {"total_s": 1.0})
    assert [entry.state for entry in manifest.ledger] == ["completed"] * 3
    for name in (
        "plan.json",
        "segments/01.mp4",
        "segments/03.json",
        "frames/01.png",
        "final.mp4",
        "manifest.json",
        "job.json",
    ):
        assert job.store.exists(name) or name == "job.json", name

    again, _ = run_all(job)
    assert CountingPreview.submissions == 3
    assert [r.sha256 for r in again] == [r.sha256 for r in segments]


def test_a_lost_segment_file_is_fetched_again_by_its_recorded_request(job: Job) -> None:
    segments, _ = run_all(job)
    job.store.delete(segments[1].path)
    run_all(job)
    assert CountingPreview.submissions == 3  # resumed from the ledger's request id, not resubmitted
    assert job.store.exists(segments[1].path)


def test_rerender_makes_a_new_take_and_later_segments_follow(job: Job) -> None:
    first, _ = run_all(job)
    takes = job.apply_rerender([2], token="run-a")
    assert takes == {2: 2}
    assert job.apply_rerender([2], token="run-a") == {2: 2}  # the same run retried: applied once
    second, _ = run_all(job)
    assert CountingPreview.submissions == 3 + 2  # segment 2 (new take) and 3 (new hand-off frame)
    assert second[0].sha256 == first[0].sha256
    assert second[1].sha256 != first[1].sha256 and second[2].sha256 != first[2].sha256
    history = job.store.listdir("segments/history")
    assert any(name.startswith("02-take1-") and name.endswith(".mp4") for name in history)


def test_orphaned_paid_submission_is_not_resubmitted_silently(job: Job) -> None:
    plan = plan_job(job, get_planner("template"))
    request = build_request(job, plan.shots[0], None, 1)
    job.ledger.put(
        LedgerEntry(
            key=request.content_key,
            segment=1,
            provider="fal",
            model="veo31-fast",
            endpoint="fal-ai/veo3.1/fast",
            state="submitting",
            cost_usd=1.2,
        )
    )

    class PaidPreview(CountingPreview):
        is_paid = True  # type: ignore[assignment]

    with pytest.raises(TerminalProviderError, match="request id was never recorded"):
        render_segment(job, plan.shots[0], None, PaidPreview(job.spec, get_settings()))
    assert CountingPreview.submissions == 0


def test_budget_refuses_before_start_and_stops_before_a_submission(storage_url: str) -> None:
    paid = ExtendRequest(prompt="x", provider="fal", model="veo31-fast", segments=4, seconds=8, budget_usd=3)
    with pytest.raises(BudgetExceededError, match=r"budget_usd: this run needs \$4.80"):
        check_estimate(paid)
    check_estimate(paid.model_copy(update={"budget_usd": 4.8}))
    with pytest.raises(BudgetExceededError, match="already spent"):
        check_estimate(paid.model_copy(update={"budget_usd": 4.8}), already_spent=1.2, still_to_render=4)


def test_handoff_frame_has_the_exact_next_size(job: Job, tmp_path: Path) -> None:
    segments, _ = run_all(job)
    record = extract_handoff(job, segments[0], (200, 300))
    assert decode_png(job.store.read_bytes(record.path)).shape == (300, 200, 3)
