"""Retention task: purge expired, finished job folders from storage."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from sora_extend.storage.retention import PurgeReport, purge_outputs
from tasks.secrets import storage_settings


@task(name="purge-job-folders", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def purge_task(storage_url: str, older_than_days: float | None, dry_run: bool) -> PurgeReport:
    return purge_outputs(storage_url, older_than_days, dry_run=dry_run, settings=storage_settings())
