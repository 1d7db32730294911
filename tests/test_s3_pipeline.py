"""The whole pipeline on S3 (moto server on loopback): where objects land, a second worker that
resumes a job from S3 alone, presigned links, and no secret anywhere it could leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

from flows.extend import extend_video
from sora_extend.media.probe import probe
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.run import run_job
from sora_extend.request import ExtendRequest
from sora_extend.settings import get_settings
from sora_extend.storage.store import JobStore
from tests.conftest import S3_SECRET

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _objects(storage: str) -> dict[str, dict[str, object]]:
    bucket, prefix = storage.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=get_settings().s3_endpoint_url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {obj["Key"]: obj for page in pages for obj in page.get("Contents", [])}


def test_flow_on_s3_writes_where_the_manifest_says_and_leaks_no_secret(prefect_harness: None, s3_storage: str) -> None:
    request = ExtendRequest(prompt="A lantern festival over the river", segments=2, seconds=2, resolution="360p")
    state = extend_video(request=request, return_state=True)
    result = state.result()
    store = JobStore(s3_storage, result.job_id)
    manifest = store.read_json("manifest.json")
    keys = _objects(s3_storage)
    job_prefix = f"{s3_storage.removeprefix('s3://').split('/', 1)[1]}/{result.job_id}/"
    for segment in manifest["segments"]:
        assert job_prefix + segment["path"] in keys
        assert keys[job_prefix + segment["path"]]["Size"] == segment["bytes"]
    assert manifest["final"]["url"] == f"{s3_storage}/{result.job_id}/final.mp4"

    download = Path(os.environ["SORA_EXTEND_WORK_DIR"]) / "downloaded.mp4"
    download.write_bytes(httpx.get(result.link).content)  # the presigned link a person would open
    assert probe(download).duration == pytest.approx(4.0, abs=1 / 24)

    bucket = s3_storage.removeprefix("s3://").split("/", 1)[0]  # the job folder's and the library index's
    documents = [bytes(store.fs.cat_file(f"{bucket}/{key}")) for key in keys if key.endswith(".json")]
    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )[0]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        artifacts = client.read_artifacts()
    texts = [
        *(doc.decode() for doc in documents),
        json.dumps(run.parameters, default=str),
        *(log.message for log in logs),
        *(json.dumps(a.data, default=str) for a in artifacts),
    ]
    assert len(logs) > 5 and len(documents) >= 8
    assert not [text for text in texts if S3_SECRET in text]
    assert "submitted to preview" in "\n".join(log.message for log in logs)


def test_a_second_worker_with_an_empty_disk_resumes_from_s3(api_url: str, s3_storage: str, tmp_path: Path) -> None:
    request = ExtendRequest(prompt="Paper cranes fold themselves", segments=3, seconds=1, resolution="360p")
    job = Job(job_ref(request))
    assert run_job(job, until={"segment-02"})[1].ok  # worker A got this far
    before = _objects(s3_storage)

    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "SORA_EXTEND_WORK_DIR": str(tmp_path / "worker-b"),
        "SORA_EXTEND_LOCK_DIR": str(tmp_path / "worker-b-locks"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.run_flow", request.model_dump_json()],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "segment 1: already rendered" in done.stderr and "segment 2: already rendered" in done.stderr
    assert "segment 3: submitted to preview" in done.stderr
    after = _objects(s3_storage)
    for key in (k for k in before if "/segments/0" in k and k.endswith(".mp4")):
        assert after[key]["ETag"] == before[key]["ETag"] and after[key]["LastModified"] == before[key]["LastModified"]
    manifest = JobStore(s3_storage, job.job_id).read_json("manifest.json")
    assert [segment["index"] for segment in manifest["segments"]] == [1, 2, 3]
    assert len(manifest["ledger"]) == 3


def test_task_results_live_in_the_same_store_and_serve_another_worker(
    api_url: str, s3_storage: str, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

    from deployments.bootstrap import RESULTS_BLOCK, save_results_block

    assert "_prefect-results" in save_results_block()  # what `sora-extend bootstrap --results-block` saves
    slug = f"remote-file-system/{RESULTS_BLOCK}"
    request = ExtendRequest(prompt="Shared results", segments=2, seconds=1, resolution="360p")
    with temporary_settings({PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: slug}):
        extend_video(request=request)
    results = [key for key in _objects(s3_storage) if "/_prefect-results/" in key]
    assert any("/_prefect-results/segment-" in key for key in results)
    assert any("/_prefect-results/plan-" in key for key in results)

    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": slug,
        "PREFECT_HOME": str(tmp_path / "other-home"),
        "SORA_EXTEND_WORK_DIR": str(tmp_path / "other-work"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.run_flow", request.model_dump_json()],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Task run 'render-segment-01' - Finished in state Cached" in done.stderr
    assert "Task run 'render-segment-02' - Finished in state Cached" in done.stderr
