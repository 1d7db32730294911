"""What a run leaves for people to read, finished or failed: manifest.json, job.json's status, and
(from whatever segments exist) the contact sheet, the drift figures and, with a final video, the seams."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from sora_extend.pipeline.assemble import Manifest, records_of, write_manifest
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import FinalRecord, SegmentRecord
from sora_extend.pipeline.review import DriftRecord, SeamRecord, drift_report, seam_report, write_contact_sheet
from sora_extend.pipeline.steps import RunGraph
from sora_extend.plan import ShotPlan


class Report(BaseModel):
    manifest: Manifest
    seams: list[SeamRecord] = Field(default_factory=list)
    drift: list[DriftRecord] = Field(default_factory=list)
    contact_sheet_link: str | None = None


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
    job.finish("failed" if error else "completed", error)
    report = Report(manifest=manifest)
    segments = records_of(records, SegmentRecord)
    if segments:
        report.contact_sheet_link = write_contact_sheet(job, segments)
        report.drift = drift_report(job, segments)
    finals = records_of(records, FinalRecord)
    if finals and graph is not None:
        report.seams = seam_report(job, graph.merge, records, finals[0])
    return report
