"""Job storage through fsspec: local folders and a real S3 endpoint on loopback (moto server)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from sora_extend.pipeline.job import Job, JobState, job_ref
from sora_extend.request import ExtendRequest
from sora_extend.storage.retention import purge_outputs
from sora_extend.storage.store import JobStore
from tests.media_factory import write_clip


def _roundtrip(store: JobStore, tmp_path: Path) -> None:
    store.write_json("plan.json", {"title": "고양이", "n": 1})
    assert store.read_json("plan.json") == {"title": "고양이", "n": 1}
    clip = write_clip(tmp_path / "clip.mp4", 24)
    store.put_file(clip, "segments/01.mp4")
    assert store.size("segments/01.mp4") == clip.stat().st_size
    assert store.listdir("segments") == ["01.mp4"]
    back = store.get_file("segments/01.mp4", tmp_path / "back.mp4")
    assert back.read_bytes() == clip.read_bytes()
    store.move("segments/01.mp4", "segments/history/01-take1.mp4")
    assert not store.exists("segments/01.mp4") and store.exists("segments/history/01-take1.mp4")
    assert store.read_model("missing.json", JobState) is None


def test_local_store(storage_url: str, tmp_path: Path) -> None:
    store = JobStore(storage_url, "job-1")
    _roundtrip(store, tmp_path)
    assert store.link("plan.json", 60) == store.path("plan.json")
    assert store.url("plan.json") == f"{storage_url}/job-1/plan.json"


def test_s3_store_and_presigned_link(s3_storage: str, tmp_path: Path) -> None:
    store = JobStore(s3_storage, "job-1")
    _roundtrip(store, tmp_path)
    assert store.url("plan.json") == f"{s3_storage}/job-1/plan.json"
    link = store.link("plan.json", ttl_s=600)
    query = parse_qs(urlparse(link).query)
    assert "Signature" in query or "X-Amz-Signature" in query
    if "Expires" in query:  # signature v2: an absolute epoch
        assert abs(int(query["Expires"][0]) - time.time() - 600) < 30
    else:
        assert query["X-Amz-Expires"] == ["600"]
    assert json.loads(httpx.get(link).content) == {"title": "고양이", "n": 1}


def _job(storage: str, prompt: str, status: str, age_days: float) -> str:
    job = Job(job_ref(ExtendRequest(prompt=prompt, storage=storage)))
    stamp = datetime.now(UTC) - timedelta(days=age_days)
    state = JobState(job_id=job.job_id, status=status, created_at=stamp)  # type: ignore[arg-type]
    job.store.write_json("job.json", state.model_copy(update={"updated_at": stamp, "finished_at": stamp}))
    job.store.write_json("plan.json", {"x": 1})
    return job.job_id


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_purge_removes_only_expired_finished_jobs(backend: str, request: pytest.FixtureRequest) -> None:
    storage = request.getfixturevalue("s3_storage" if backend == "s3" else "storage_url")
    old_done = _job(storage, "old completed", "completed", 3)
    old_failed = _job(storage, "old failed", "failed", 2)
    old_running = _job(storage, "old running", "running", 5)
    recent = _job(storage, "recent", "completed", 0.1)
    JobStore(storage, "not-a-job").write_json("notes.json", {})

    dry = purge_outputs(storage, older_than_days=1, dry_run=True)
    verdicts = {job.job_id: job.verdict for job in dry.jobs}
    assert verdicts == {
        old_done: "delete",
        old_failed: "delete",
        old_running: "keep: running",
        recent: "keep: recent",
        "not-a-job": "keep: not a job",
    }
    assert dry.deleted == []
    assert all(JobStore(storage, job_id).exists("plan.json") for job_id in (old_done, old_failed))

    real = purge_outputs(storage, older_than_days=1)
    assert sorted(real.deleted) == sorted([old_done, old_failed])
    assert not JobStore(storage, old_done).exists("job.json")
    assert JobStore(storage, old_running).exists("plan.json") and JobStore(storage, recent).exists("plan.json")
    assert "deleted 2 job folder(s)" in real.lines()[-1]
