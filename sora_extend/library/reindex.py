"""`sora-extend reindex`: the library's index rebuilt from the job folders themselves (their job.json,
manifest.json and poster), for folders written before the index existed, copied in from elsewhere, or
whose entry was lost. The one place that opens every job folder."""

from __future__ import annotations

import posixpath

from pydantic import BaseModel, Field, ValidationError

from sora_extend import layout
from sora_extend.library.entry import LibraryEntry, job_entry
from sora_extend.library.index import LibraryIndex
from sora_extend.pipeline.assemble import Manifest
from sora_extend.pipeline.job import JobState
from sora_extend.settings import Settings, get_settings
from sora_extend.storage.store import JobStore, open_filesystem


class ReindexReport(BaseModel):
    storage: str
    jobs: int = 0
    added: list[str] = Field(default_factory=list, description="Folders that had no entry before.")
    dropped: list[str] = Field(default_factory=list, description="Entries whose folder is gone.")
    skipped: list[str] = Field(default_factory=list, description="Folders without a readable job.json.")

    def lines(self) -> list[str]:
        rows = [f"added   {job_id}" for job_id in self.added] + [f"dropped {job_id}" for job_id in self.dropped]
        rows += [f"skipped {job_id} (no readable {layout.JOB_STATE}: not a job folder)" for job_id in self.skipped]
        rows.append(f"indexed {self.jobs} job(s) in {self.storage}")
        return rows


def folder_entry(store: JobStore, previous: LibraryEntry | None) -> LibraryEntry | None:
    """A job folder's entry from its own files, or None when it holds no job.json."""
    try:
        state = store.read_model(layout.JOB_STATE, JobState)
    except ValidationError:
        return None
    if state is None:
        return None
    try:
        manifest = store.read_model(layout.MANIFEST, Manifest)
    except ValidationError:  # written by another version: the job.json still says what the video is
        manifest = None
    # A running job has no manifest yet: its job.json keeps the fields that define the video.
    request = manifest.request if manifest else {**state.identity}
    if "prompt" not in request:
        return None
    owners = set(previous.owners) if previous else set()
    if request.get("owner"):
        owners.add(str(request["owner"]))
    mode = manifest.continuity.split(" ")[0] if manifest and manifest.continuity else str(request.get("continuity", ""))
    poster = layout.POSTER if store.exists(layout.POSTER) else None
    return job_entry(store.job_id, store.storage_url, request, state, manifest, mode=mode, poster=poster, owners=owners)


def reindex(storage_url: str, settings: Settings | None = None) -> ReindexReport:
    """Rebuild the index of `storage_url` from its job folders (entries are rewritten, owners kept)."""
    settings = settings or get_settings()
    index = LibraryIndex(storage_url, settings)
    absorbed = index.notice_names()  # notices written from here on stay, and are applied over the rebuild
    before = index.entries()
    fs, root = open_filesystem(storage_url, settings)
    try:
        listed = fs.ls(root, detail=True)
    except FileNotFoundError:
        listed = []
    report = ReindexReport(storage=storage_url)
    entries: dict[str, LibraryEntry] = {}
    for item in sorted(listed, key=lambda found: str(found["name"])):
        job_id = posixpath.basename(str(item["name"]).rstrip("/"))
        if item.get("type") != "directory" or job_id.startswith("."):
            continue
        entry = folder_entry(JobStore(storage_url, job_id, settings), before.get(job_id))
        if entry is None:
            report.skipped.append(job_id)
            continue
        index.store.write_json(layout.library_entry(job_id), entry)
        entries[job_id] = entry
        if job_id not in before:
            report.added.append(job_id)
    report.dropped = sorted(set(before) - set(entries))
    index.store.delete_files([layout.library_entry(job_id) for job_id in report.dropped])
    index.replace_all(entries, absorbed)
    report.jobs = len(entries)
    return report
