"""Batch flow: one child run of the extend-video deployment per prompt, then a table of results."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from sora_extend.batch import BatchRequest
from tasks.batch import BatchRow, load_batch, run_videos
from tasks.restarts import check_restarts


@flow(name="extend-batch", flow_run_name="extend-batch", validate_parameters=True)
def extend_batch(batch: BatchRequest) -> list[BatchRow]:
    """Render many videos: every request is validated first, then each runs through the deployment."""
    check_restarts()  # resumed after a lost worker: the idempotency keys reattach it to its child runs
    requests = load_batch(batch)
    rows = run_videos(batch, requests)
    done = sum(row.state == "COMPLETED" for row in rows)
    create_table_artifact(
        [row.model_dump(exclude={"flow_run_id"}) for row in rows],
        key="extend-batch-results",
        description=f"{done} of {len(rows)} videos completed",
    )
    return rows
