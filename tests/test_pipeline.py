"""The pipeline without Prefect: the run graph of each mode, the executor, and whole runs that are
idempotent, resumable and never pay twice."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from sora_extend import layout
from sora_extend.errors import BudgetExceededError, TerminalProviderError
from sora_extend.ledger import LedgerEntry
from sora_extend.media.frames import first_frame, last_frame
from sora_extend.media.images import decode_png, psnr
from sora_extend.pipeline.budget import Work, check_estimate
from sora_extend.pipeline.execute import ThreadRunner, execute
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.planning import plan_job
from sora_extend.pipeline.records import KeyframeRecord, SegmentRecord
from sora_extend.pipeline.report import write_report
from sora_extend.pipeline.run import graph_for, pending_work, run_job
from sora_extend.pipeline.segment import build_request
from sora_extend.pipeline.steps import SegmentStep, build_graph
from sora_extend.planners import get_planner
from sora_extend.providers.preview import PreviewProvider
from sora_extend.request import ExtendRequest


class CountingPreview(PreviewProvider):
    """The real preview provider, counting submissions by step label."""

    submitted: list[str] = []  # noqa: RUF012 - shared on purpose: one list per test (reset by the fixture)

    def submit(self, request):  # type: ignore[no-untyped-def]
        type(self).submitted.append(request.label)
        return super().submit(request)


def counting(spec):  # type: ignore[no-untyped-def]
    from sora_extend.settings import get_settings

    return CountingPreview(spec, get_settings())


def make_job(storage_url: str, **fields: object) -> Job:
    CountingPreview.submitted = []
    defaults: dict[str, object] = {"prompt": "A paper boat drifts down a rainy street", "segments": 3, "seconds": 1}
    return Job(job_ref(ExtendRequest(**(defaults | {"resolution": "360p"} | fields))))  # type: ignore[arg-type]


def run_all(job: Job) -> dict[str, object]:
    _, outcome = run_job(job, counting)
    assert outcome.ok, outcome.error
    return outcome.records


def test_domain_package_imports_no_prefect() -> None:
    code = (
        "import sys, pkgutil, importlib, sora_extend\n"
        "for m in pkgutil.walk_packages(sora_extend.__path__, 'sora_extend.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('prefect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- the run graph of each mode


def _plan(storage_url: str, **fields: object):  # type: ignore[no-untyped-def]
    job = make_job(storage_url, **fields)
    return job, plan_job(job, get_planner("template"))


def test_chain_graph_is_serial_through_handoff_frames(storage_url: str) -> None:
    _job, plan = _plan(storage_url, segments=3, transitions=["continuous", "cut"])
    graph = build_graph("chain", plan)
    assert [step.id for step in graph.steps] == [
        "segment-01",
        "handoff-01",
        "segment-02",
        "handoff-02",
        "segment-03",
        "merge",
    ]
    assert graph["segment-02"].needs == ("handoff-01",)
    assert graph["segment-03"].needs == ()  # a cut is a new shot: nothing to wait for
    assert graph["handoff-02"].needs == ("segment-02", "handoff-01")  # colour anchored to the first frame
    assert graph.merge.joins == ("handoff-01", "")
    assert graph.downstream({"segment-01"}) == {"segment-01", "handoff-01", "segment-02", "handoff-02", "merge"}


def test_keyframes_graph_renders_every_segment_between_two_stills(storage_url: str) -> None:
    _job, plan = _plan(storage_url, segments=4, continuity="keyframes")
    assert [still.edit_of for still in plan.stills] == [None, 0, 0, 0, 0]
    graph = build_graph("keyframes", plan, takes={3: 2}, keyframe_takes={2: 2})
    assert graph["keyframe-00"].needs == ()
    assert all(graph[f"keyframe-{k:02d}"].needs == ("keyframe-00",) for k in range(1, 5))
    assert graph["segment-03"].needs == ("keyframe-02", "keyframe-03")
    assert graph["segment-03"].take == 2 and graph["keyframe-02"].take == 2
    # re-rendering keyframe 2 touches only the two segments that start or end on it
    assert graph.downstream({"keyframe-02"}) - {"merge", "keyframe-02"} == {"segment-02", "segment-03"}
    assert graph.downstream({"segment-03"}) == {"segment-03", "merge"}


def test_keyframes_plan_needs_a_still_per_boundary(storage_url: str) -> None:
    _job, plan = _plan(storage_url, segments=2)
    with pytest.raises(ValueError, match="needs 3 stills"):
        build_graph("keyframes", plan)


# ---------------------------------------------------------------- the executor


class _Timed:
    """A step function that records how many steps ran at once (the executor is plain logic)."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail, self.running, self.most, self.order = fail, 0, 0, []
        self.lock = threading.Lock()

    def __call__(self, step, inputs):  # type: ignore[no-untyped-def]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.order.append(step.id)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        if step.id == self.fail:
            raise RuntimeError(f"{step.id} broke")
        return step.id


def test_executor_runs_keyframes_at_once_within_the_cap_and_in_dependency_order(storage_url: str) -> None:
    _, plan = _plan(storage_url, segments=6, continuity="keyframes")
    graph = build_graph("keyframes", plan)
    for cap, expected in ((None, 6), (2, 2)):
        timed = _Timed()
        with ThreadRunner(timed, threads=16) as runner:
            outcome = execute(graph, runner, max_parallel=cap)
        assert outcome.ok and set(outcome.records) == {step.id for step in graph.steps}
        assert timed.most == expected
        assert timed.order.index("keyframe-00") < min(timed.order.index(f"keyframe-{k:02d}") for k in range(1, 7))
        assert timed.order[-1] == "merge"


def test_executor_stops_starting_after_a_failure_and_keeps_what_finished(storage_url: str) -> None:
    _, plan = _plan(storage_url, segments=4, continuity="keyframes")
    graph = build_graph("keyframes", plan)
    timed = _Timed(fail="keyframe-00")
    with ThreadRunner(timed) as runner:
        outcome = execute(graph, runner)
    assert outcome.failed is not None and outcome.failed.id == "keyframe-00"
    assert timed.order == ["keyframe-00"] and outcome.records == {}
    timed = _Timed(fail="segment-02")
    with ThreadRunner(timed) as runner:
        outcome = execute(graph, runner, done={f"keyframe-{k:02d}": "stored" for k in range(5)})
    assert str(outcome.error) == "segment-02 broke"
    assert {"segment-01", "segment-03", "segment-04"} <= set(outcome.records) and "merge" not in outcome.records


# ---------------------------------------------------------------- whole runs, offline


def test_chain_run_without_prefect_and_a_second_pass_pays_nothing(storage_url: str) -> None:
    job = make_job(storage_url)
    records = run_all(job)
    assert CountingPreview.submitted == ["segment 1", "segment 2", "segment 3"]
    for index in (2, 3):
        seed = decode_png(job.store.read_bytes(layout.handoff(index - 1)))
        record = records[f"segment-{index:02d}"]
        assert isinstance(record, SegmentRecord)
        assert psnr(first_frame(job.cache.fetch(job.store, record.path, record.sha256)), seed) >= 35
    plan = plan_job(job, get_planner("template"))
    report = write_report(job, plan, graph_for(job.request, plan, job.state()), records, {"total_s": 1.0})
    assert report.manifest.final is not None and report.manifest.final.duration == pytest.approx(3.0, abs=1 / 24)
    assert [entry.state for entry in report.manifest.ledger] == ["completed"] * 3
    assert job.state().status == "completed"
    for name in (layout.PLAN, layout.segment(1), layout.segment_record(3), layout.handoff(1), layout.FINAL):
        assert job.store.exists(name), name

    again = run_all(job)
    assert CountingPreview.submitted == ["segment 1", "segment 2", "segment 3"]
    assert again["merge"].sha256 == records["merge"].sha256  # type: ignore[attr-defined]


def test_keyframes_run_lands_every_join_on_its_keyframe(storage_url: str) -> None:
    job = make_job(storage_url, segments=4, continuity="keyframes", seconds=1)
    records = run_all(job)
    assert sorted(CountingPreview.submitted) == sorted(
        [f"keyframe {k}" for k in range(5)] + [f"segment {k}" for k in range(1, 5)]
    )
    for index in range(1, 5):
        segment = records[f"segment-{index:02d}"]
        start, end = records[f"keyframe-{index - 1:02d}"], records[f"keyframe-{index:02d}"]
        assert isinstance(segment, SegmentRecord) and isinstance(start, KeyframeRecord)
        local = job.cache.fetch(job.store, segment.path, segment.sha256)
        assert psnr(first_frame(local), decode_png(job.store.read_bytes(start.path))) >= 35
        assert psnr(last_frame(local), decode_png(job.store.read_bytes(end.path))) >= 35  # type: ignore[attr-defined]
    assert all(join.dedupe_first_frame for join in records["merge"].joins)  # type: ignore[attr-defined]


def test_keyframes_rerender_touches_only_what_it_must(storage_url: str) -> None:
    job = make_job(storage_url, segments=4, continuity="keyframes")
    first = run_all(job)
    CountingPreview.submitted.clear()

    state = job.apply_rerender([3], [], token="run-a")
    assert pending_work(job) == Work(segments=1, keyframes=0)
    assert job.apply_rerender([3], [], token="run-a") == state  # the same run retried: applied once
    second = run_all(job)
    assert CountingPreview.submitted == ["segment 3"]
    assert second["segment-02"].sha256 == first["segment-02"].sha256  # type: ignore[attr-defined]
    assert second["segment-04"].sha256 == first["segment-04"].sha256  # type: ignore[attr-defined]
    assert any(name.startswith("03-take1-") for name in job.store.listdir(layout.SEGMENT_HISTORY_DIR))

    CountingPreview.submitted.clear()
    job.apply_rerender([], [2], token="run-b")
    assert pending_work(job) == Work(segments=2, keyframes=1)
    run_all(job)
    assert sorted(CountingPreview.submitted) == ["keyframe 2", "segment 2", "segment 3"]
    assert any(name.startswith("02-take1-") for name in job.store.listdir(layout.KEYFRAME_HISTORY_DIR))

    job.apply_rerender([], [0], token="run-c")
    assert pending_work(job) == Work(segments=4, keyframes=5)  # every still is an edit of keyframe 0


def test_chain_rerender_renders_the_segment_and_every_later_one(storage_url: str) -> None:
    job = make_job(storage_url)
    first = run_all(job)
    CountingPreview.submitted.clear()
    job.apply_rerender([2], [], token="run-a")
    assert pending_work(job) == Work(segments=2)
    second = run_all(job)
    assert CountingPreview.submitted == ["segment 2", "segment 3"]  # segment 3 starts from a new frame
    assert second["segment-01"].sha256 == first["segment-01"].sha256  # type: ignore[attr-defined]
    assert second["segment-03"].sha256 != first["segment-03"].sha256  # type: ignore[attr-defined]


def test_a_lost_segment_file_is_fetched_again_by_its_recorded_request(storage_url: str) -> None:
    job = make_job(storage_url)
    records = run_all(job)
    job.store.delete(records["segment-02"].path)  # type: ignore[attr-defined]
    CountingPreview.submitted.clear()
    run_all(job)
    assert CountingPreview.submitted == []  # resumed from the ledger's request id, not resubmitted
    assert job.store.exists(layout.segment(2))


def test_orphaned_paid_submission_is_not_resubmitted_silently(storage_url: str) -> None:
    job = make_job(storage_url)
    plan = plan_job(job, get_planner("template"))
    step = graph_for(job.request, plan, job.state())["segment-01"]
    assert isinstance(step, SegmentStep)
    request = build_request(job, step, {})
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

    from sora_extend.settings import get_settings

    _, outcome = run_job(job, lambda spec: PaidPreview(spec, get_settings()), until={"segment-01"})
    assert isinstance(outcome.error, TerminalProviderError)
    assert "request id was never recorded" in str(outcome.error)
    assert CountingPreview.submitted == []


def test_budget_refuses_before_start_and_counts_keyframes(storage_url: str) -> None:
    paid = ExtendRequest(prompt="x", provider="fal", model="veo31-fast", segments=4, seconds=8, budget_usd=3)
    with pytest.raises(BudgetExceededError, match=r"budget_usd: this run needs \$4.80"):
        check_estimate(paid)
    check_estimate(paid.model_copy(update={"budget_usd": 4.8}))
    with pytest.raises(BudgetExceededError, match="already spent"):
        check_estimate(paid.model_copy(update={"budget_usd": 4.8}), already_spent=1.2, pending=Work(segments=4))
    keyframes = ExtendRequest(
        prompt="x", provider="fal", model="veo31-fast", segments=4, seconds=8, continuity="keyframes", budget_usd=4.8
    )
    with pytest.raises(BudgetExceededError, match=r"\+ 5 keyframe\(s\)"):
        check_estimate(keyframes)


def test_handoff_frame_has_the_exact_next_size(storage_url: str) -> None:
    job = make_job(storage_url, aspect="9:16")
    records = run_all(job)
    assert decode_png(job.store.read_bytes(records["handoff-01"].path)).shape == (640, 360, 3)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- extend mode and references, offline


def _frames_around_joins(video, joins_at):  # type: ignore[no-untyped-def]
    from sora_extend.media.frames import iter_frames

    frames = [(frame.time, frame.rgb) for frame in iter_frames(video)]
    pairs = []
    for at in joins_at:
        before = max((f for f in frames if f[0] < at - 1e-6), key=lambda f: f[0])
        after = min((f for f in frames if f[0] >= at - 1e-6), key=lambda f: f[0])
        pairs.append((before[1], after[1]))
    return pairs


def test_extend_run_continues_each_clip_and_repeats_no_frame(storage_url: str) -> None:
    job = make_job(storage_url, continuity="extend", segments=3, seconds=1)
    assert job.request.mode == "extend"
    plan = plan_job(job, get_planner("template"))
    graph = graph_for(job.request, plan, job.state())
    assert graph["segment-03"].needs == ("segment-02",) and graph.merge.joins == ("", "")
    records = run_all(job)
    assert CountingPreview.submitted == ["segment 1", "segment 2", "segment 3"]
    final = records["merge"]
    assert final.duration == pytest.approx(3.0, abs=1 / 24)  # type: ignore[attr-defined]
    video = job.cache.fetch(job.store, final.path, final.sha256)  # type: ignore[attr-defined]
    for before, after in _frames_around_joins(video, final.joins_at):  # type: ignore[attr-defined]
        assert psnr(before, after) < 45  # the next clip's first frame is new footage, not the last one again
    second = records["segment-02"]
    assert isinstance(second, SegmentRecord) and second.mode == "extend"
    assert second.extends_sha256 == records["segment-01"].sha256  # type: ignore[attr-defined]


def test_auto_picks_the_best_continuation_the_model_has(storage_url: str) -> None:
    assert make_job(storage_url, continuity="auto").request.mode == "extend"  # the preview model extends
    keyframes = ExtendRequest(prompt="x", provider="fal", model="wan27", continuity="auto")
    assert keyframes.mode == "keyframes" and "renders between a first and a last image" in keyframes.mode_reason
    assert ExtendRequest(prompt="x", provider="fal", model="hailuo23", continuity="auto").mode == "chain"


def test_references_are_copied_into_the_job_and_keyed(storage_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import cv2
    import numpy as np

    from sora_extend.media.images import encode_png

    sheet = np.zeros((200, 150, 3), np.uint8)
    cv2.circle(sheet, (75, 100), 50, (220, 40, 40), -1)
    path = tmp_path / "sheet.png"
    path.write_bytes(encode_png(sheet))
    job = make_job(storage_url, continuity="keyframes", segments=2, references=[str(path)])
    records = run_all(job)
    [reference] = job.state().references
    assert job.store.read_bytes(reference.path) == path.read_bytes() and reference.width == 150
    opening = decode_png(job.store.read_bytes(records["keyframe-00"].path))  # type: ignore[attr-defined]
    height, width = opening.shape[:2]  # the sheet's red disc, inset at the lower right of the opening still
    assert opening[height - 100 : height - 80, width - 70 : width - 50].mean(axis=(0, 1))[0] > 150

    other = make_job(storage_url, continuity="keyframes", segments=2, references=[str(path)], prompt="Another")
    bare = make_job(storage_url, continuity="keyframes", segments=2, prompt="Another")
    plan = plan_job(other, get_planner("template"))
    from sora_extend.pipeline.keys import keyframe_key
    from sora_extend.pipeline.run import fix_run_inputs

    fix_run_inputs(other)
    with_refs = graph_for(other.request, plan, other.state())["keyframe-00"]
    without = graph_for(bare.request, plan, bare.state())["keyframe-00"]
    assert keyframe_key(other.request, with_refs, {}) != keyframe_key(other.request, without, {})  # type: ignore[arg-type]


def test_an_unreadable_reference_is_refused_before_anything_is_paid(storage_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sora_extend.errors import InputError
    from sora_extend.pipeline.run import fix_run_inputs

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    job = make_job(storage_url, continuity="keyframes", segments=2, references=[str(text)])
    with pytest.raises(InputError, match=r"references: .*notes.txt is not a readable image"):
        fix_run_inputs(job)
    missing = make_job(storage_url, continuity="keyframes", segments=2, references=[str(tmp_path / "gone.png")])
    with pytest.raises(InputError, match=r"references: .*gone.png cannot be read"):
        fix_run_inputs(missing)
    assert CountingPreview.submitted == []
