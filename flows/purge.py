"""Retention flow: delete finished job folders older than N days (dry run lists them instead)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from sora_extend.request import normalise_storage_url
from sora_extend.settings import get_settings
from sora_extend.storage.retention import PurgeReport
from tasks.retention import purge_task


@flow(name="purge-outputs", flow_run_name="purge-outputs-{older_than_days}d", validate_parameters=True)
def purge_outputs_flow(
    storage: str | None = None, older_than_days: float | None = None, dry_run: bool = False
) -> PurgeReport:
    """Delete completed/failed job folders not updated for `older_than_days` (default SORA_EXTEND_RETENTION_DAYS);
    running jobs are never touched. `storage` defaults to SORA_EXTEND_STORAGE."""
    url = normalise_storage_url(storage or get_settings().storage)
    report = purge_task(url, older_than_days, dry_run)
    create_table_artifact(
        [job.model_dump(mode="json") for job in report.jobs],
        key="purge-outputs",
        description=("Dry run: nothing deleted. " if dry_run else "") + report.lines()[-1],
    )
    return report
