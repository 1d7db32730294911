"""Never paying twice, losing nothing: faults injected at the fal emulator while the real flow runs.

Each case asserts how many submissions the emulator accepted per segment and that every finished
segment is still in storage afterwards.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.exceptions import ParameterTypeError

from flows.extend import extend_video
from sora_extend.errors import BudgetExceededError, MissingKeyError, TerminalProviderError
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.run import run_job
from sora_extend.request import ExtendRequest
from sora_extend.storage.store import JobStore
from tests.emulators import Fault
from tests.run_flow import kill_when, spawn

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def tiny(prompt: str, segments: int = 3, **fields: Any) -> ExtendRequest:
    return ExtendRequest(prompt=prompt, provider="fal", model="tiny-fal", segments=segments, seconds=1, **fields)


def per_segment(fal: Any, request: ExtendRequest) -> list[int]:
    """Accepted submissions for each segment of this request's job (its subject opens every shot prompt,
    followed by the story bible; the shot number follows)."""
    prompts = [s.payload["prompt"] for s in fal.submissions_for(request.prompt)]
    return [sum(f"Shot {k}/{request.segments}:" in p for p in prompts) for k in range(1, request.segments + 1)]


def stored_segments(storage_url: str, request: ExtendRequest) -> list[int]:
    store = JobStore(storage_url, request.job_id())
    return [k for k in range(1, request.segments + 1) if store.exists(f"segments/{k:02d}.mp4")]


def inject_after(fal: Any, submissions: int, route: str, fault: Fault) -> threading.Thread:
    """Inject `fault` as soon as the emulator has accepted `submissions` requests (targets segment n+1)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(fal.submissions) < submissions and time.monotonic() < deadline:
            time.sleep(0.005)
        fal.inject(route, fault)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


TRANSIENT = [
    ("transport reset on submit", "submit", Fault.reset()),
    ("transport reset while polling", "status", Fault.reset()),
    ("429 with Retry-After on submit", "submit", Fault.status(429, retry_after=1)),
    ("500 while polling", "status", Fault.status(500)),
    ("503 runner error on submit", "submit", Fault.status(503, error_type="runner_disconnected")),
    ("stuck queue, then recovery", "submit", Fault.stuck(2.0)),
    ("expired result URL", "download", Fault.expire()),
    ("truncated download", "download", Fault.truncate(0.5)),
]


@pytest.mark.parametrize(("name", "route", "fault"), TRANSIENT, ids=[case[0] for case in TRANSIENT])
def test_transient_faults_are_retried_without_paying_twice(
    prefect_harness: None,
    fal_emulator: Any,
    storage_url: str,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    route: str,
    fault: Fault,
) -> None:
    monkeypatch.setenv("SORA_EXTEND_POLL_TIMEOUT_S", "1.0")  # a stuck queue times out and is resumed
    from sora_extend.settings import reload_settings

    reload_settings()
    request = tiny(f"Transient fault: {name}")
    inject_after(fal_emulator, 1, route, fault)  # hits segment 2
    result = extend_video(request=request)
    assert result.segments == 3
    assert [entry[0] for entry in fal_emulator.fault_log] == [route]  # the fault really happened
    assert per_segment(fal_emulator, request) == [1, 1, 1]
    assert stored_segments(storage_url, request) == [1, 2, 3]


def test_a_runner_error_after_acceptance_is_resubmitted_once_and_not_billed(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    request = tiny("Runner disconnects on segment 2")
    inject_after(fal_emulator, 1, "generation", Fault.failed(500, "runner_disconnected", "runner lost"))
    result = extend_video(request=request)
    assert per_segment(fal_emulator, request) == [1, 2, 1]  # the dead request, then one that finished
    manifest = JobStore(storage_url, result.job_id).read_json("manifest.json")
    second = next(entry for entry in manifest["ledger"] if entry["segment"] == 2)
    assert [attempt["billed"] for attempt in second["history"]] == [False]
    assert manifest["cost_usd"] == pytest.approx(3 * 0.15)  # fal never bills a 5xx


def test_content_policy_fails_the_run_keeps_finished_segments_and_a_rerun_pays_only_the_rest(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    request = tiny("Terminal fault on segment 2", segments=4)
    inject_after(fal_emulator, 1, "generation", Fault.failed(422, "content_policy_violation", "flagged by policy"))
    with pytest.raises(TerminalProviderError) as caught:
        extend_video(request=request)
    message = str(caught.value)
    assert "segment 2" in message and "fal/tiny-fal" in message and "content_policy_violation" in message
    assert per_segment(fal_emulator, request) == [1, 1, 0, 0]  # no retry of a terminal error
    assert stored_segments(storage_url, request) == [1]
    state = JobStore(storage_url, request.job_id()).read_json("job.json")
    assert state["status"] == "failed" and "content_policy_violation" in state["error"]

    before = len(fal_emulator.submissions)
    extend_video(request=request)  # the fault is cleared: the rerun pays N - k + 1 = 3 segments
    assert len(fal_emulator.submissions) - before == 3
    assert per_segment(fal_emulator, request) == [1, 2, 1, 1]
    before = len(fal_emulator.submissions)
    extend_video(request=request)
    assert len(fal_emulator.submissions) == before  # a finished job: zero


def test_budget_stops_before_the_submission_that_would_pass_it(fal_emulator: Any, storage_url: str) -> None:
    request = tiny("Budget guard", budget_usd=0.25)  # 0.15 per segment
    job = Job(job_ref(request))
    _, outcome = run_job(job)
    assert isinstance(outcome.error, BudgetExceededError) and outcome.failed is not None
    assert "submitting segment 2 would cost" in str(outcome.error) and outcome.failed.id == "segment-02"
    assert per_segment(fal_emulator, request) == [1, 0, 0]
    assert job.store.exists(outcome.records["segment-01"].path)


def test_budget_refuses_a_run_before_planning(prefect_harness: None, fal_emulator: Any, storage_url: str) -> None:
    request = tiny("Over budget from the start", budget_usd=0.40)  # needs 0.45
    with pytest.raises(BudgetExceededError, match=r"needs \$0.45"):
        extend_video(request=request)
    assert fal_emulator.submissions == []
    assert not JobStore(storage_url, request.job_id()).exists("plan.json")


def test_rerender_pays_for_the_segment_and_the_ones_after_it_only(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    request = tiny("Re-render the middle", segments=4)
    extend_video(request=request)
    extend_video(request=request.model_copy(update={"rerender": [3]}))
    assert per_segment(fal_emulator, request) == [1, 1, 2, 2]
    refused = request.model_copy(update={"rerender": [2], "budget_usd": 0.6 + 0.3})  # 0.60 spent + 3 more
    with pytest.raises(BudgetExceededError):
        extend_video(request=refused)
    assert per_segment(fal_emulator, request) == [1, 1, 2, 2]


def test_worker_killed_mid_poll_resumes_the_same_request(
    api_url: str, fal_emulator: Any, storage_url: str, tmp_path: Path
) -> None:
    fal_emulator.progress_seconds = 4.0  # long enough to be killed while polling
    request = tiny("Killed while polling", segments=2)
    worker = spawn(request.model_dump_json(), api_url, tmp_path / "work-a")
    kill_when(worker, lambda: bool(fal_emulator.submissions), settle_s=1.0)  # inside the 4 s of IN_PROGRESS
    submitted = fal_emulator.submissions[0].request_id

    fal_emulator.progress_seconds = 0.2
    result = extend_video(request=request)
    ledger = JobStore(storage_url, result.job_id).read_json("manifest.json")["ledger"]
    assert ledger[0]["request_id"] == submitted
    assert per_segment(fal_emulator, request) == [1, 1]


def test_two_concurrent_runs_of_the_same_job_submit_each_segment_once(
    api_url: str, fal_emulator: Any, storage_url: str, tmp_path: Path
) -> None:
    fal_emulator.progress_seconds = 1.0
    request = tiny("Two runs at once", segments=3)
    runs = [spawn(request.model_dump_json(), api_url, tmp_path / f"work-{name}") for name in ("a", "b")]
    for run in runs:
        _out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
    assert per_segment(fal_emulator, request) == [1, 1, 1]
    assert max(fal_emulator.submission_counts().values()) == 1


def test_soak_20_runs_with_20_percent_transient_faults(
    prefect_harness: None, fal_emulator: Any, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fal_emulator.progress_seconds = 0.05
    fal_emulator.random_faults(
        0.2,
        [
            ("submit", Fault.reset()),
            ("submit", Fault.status(429, retry_after=0)),
            ("status", Fault.status(500)),
            ("status", Fault.reset()),
            ("download", Fault.truncate(0.4)),
            ("download", Fault.expire()),
            ("submit", Fault.status(503, error_type="runner_disconnected")),
        ],
        seed=2026,
    )
    finished = 0
    for run in range(20):
        state = extend_video(request=tiny(f"Soak run {run}", segments=4), return_state=True)
        finished += state.is_completed()
    assert finished >= 19
    assert len(fal_emulator.fault_log) >= 10
    assert max(fal_emulator.submission_counts().values()) == 1  # zero duplicate submissions
    per_run = [per_segment(fal_emulator, tiny(f"Soak run {run}", segments=4)) for run in range(20)]
    assert sum(counts == [1, 1, 1, 1] for counts in per_run) >= 19 and max(map(max, per_run)) == 1


BAD_PARAMETERS = [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x" * 4001}, "prompt"),
    ({"prompt": "x", "segments": 0}, "segments"),
    ({"prompt": "x", "segments": 61}, "segments"),
    ({"prompt": "x", "segments": "many"}, "segments"),
    ({"prompt": "x", "provider": "fal", "model": "tiny-fal", "seconds": 7}, "seconds"),
    ({"prompt": "x", "provider": "fal", "model": "veo31", "seconds": 5}, "seconds"),
    ({"prompt": "x", "aspect": "4:3"}, "aspect"),
    ({"prompt": "x", "provider": "fal", "model": "tiny-fal", "resolution": "1080p"}, "resolution"),
    ({"prompt": "x", "provider": "runway"}, "provider"),
    ({"prompt": "x", "provider": "fal", "model": "no-such-model"}, "model"),
    ({"prompt": "x", "provider": "fal", "model": "sora2-fal"}, "model"),
    ({"prompt": "x", "provider": "openai", "model": "sora2"}, "model"),
    ({"prompt": "x", "provider": "openai", "model": "veo31"}, "model"),
    ({"prompt": "x", "planner": "gpt"}, "planner"),
    ({"prompt": "x", "transition": "wipe"}, "transition"),
    ({"prompt": "x", "budget_usd": -1}, "budget_usd"),
    ({"prompt": "x", "storage": "s3://"}, "storage"),
    ({"prompt": "x", "storage": "nosuch://bucket"}, "storage"),
    ({"prompt": "x", "segments": 2, "rerender": [3]}, "rerender"),
    ({"prompt": "x", "rerender": [0]}, "rerender"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "crossfade_seconds": 0}, "crossfade_seconds"),
    ({"prompt": "x", "colour": "warm"}, "colour"),
]


@pytest.mark.parametrize(
    ("parameters", "field"), BAD_PARAMETERS, ids=[f"{c[1]}-{i}" for i, c in enumerate(BAD_PARAMETERS)]
)
def test_bad_parameters_are_refused_before_any_call(
    prefect_harness: None, fal_emulator: Any, parameters: dict[str, Any], field: str
) -> None:
    """As they arrive through Prefect's API: raw JSON, validated by the same model before the run starts."""
    with pytest.raises(ParameterTypeError) as caught:
        extend_video(request=parameters)  # type: ignore[arg-type]
    assert field in str(caught.value)
    assert fal_emulator.submissions == []


def test_missing_key_and_budget_are_refused_before_any_call(
    prefect_harness: None, fal_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY")
    from sora_extend.settings import reload_settings

    reload_settings()
    with pytest.raises(MissingKeyError, match="FAL_KEY"):
        extend_video(request=tiny("No key"))
    assert fal_emulator.submissions == []
