"""Artifacts a person reads in the UI, and the manifest. Keys: lowercase letters, digits, dashes."""

from __future__ import annotations

import re
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from sora_extend.pipeline.assemble import write_manifest
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.records import FinalRecord, HandoffRecord, SegmentRecord
from sora_extend.pipeline.review import SeamRecord, seam_report, write_contact_sheet
from sora_extend.plan import ShotPlan
from tasks.secrets import storage_settings


def artifact_key(job: JobRef, kind: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{job.job_id}".lower())[:120].strip("-")


class Progress:
    """One progress artifact per run, updated in place after every step."""

    def __init__(self, job: JobRef, steps: int) -> None:
        self.steps, self.done = max(1, steps), 0
        self.id: UUID = create_progress_artifact(
            0.0, key=artifact_key(job, "progress"), description=f"Rendering {job.job_id}"
        )

    def step(self, description: str) -> None:
        self.done += 1
        update_progress_artifact(self.id, min(100.0, 100.0 * self.done / self.steps), description=description)


def shot_rows(plan: ShotPlan, segments: list[SegmentRecord], failed_at: int | None = None) -> list[dict[str, object]]:
    by_index = {record.index: record for record in segments}
    rows = []
    for shot in plan.shots:
        record = by_index.get(shot.index)
        state = "rendered" if record else ("failed" if shot.index == failed_at else "pending")
        if record is not None and record.resumed:
            state = "rendered (resumed)"
        rows.append(
            {
                "segment": shot.index,
                "prompt": shot.action if len(shot.action) <= 80 else shot.action[:79] + "…",
                "model": record.model if record else "",
                "request id": record.request_id if record else "",
                "seconds": shot.seconds,
                "cost (USD)": f"{record.cost_usd:.2f}" if record else "",
                "state": state,
            }
        )
    return rows


def publish_shot_table(
    job: JobRef, plan: ShotPlan, segments: list[SegmentRecord], failed_at: int | None = None
) -> None:
    create_table_artifact(
        shot_rows(plan, segments, failed_at),
        key=artifact_key(job, "shots"),
        description=f"Shots of {job.job_id}",
    )


def publish_seams(job: JobRef, seams: list[SeamRecord]) -> None:
    if seams:
        create_table_artifact(
            [seam.model_dump() for seam in seams],
            key=artifact_key(job, "seams"),
            description="Per join: hand-off similarity, colour / motion / audio jumps (also seams.json)",
        )


def summary_markdown(
    job: Job, plan: ShotPlan, segments: list[SegmentRecord], final: FinalRecord, cost: float, sheet_link: str
) -> str:
    lines = [
        f"# {plan.title}",
        "",
        f"**Video:** [{final.link}]({final.link})  ",
        f"**Length:** {final.duration:.2f} s, {final.width}x{final.height}, {final.frames} frames, "
        f"audio {'yes' if final.has_audio else 'no'}  ",
        f"**Merge:** {final.method}, {final.merge_s:.2f} s  ",
        f"**Cost:** ${cost:.2f} ({job.spec.provider}/{job.spec.id})  ",
        f"**Job folder:** `{job.store.url()}`  ",
        f"**Contact sheet** (first and last frame of every segment): [{sheet_link}]({sheet_link})",
        "",
        f"![contact sheet]({sheet_link})",
        "",
        "| # | seconds | request id | cost | prompt |",
        "|---|---|---|---|---|",
    ]
    for record in segments:
        prompt = record.prompt.replace("|", "/")
        lines.append(
            f"| {record.index} | {record.seconds} | `{record.request_id}` | ${record.cost_usd:.2f} | "
            f"{prompt[:160]}{'…' if len(prompt) > 160 else ''} |"
        )
    return "\n".join(lines)


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(
    job: JobRef,
    plan: ShotPlan,
    segments: list[SegmentRecord],
    handoffs: dict[int, HandoffRecord],
    final: FinalRecord | None,
    timings: dict[str, float],
    failed_at: int | None = None,
    error: str | None = None,
) -> tuple[str, float]:
    """Write manifest.json and the run's artifacts, and mark the job completed (or failed, with `error`).
    Returns the manifest's storage URL and everything billed for the job so far."""
    domain_job = Job(job, storage_settings())
    manifest = write_manifest(domain_job, plan, segments, handoffs, final, timings)
    domain_job.finish("failed" if error else "completed", error)
    publish_shot_table(job, plan, segments, failed_at)
    if final is not None:
        publish_seams(job, seam_report(domain_job, plan, segments, handoffs, final))
        sheet_link = write_contact_sheet(domain_job, segments)
        create_markdown_artifact(
            summary_markdown(domain_job, plan, segments, final, manifest.cost_usd, sheet_link),
            key=artifact_key(job, "summary"),
            description="Final video and shot list",
        )
    return domain_job.store.url("manifest.json"), manifest.cost_usd
