"""Batch tasks: validate every video's request, then start each as a run of the extend-video deployment
(so the work pool spreads them over its workers) and collect what each produced."""

from __future__ import annotations

import time
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from pydantic import BaseModel

from sora_extend import layout
from sora_extend.batch import BatchRequest, build_requests
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.records import FinalRecord
from sora_extend.request import ExtendRequest
from tasks.secrets import storage_settings

POLL_S = 2.0
# A child that crashed (its worker lost) is put back in the queue within seconds by the recovery automations
# (`sora-extend bootstrap`); it counts as ended only if it is still Crashed this long after.
CRASHED_FOR_S = 60.0


class BatchRow(BaseModel):
    video: int
    prompt: str
    state: str
    seconds: float | None = None
    cost_usd: float | None = None
    link: str = ""
    flow_run_id: str = ""
    error: str = ""


@task(name="load-batch", cache_policy=NO_CACHE)
def load_batch(batch: BatchRequest) -> list[ExtendRequest]:
    requests = build_requests(batch, storage_settings())
    get_run_logger().info("batch: %d videos, every request valid", len(requests))
    return requests


def _row(index: int, request: ExtendRequest, run_id: UUID, state: str, message: str) -> BatchRow:
    settings = storage_settings()
    job = Job(job_ref(request, settings), settings)
    final = job.store.read_model(layout.FINAL_RECORD, FinalRecord) if state == "COMPLETED" else None
    manifest = job.store.read_json(layout.MANIFEST) if job.store.exists(layout.MANIFEST) else {}
    return BatchRow(
        video=index,
        prompt=request.prompt if len(request.prompt) <= 60 else request.prompt[:59] + "…",
        state=state,
        seconds=final.duration if final else None,
        cost_usd=manifest.get("cost_usd"),
        link=final.link if final and job.store.exists(layout.FINAL) else "",
        flow_run_id=str(run_id),
        error="" if state == "COMPLETED" else message,
    )


@task(name="run-videos", cache_policy=NO_CACHE)
def run_videos(batch: BatchRequest, requests: list[ExtendRequest]) -> list[BatchRow]:
    """Start each video through the deployment (at most `max_in_flight` at once) and wait for all.
    Idempotency keys tie each child to this batch run, so a retried batch does not start videos twice."""
    logger = get_run_logger()
    parent = flow_run.get_id() or "batch"
    pending = list(enumerate(requests, start=1))
    running: dict[UUID, tuple[int, ExtendRequest]] = {}
    rows: list[BatchRow] = []
    with get_client(sync_client=True) as client:
        while pending or running:
            while pending and len(running) < batch.max_in_flight:
                index, request = pending.pop(0)
                child = run_deployment(
                    batch.deployment,
                    parameters={"request": request.model_dump(mode="json")},
                    timeout=0,
                    as_subflow=True,
                    idempotency_key=f"{parent}:{index}",
                )
                running[child.id] = (index, request)
                logger.info("batch: video %d started as flow run %s", index, child.name)
            time.sleep(POLL_S)
            for run_id in list(running):
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    continue
                if state.is_crashed() and time.time() - state.timestamp.timestamp() < CRASHED_FOR_S:
                    continue
                index, request = running.pop(run_id)
                rows.append(_row(index, request, run_id, state.type.value, state.message or ""))
                logger.info("batch: video %d ended %s", index, state.type.value)
    return sorted(rows, key=lambda row: row.video)
