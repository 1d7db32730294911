"""Keeping a job's library entry current: written when a run starts and when its report is written. The
index is a convenience beside the job folder (`sora-extend reindex` rebuilds it from the folders), so a
storage error while updating it is logged and never fails a run that rendered and paid for its pieces."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sora_extend.library.entry import job_entry
from sora_extend.library.index import LibraryIndex

if TYPE_CHECKING:
    from sora_extend.pipeline.assemble import Manifest
    from sora_extend.pipeline.job import Job, JobState

logger = logging.getLogger(__name__)


def record_job(job: Job, state: JobState, manifest: Manifest | None = None, poster: str | None = None) -> None:
    """Write the job's entry as of `state` (and `manifest`, once the run's report exists)."""
    index = LibraryIndex(job.store.storage_url, job.settings)
    owner = job.request.owner
    try:
        previous = index.get(job.job_id)
        kept = set(previous.owners) if previous else set()
        if manifest is None and previous is not None:  # a new run of a job: its last figures stay until replaced
            entry = previous.model_copy(
                update={"status": state.status, "updated_at": state.updated_at, "finished_at": None, "error": None}
            )
            entry.owners = sorted(kept | ({owner} if owner else set()))
        else:
            request = job.request.model_dump(mode="json")
            owners = kept | ({owner} if owner else set())
            entry = job_entry(
                job.job_id,
                job.store.storage_url,
                request,
                state,
                manifest,
                mode=job.request.mode,
                poster=poster,
                owners=owners,
            )
        index.put(entry, owner)
    except OSError as exc:
        logger.warning(
            "the library index of %s was not updated (%s); `sora-extend reindex` rebuilds it", job.job_id, exc
        )
