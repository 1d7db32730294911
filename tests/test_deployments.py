"""Deployments for real: a `prefect server` on loopback, the bootstrap, `prefect deploy` from
prefect.yaml, a process worker, and runs started over the HTTP API as users' own code would."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sora_extend.batch import BatchRequest
from sora_extend.media.probe import probe
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.report import write_report
from sora_extend.pipeline.run import graph_for, run_job
from sora_extend.request import ExtendRequest
from sora_extend.web.users import add_user
from tests.browser import serving

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Stack:
    def __init__(self, api: str, storage: Path, env: dict[str, str]) -> None:
        self.api, self.storage, self.env = api, storage, env
        self.http = httpx.Client(base_url=api, timeout=30)

    def deployment_id(self, name: str) -> str:
        # The name lookup the README shows for curl: /deployments/name/<flow name>/<deployment name>.
        found = self.http.get(f"/deployments/name/{name}/{name}")
        assert found.status_code == 200, f"deployment {name} missing: {found.text}"
        return str(found.json()["id"])

    def start(self, deployment: str, parameters: dict[str, Any], key: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"parameters": parameters}
        if key:
            body["idempotency_key"] = key
        url = f"/deployments/{self.deployment_id(deployment)}/create_flow_run"
        for _ in range(5):
            answer = self.http.post(url, json=body)
            # 503: SQLite was busy (the automations' event triggers write too); Prefect's clients retry it.
            if answer.status_code != 503:
                return answer
            time.sleep(1)
        return answer

    def wait(self, run_id: str, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.http.get(f"/flow_runs/{run_id}").json()
            if run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {run_id} did not finish in {timeout} s")

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self.http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()


def _free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PYTHONPATH": str(ROOT),
        "SORA_EXTEND_STORAGE": f"file://{home / 'out'}",
        "SORA_EXTEND_WORK_DIR": str(home / "work"),
        "SORA_EXTEND_LOCK_DIR": str(home / "locks"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # default 10: the worker takes new runs as it would, sooner
    }
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    worker = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("prefect server did not start")
        first = _run([str(BIN / "sora-extend"), "bootstrap", "--limit", "preview=2"], env)
        again = _run([str(BIN / "sora-extend"), "bootstrap", "--limit", "preview=2"], env)
        assert "created" in first and "created" not in again  # idempotent
        _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "sora-extend", "--limit", "4"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        yield Stack(api, home / "out", env)
    finally:
        for process in (worker, server):
            if process is not None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def test_extend_video_over_http(stack: Stack) -> None:
    request = {"prompt": "A kite over the Han river", "segments": 2, "seconds": 2, "resolution": "360p"}
    started = stack.start("extend-video", {"request": request}, key="kite-1")
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    repeat = stack.start("extend-video", {"request": request}, key="kite-1")
    assert repeat.json()["id"] == run_id  # a retried API call does not start a second paid run

    run = stack.wait(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["name"].startswith("A-kite-over-the-Han-river")
    job_id = ExtendRequest(**request).job_id()
    info = probe(stack.storage / job_id / "final.mp4")
    assert info.duration == pytest.approx(4.0, abs=1 / 24) and info.audio is not None
    keys = {artifact["key"] for artifact in stack.artifacts(run_id)}
    assert {f"progress-{job_id}", f"shots-{job_id}", f"summary-{job_id}"} <= keys
    summary = next(a for a in stack.artifacts(run_id) if a["key"] == f"summary-{job_id}")
    assert "final.mp4" in summary["data"] and "contact_sheet.png" in summary["data"]


def test_bad_parameters_get_a_4xx_naming_the_field(stack: Stack) -> None:
    refused = stack.start("extend-video", {"request": {"prompt": "x", "segments": 0}})
    assert refused.status_code == 409
    assert "request.segments" in refused.text and "minimum of 1" in refused.text
    refused = stack.start("extend-video", {"request": {"prompt": "x", "aspect": "4:3"}})
    assert refused.status_code == 409 and "request.aspect" in refused.text


def test_batch_of_five_through_the_deployment_with_a_provider_limit(stack: Stack) -> None:
    prompts = [f"Lantern number {n} floating" for n in range(1, 6)]
    options = {"segments": 2, "seconds": 1, "resolution": "360p"}
    started = stack.start("extend-batch", {"batch": {"prompts": prompts, "options": options, "max_in_flight": 5}})
    assert started.status_code == 201, started.text
    run = stack.wait(started.json()["id"], timeout=400)
    assert run["state_type"] == "COMPLETED", run["state"]

    children = stack.http.post(
        "/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}
    ).json()
    children = (
        children
        or stack.http.post(
            "/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [stack.deployment_id("extend-video")]}},
                "flow_runs": {"name": {"like_": "Lantern-number"}},
            },
        ).json()
    )
    assert len(children) == 5 and all(child["state_type"] == "COMPLETED" for child in children)
    table = next(a for a in stack.artifacts(run["id"]) if a["key"] == "extend-batch-results")
    assert table["description"] == "5 of 5 videos completed"

    intervals = []
    for prompt in prompts:
        job = stack.storage / ExtendRequest(prompt=prompt, **options).job_id()
        for record_file in (job / "segments").glob("[0-9][0-9].json"):  # not NN-takes.json
            record = httpx.Response(200, content=record_file.read_bytes()).json()
            end = datetime.fromisoformat(record["finished_at"]).timestamp()
            intervals.append((end - record["render_s"], end))
    assert len(intervals) == 10
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most <= 2


def test_every_form_field_has_a_title_and_description(stack: Stack) -> None:
    for name, model in (("extend-video", ExtendRequest), ("extend-batch", BatchRequest)):
        deployment = stack.http.get(f"/deployments/{stack.deployment_id(name)}").json()
        definitions = deployment["parameter_openapi_schema"]["definitions"]
        fields = definitions[model.__name__]["properties"]
        assert set(fields) == set(model.model_fields)
        for field, schema in fields.items():
            assert schema.get("title") and schema.get("description"), (name, field)


def test_make_again_from_the_library_starts_the_same_request(stack: Stack, browser: Any, tmp_path: Path) -> None:
    """The library's button, clicked in Chromium, creates a run of the deployment through the REST API with
    the job's request (a new idempotency key, the signed-in person as owner), and that run completes."""
    storage = f"file://{stack.storage}"
    original = ExtendRequest(
        prompt="달빛 아래 종이배", segments=2, seconds=1, resolution="360p", storage=storage, owner="alice"
    )
    job = Job(job_ref(original))
    job.start()
    plan, outcome = run_job(job)
    write_report(job, plan, graph_for(original, plan, job.state()), outcome.records, {"total_s": 1.0})
    users = tmp_path / "users.txt"
    add_user(users, "alice", "alice-secret-1", admin=False)
    with serving(storage, "--users", str(users), "--prefect-api", stack.api) as base:
        page = browser.new_page()
        page.set_extra_http_headers({"Authorization": "Basic " + base64.b64encode(b"alice:alice-secret-1").decode()})
        page.goto(f"{base}/?job={job.job_id}")
        card = page.locator(f"#job-{job.job_id}")
        card.locator("summary").click()
        key = card.locator("input[name=key]").get_attribute("value")
        card.locator("button[type=submit]").click()
        page.wait_for_selector("#run-link")
        link = str(page.locator("#run-link").get_attribute("href"))
        page.close()
    run_id = link.rsplit("/", 1)[-1]
    assert link == f"{stack.api.removesuffix('/api')}/runs/flow-run/{run_id}"
    run = stack.wait(run_id)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["idempotency_key"] == key and key.startswith(f"{job.job_id}-again-")
    assert ExtendRequest.model_validate(run["parameters"]["request"]) == original
