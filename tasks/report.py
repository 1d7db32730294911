"""Artifacts a person reads in the UI, from the run's report. Keys: lowercase letters, digits, dashes."""

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

from sora_extend import layout
from sora_extend.library.query import card_link
from sora_extend.pipeline.assemble import Manifest
from sora_extend.pipeline.job import Job, JobRef
from sora_extend.pipeline.report import Report, write_report
from sora_extend.pipeline.review import judge
from sora_extend.pipeline.steps import RunGraph, WorkStep
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

    def step(self, step: WorkStep, record: object | None, error: BaseException | None) -> None:
        self.done += 1
        what = f"{step.id} failed" if error else f"{step.id} done"
        update_progress_artifact(self.id, min(100.0, 100.0 * self.done / self.steps), description=what)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def piece_rows(plan: ShotPlan, manifest: Manifest) -> list[dict[str, object]]:
    """One row per keyframe, per segment and for the score: what it is, who rendered it, what it cost, its state."""
    rows: list[dict[str, object]] = []
    gate = {piece.piece: piece for piece in manifest.takes}
    keyframes = {record.index: record for record in manifest.keyframes}
    segments = {record.index: record for record in manifest.segments}
    failed = manifest.failed_step or ""
    pieces = [(f"keyframe-{still.index:02d}", still.index, still.description, 0) for still in plan.stills]
    pieces += [(f"segment-{shot.index:02d}", shot.index, shot.action, shot.seconds) for shot in plan.shots]
    for step_id, index, text, seconds in pieces:
        record = (keyframes if step_id.startswith("keyframe") else segments).get(index)
        state = "failed" if step_id == failed else ("pending" if record is None else "rendered")
        if record is not None and record.resumed:
            state = "rendered (resumed)"
        rows.append(
            {
                "piece": step_id,
                "what": _short(text),
                "model": record.model if record else "",
                "request id": record.request_id if record else "",
                "seconds": seconds or "",
                "cost (USD)": f"{record.cost_usd:.2f}" if record else "",
                "state": state,
                "quality gate": f"take {gate[step_id].used}: {gate[step_id].note}" if step_id in gate else "",
            }
        )
    if manifest.request.get("soundtrack", "clips") != "clips":
        rows.append(_score_row(manifest))
    return rows


def _score_row(manifest: Manifest) -> dict[str, object]:
    """The music for the whole video, as a row like the clips'."""
    score = manifest.score
    state = "failed" if manifest.failed_step == "score" else "pending" if score is None else "rendered"
    if score is not None and score.resumed:
        state = "rendered (resumed)"
    return {
        "piece": "score",
        "what": _short(score.prompt if score else "music for the whole video"),
        "model": score.model if score else manifest.request.get("soundtrack_model") or "",
        "request id": score.request_id if score else "",
        "seconds": round(score.duration) if score else "",
        "cost (USD)": f"{score.cost_usd:.2f}" if score else "",
        "state": state,
    }


def _links(job: Job, report: Report) -> list[str]:
    """The video, the review page and the contact sheet as links a browser opens from the Prefect UI: through
    the media server (SORA_EXTEND_PUBLIC_URL), else presigned; local files without a server get a hint."""
    manifest, ttl = report.manifest, job.settings.link_ttl_s
    video = job.store.web_link(layout.FINAL, ttl) if manifest.final else None
    sheet = job.store.web_link(layout.CONTACT_SHEET, ttl) if manifest.segments else None
    review = job.store.public_link(layout.REVIEW_PAGE)
    card = card_link(job.store.public_url, job.job_id)
    lines = []
    if video:
        lines.append(f"**Video:** [watch final.mp4]({video})  ")
    if review:
        lines.append(f"**Review page:** [every join before/after, drift, cost, re-render commands]({review})  ")
    if card:
        lines.append(f"**Library:** [this video among all the others, with 'make again']({card})  ")
    if not (video or review or sheet):
        names = [layout.FINAL] if manifest.final else []
        names += [layout.REVIEW_PAGE] + ([layout.CONTACT_SHEET] if manifest.segments else [])
        lines.append(
            f"**Files:** {', '.join(f'`{name}`' for name in names)} in `{job.store.url()}`. No links: a browser "
            f"cannot open local files from here. Run `sora-extend serve --storage {job.store.storage_url}` and set "
            "`SORA_EXTEND_PUBLIC_URL=http://127.0.0.1:8765` where the flow runs to see them in this page.  "
        )
    if sheet:
        lines += ["", f"![contact sheet: first and last frame of every segment]({sheet})", ""]
    return lines


def _gate_lines(job: Job, manifest: Manifest) -> list[str]:
    """The quality gate at a glance: what it retook, what it had to keep flawed, and what that cost."""
    if not manifest.takes:
        return []
    request = job.request
    retaken = [piece for piece in manifest.takes if len(piece.takes) > 1]
    flawed = [piece for piece in manifest.takes if not piece.in_use.verdict.passed]
    judge = f"{request.judge}, {request.judge_model}" if request.judge_model else request.judge
    lines = [
        f"**Quality gate:** {request.quality_gate} (judge {judge}): {len(retaken)} piece(s) retaken, "
        f"{len(flawed)} kept flawed; extra takes and verdicts ${manifest.gate_usd:.2f} of the cost  ",
    ]
    noted = {piece.piece: piece for piece in retaken + flawed}.values()
    lines += [f"- `{piece.piece}`: take {piece.used} of {len(piece.takes)}: {piece.note}  " for piece in noted]
    return lines


def summary_markdown(job: Job, plan: ShotPlan, report: Report) -> str:
    """The run at a glance: links to the video and the review page, the contact sheet, every segment."""
    manifest, final = report.manifest, report.manifest.final
    lines = [f"# {plan.title}", ""]
    if manifest.error:
        lines += [f"**Failed** at `{manifest.failed_step or 'the run'}`: {manifest.error}  ", ""]
    lines += _links(job, report)
    if final is not None:
        lines += [
            f"**Length:** {final.duration:.2f} s, {final.width}x{final.height}, {final.frames} frames, "
            f"audio {'yes' if final.has_audio else 'no'}  ",
            f"**Merge:** {final.method}, {final.merge_s:.2f} s  ",
        ]
    lines += [
        f"**Continuity:** {job.request.mode} ({job.request.mode_reason})  ",
        f"**Cost:** ${manifest.cost_usd:.2f} ({job.spec.provider}/{job.spec.id})  ",
        *_gate_lines(job, manifest),
        f"**Job folder:** `{job.store.url()}`",
        "",
        "| # | seconds | request id | cost | drift (colour / structure) | prompt |",
        "|---|---|---|---|---|---|",
    ]
    drift = {figure.segment: figure for figure in report.drift}
    for record in manifest.segments:
        prompt = record.prompt.replace("|", "/")
        figure = drift.get(record.index)
        moved = f"{figure.colour:.2f} / {figure.structure:.3f}" if figure else ""
        lines.append(
            f"| {record.index} | {record.seconds} | `{record.request_id}` | ${record.cost_usd:.2f} | {moved} | "
            f"{prompt[:160]}{'…' if len(prompt) > 160 else ''} |"
        )
    return "\n".join(lines)


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(
    job: JobRef,
    plan: ShotPlan | None,
    graph: RunGraph | None,
    records: dict[str, object],
    timings: dict[str, float],
    error: str | None = None,
    failed_step: str | None = None,
) -> Manifest:
    """Write the report (manifest, seams, drift, contact sheet, review page), mark the job completed or
    failed, and publish the artifacts. Returns the manifest."""
    domain_job = Job(job, storage_settings())
    report = write_report(domain_job, plan, graph, records, timings, error=error, failed_step=failed_step)
    if plan is not None:
        create_table_artifact(
            piece_rows(plan, report.manifest), key=artifact_key(job, "shots"), description=f"Pieces of {job.job_id}"
        )
    if report.seams:
        create_table_artifact(
            [{"verdict": judge(seam).words, **seam.model_dump()} for seam in report.seams],
            key=artifact_key(job, "seams"),
            description=f"Per join: shared still, colour / motion / audio jumps (also {layout.SEAMS})",
        )
    if plan is not None:  # a failed run too: what exists so far, and where to look at it
        create_markdown_artifact(
            summary_markdown(domain_job, plan, report),
            key=artifact_key(job, "summary"),
            description="Video, review page, contact sheet and shot list",
        )
    return report.manifest
