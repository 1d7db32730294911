"""Retention: delete finished job folders older than N days (and the local download cache).

A job is judged by its job.json: `running` jobs are never touched; `completed` and `failed` jobs are
deleted once their last update is older than the cut-off. Folders without a job.json (not created
by this project, or half-written by a crash before the first step) are listed but kept. A deleted job
leaves the library's index too.
"""

from __future__ import annotations

import math
import posixpath
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.errors import InputError
from sora_extend.library.index import LibraryIndex
from sora_extend.pipeline.job import JobState
from sora_extend.settings import MAX_RETENTION_DAYS, Settings, get_settings
from sora_extend.storage.store import open_filesystem

Verdict = Literal["delete", "keep: running", "keep: recent", "keep: not a job"]


class JobAge(BaseModel):
    job_id: str
    status: str
    updated_at: datetime | None
    verdict: Verdict


class PurgeReport(BaseModel):
    storage: str
    cutoff: datetime
    dry_run: bool
    jobs: list[JobAge] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    cache_files_deleted: int = 0

    def lines(self) -> list[str]:
        action = "would delete" if self.dry_run else "deleted"
        rows = [f"{job.verdict:<16} {job.status:<10} {job.updated_at or '-'!s:<32} {job.job_id}" for job in self.jobs]
        summary = sum(job.verdict == "delete" for job in self.jobs)
        rows.append(f"{action} {summary} job folder(s) older than {self.cutoff:%Y-%m-%d %H:%M} UTC in {self.storage}")
        if self.cache_files_deleted:
            rows.append(f"{action} {self.cache_files_deleted} local cache file(s)")
        return rows


def _job_age(fs: object, root: str, job_id: str, cutoff: datetime) -> JobAge:
    try:
        state = JobState.model_validate_json(fs.cat_file(posixpath.join(root, job_id, layout.JOB_STATE)))  # type: ignore[attr-defined]
    except (FileNotFoundError, ValueError):
        return JobAge(job_id=job_id, status="-", updated_at=None, verdict="keep: not a job")
    stamp = state.finished_at or state.updated_at
    if state.status == "running":
        verdict: Verdict = "keep: running"
    else:
        verdict = "delete" if stamp < cutoff else "keep: recent"
    return JobAge(job_id=job_id, status=state.status, updated_at=stamp, verdict=verdict)


def _purge_cache(work_dir: Path, cutoff: datetime, dry_run: bool) -> int:
    count = 0
    limit = cutoff.timestamp()
    for path in list(work_dir.rglob("*")) if work_dir.exists() else []:
        if path.is_file() and path.stat().st_mtime < limit:
            count += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    return count


def check_retention(days: float) -> float:
    """A retention period in days, refused unless it is a number in (0, MAX_RETENTION_DAYS]: zero or a
    negative number would delete jobs that finished a minute ago."""
    if not math.isfinite(days) or not 0 < days <= MAX_RETENTION_DAYS:
        allowed = f"more than 0, at most {MAX_RETENTION_DAYS:g}"
        raise InputError("older_than_days", f"{days} days is not a retention period", allowed)
    return days


def purge_outputs(
    storage_url: str,
    older_than_days: float | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> PurgeReport:
    settings = settings or get_settings()
    days = settings.retention_days if older_than_days is None else check_retention(older_than_days)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    fs, root = open_filesystem(storage_url, settings)
    report = PurgeReport(storage=storage_url, cutoff=cutoff, dry_run=dry_run)
    try:
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        entries = []
    index = LibraryIndex(storage_url, settings)
    for entry in sorted(entries, key=lambda item: str(item["name"])):
        job_id = posixpath.basename(str(entry["name"]).rstrip("/"))
        if entry.get("type") != "directory" or job_id.startswith("."):  # .library is the index, not a job
            continue
        age = _job_age(fs, root, job_id, cutoff)
        report.jobs.append(age)
        if age.verdict == "delete" and not dry_run:
            fs.rm(posixpath.join(root, job_id), recursive=True)
            index.forget(job_id)
            report.deleted.append(job_id)
    report.cache_files_deleted = _purge_cache(settings.work_dir, cutoff, dry_run)
    return report
