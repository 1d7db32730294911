"""What a run leaves for people to read, finished or failed: manifest.json, job.json's status, and (from
whatever segments exist) the contact sheet, the drift figures, the library's poster and entry, with a final
video the seams, and review.html over all of it."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from sora_extend.library.record import record_job
from sora_extend.media.seams import join_windows
from sora_extend.pipeline.assemble import Manifest, records_of, write_manifest
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.poster import write_poster
from sora_extend.pipeline.records import FinalRecord, SegmentRecord
from sora_extend.pipeline.review import (
    DriftRecord,
    SeamRecord,
    drift_report,
    join_pairs,
    seam_report,
    segment_ends,
    write_contact_sheet,
)
from sora_extend.pipeline.review_page import write_review_page
from sora_extend.pipeline.steps import RunGraph
from sora_extend.plan import ShotPlan


class Report(BaseModel):
    manifest: Manifest
    seams: list[SeamRecord] = Field(default_factory=list)
    drift: list[DriftRecord] = Field(default_factory=list)
    contact_sheet_link: str | None = None
    review_link: str | None = Field(None, description="review.html on the media server, or its path locally.")


def write_report(
    job: Job,
    plan: ShotPlan | None,
    graph: RunGraph | None,
    records: Mapping[str, object],
    timings: dict[str, float],
    *,
    error: str | None = None,
    failed_step: str | None = None,
) -> Report:
    """Write the run's report and mark the job completed, or failed with `error` (every piece is kept)."""
    manifest = write_manifest(job, plan, records, timings, error=error, failed_step=failed_step)
    state = job.finish("failed" if error else "completed", error)
    report = Report(manifest=manifest)
    segments = records_of(records, SegmentRecord)
    ends = segment_ends(job, segments)
    if segments:
        report.contact_sheet_link = write_contact_sheet(job, ends)
        report.drift = drift_report(job, segments)
    poster = write_poster(job, ends, manifest.keyframes, completed=error is None)
    record_job(job, state, manifest, poster)
    finals = records_of(records, FinalRecord)
    final = finals[0] if finals and graph is not None else None
    windows = None
    if final is not None and graph is not None:
        video = job.cache.fetch(job.store, final.path, final.sha256)
        windows = join_windows(video, final.joins_at)
        report.seams = seam_report(job, graph.merge, records, video, windows, ends)
    pairs = join_pairs(windows, ends)
    report.review_link = write_review_page(job, manifest, graph, report.seams, report.drift, pairs)
    return report
