"""review.html in the job folder, finished or failed: the video with its joins marked, the frames either side
of every join with a verdict, every piece with its cost and the command that renders it again, the drift
and the contact sheet. Written with the manifest, from what exists so far."""

from __future__ import annotations

from typing import Any

import numpy as np

from sora_extend import layout
from sora_extend.commands import api_command, run_command
from sora_extend.media.images import encode_jpeg, fit_to_size
from sora_extend.pipeline.assemble import Manifest
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import KeyframeRecord, PaidResult, SegmentRecord, SoundRecord
from sora_extend.pipeline.review import AUDIO_CLICK, DriftRecord, SeamRecord, judge
from sora_extend.pipeline.steps import RunGraph, keyframe_id, segment_id
from sora_extend.plan import ShotPlan
from sora_extend.storage.store import JobStore
from sora_extend.web.review_html import (
    Figure,
    JoinView,
    PieceState,
    PieceView,
    ReviewPage,
    TakeLine,
    render_review_page,
)

FramePair = tuple[np.ndarray, np.ndarray]
THUMB_WIDTH = 480  # join frames: sharp on a phone, small enough for a page of 60 joins


def review_link(store: JobStore) -> str | None:
    """Where a person opens the review page: on the media server, else as a file; None on remote storage
    without SORA_EXTEND_PUBLIC_URL (a presigned page could not load the pictures beside it)."""
    return store.public_link(layout.REVIEW_PAGE) or (store.path(layout.REVIEW_PAGE) if store.is_local else None)


def _write_frame(job: Job, name: str, rgb: np.ndarray) -> str:
    height, width = rgb.shape[:2]
    if width > THUMB_WIDTH:
        rgb = fit_to_size(rgb, THUMB_WIDTH, max(1, round(height * THUMB_WIDTH / width)))
    rel = layout.review_image(name)
    job.store.write_bytes(rel, encode_jpeg(rgb))
    return rel


def _lufs(value: float | None) -> str:
    return "silent" if value is None else f"{value:.1f} LUFS"


def _sound_figures(seam: SeamRecord, sound: SoundRecord | None) -> list[Figure]:
    """The join's sound: the step at the join, the loudness either side, and each clip's loudness as the
    model delivered it and what the merge did to it."""
    figures = []
    if seam.audio_step is not None:
        words = (
            "no click" if seam.audio_step <= 1.0 else "a click" if seam.audio_step >= AUDIO_CLICK else "a slight step"
        )
        figures.append(
            Figure(label="sample step at the join", value=f"{seam.audio_step:.2f}x the largest around it ({words})")
        )
    if seam.loudness_before_lufs is not None or seam.loudness_after_lufs is not None:
        around = f"{_lufs(seam.loudness_before_lufs)} → {_lufs(seam.loudness_after_lufs)}"
        figures.append(Figure(label="loudness either side (3 s)", value=around))
    clips = {clip.segment: clip for clip in sound.clips} if sound else {}
    before, after = clips.get(seam.boundary), clips.get(seam.boundary + 1)
    if before and after and sound and sound.target_lufs is not None:
        rendered = f"{_lufs(before.lufs_before)} → {_lufs(after.lufs_before)}"
        gains = f"{before.gain_db:+.1f} / {after.gain_db:+.1f} dB"
        value = f"{rendered}, brought to {sound.target_lufs:g} LUFS ({gains})"
        figures.append(Figure(label="clips as rendered", value=value))
    return figures


def _seam_figures(seam: SeamRecord, sound: SoundRecord | None = None) -> list[Figure]:
    figures = [
        Figure(label="at", value=f"{seam.at_s:.2f} s"),
        Figure(label="colour change", value=f"{seam.colour_delta:.2f} (Lab)"),
        Figure(label="motion jump", value=f"{seam.motion_jump:.2f}x the usual frame change"),
        Figure(label="audio step", value=f"{round(seam.audio_jump_db, 1) or 0.0:+.1f} dB"),  # no "-0.0"
        *_sound_figures(seam, sound),
    ]
    if seam.shared and seam.start_psnr is not None:
        similarity = f", SSIM {seam.start_ssim:.3f}" if seam.start_ssim is not None else ""
        figures.append(Figure(label=f"starts on the {seam.shared}", value=f"PSNR {seam.start_psnr:.1f} dB{similarity}"))
    if seam.end_psnr is not None:
        figures.append(Figure(label="ends on the keyframe", value=f"PSNR {seam.end_psnr:.1f} dB"))
    if seam.handoff_from_end:
        figures.append(Figure(label="hand-off frame", value=f"{seam.handoff_from_end} frame(s) before the end (guard)"))
    if seam.anchor_shift is not None:
        figures.append(Figure(label="colour re-anchoring", value=f"{seam.anchor_shift:.2f} Lab removed"))
    return figures


def _joins(
    job: Job,
    count: int,
    transitions: list[str],
    seams: list[SeamRecord],
    pairs: dict[int, FramePair],
    sound: SoundRecord | None = None,
) -> list[JoinView]:
    by_boundary = {seam.boundary: seam for seam in seams}
    joins = []
    for boundary in range(1, count):
        seam = by_boundary.get(boundary)
        pair = pairs.get(boundary)
        joins.append(
            JoinView(
                boundary=boundary,
                transition=seam.transition if seam else transitions[boundary - 1],
                at_s=seam.at_s if seam else None,
                verdict=judge(seam) if seam else None,
                figures=_seam_figures(seam, sound) if seam else [],
                before=_write_frame(job, f"join-{boundary:02d}-before.jpg", pair[0]) if pair else None,
                after=_write_frame(job, f"join-{boundary:02d}-after.jpg", pair[1]) if pair else None,
            )
        )
    return joins


def _state(step: str, record: PaidResult | None, failed_step: str | None) -> PieceState:
    if record is not None:
        return "resumed" if record.resumed else "rendered"
    return "failed" if step == failed_step else "pending"


def _piece(
    step: str,
    label: str,
    record: PaidResult | None,
    manifest: Manifest,
    planned: tuple[str, str],
    **extra: Any,
) -> PieceView:
    """A segment or keyframe as the page shows it: from its record once it exists, else from the plan
    (`planned`: its prompt and model)."""
    return PieceView(
        step=step,
        label=label,
        state=_state(step, record, manifest.failed_step),
        prompt=record.prompt if record else planned[0],
        model=record.model if record else planned[1],
        request_id=record.request_id if record else "",
        cost_usd=record.cost_usd if record else None,
        take=record.take if record else 1,
        **extra,
    )


def _gate(job: Job, manifest: Manifest, step: str) -> dict[str, Any]:
    """What the quality gate did with a piece, for its card: every take, what the judge said, and (segments)
    how to put another take in the video without rendering anything."""
    record = next((piece for piece in manifest.takes if piece.piece == step), None)
    if record is None:
        return {}
    storage = job.store.storage_url
    lines = []
    for take in record.takes:
        pick = [f"{record.index}={take.take}"] if record.kind == "segment" else None
        words = "; ".join(flaw.words for flaw in take.verdict.flaws) or "clean"
        lines.append(
            TakeLine(
                take=take.take,
                in_use=take.take == record.used,
                passed=take.verdict.passed,
                words=words,
                judge=take.verdict.judge,
                cost_usd=take.cost_usd + take.verdict.cost_usd,
                file=take.path,
                command=run_command(job.request, storage, use_takes=pick) if pick else "",
                api_call=api_command(job.request, storage, [], f"{job.job_id}-{step}-use-take{take.take}", pick)
                if pick
                else "",
            )
        )
    return {"gate_note": record.note, "takes": lines}


def _segments(job: Job, plan: ShotPlan, manifest: Manifest, drift: list[DriftRecord]) -> list[PieceView]:
    records = {record.index: record for record in manifest.segments}
    figures = {figure.segment: figure for figure in drift}
    storage = job.store.storage_url
    pieces = []
    for shot in plan.shots:
        record: SegmentRecord | None = records.get(shot.index)
        take = record.take if record else 1
        key = f"{job.job_id}-rerender-{shot.index:02d}-take{take + 1}"
        pieces.append(
            _piece(
                segment_id(shot.index),
                f"Segment {shot.index}",
                record,
                manifest,
                (shot.prompt, job.request.model or ""),
                seconds=record.seconds if record else shot.seconds,
                drift=figures.get(shot.index),
                command=run_command(job.request, storage, [shot.index]),
                api_call=api_command(job.request, storage, [shot.index], key),
                **_gate(job, manifest, segment_id(shot.index)),
            )
        )
    return pieces


def _keyframes(job: Job, plan: ShotPlan, manifest: Manifest) -> list[PieceView]:
    records: dict[int, KeyframeRecord] = {record.index: record for record in manifest.keyframes}
    pieces = []
    for still in plan.stills:
        record = records.get(still.index)
        pieces.append(
            _piece(
                keyframe_id(still.index),
                f"Keyframe {still.index}",
                record,
                manifest,
                (still.prompt, ""),
                image=record.path if record else None,
                **_gate(job, manifest, keyframe_id(still.index)),
            )
        )
    return pieces


def _facts(job: Job, plan: ShotPlan | None, manifest: Manifest) -> list[Figure]:
    request, final = job.request, manifest.final
    facts = []
    if final is not None:
        facts.append(Figure(label="length", value=f"{final.duration:.2f} s, {final.width}x{final.height}"))
    shots = len(plan.shots) if plan else request.segments
    facts += [
        Figure(label="segments", value=f"{shots} x {request.seconds} s"),
        Figure(label="model", value=f"{request.provider}/{request.model}"),
        Figure(label="continuity", value=manifest.continuity or request.continuity),
        Figure(label="cost", value=f"${manifest.cost_usd:.2f}"),
    ]
    if manifest.takes:
        retaken = sum(len(piece.takes) > 1 for piece in manifest.takes)
        flawed = sum(not piece.in_use.verdict.passed for piece in manifest.takes)
        words = f"{request.quality_gate}, {retaken} piece(s) retaken, {flawed} kept flawed"
        facts.append(Figure(label="quality gate", value=f"{words}, ${manifest.gate_usd:.2f} of the cost"))
    if final is not None:
        facts.append(Figure(label="merge", value=final.method))
    facts += _soundtrack_facts(manifest)
    facts.append(Figure(label="job", value=job.job_id))
    return facts


def _soundtrack_facts(manifest: Manifest) -> list[Figure]:
    """What plays: the clips' sound or a score, and at what loudness."""
    sound = manifest.final.sound if manifest.final else None
    if sound is None:
        return []
    level = "as the clips came" if sound.target_lufs is None else f"{sound.target_lufs:g} LUFS target"
    measured = f", measured {sound.lufs:.1f} LUFS" if sound.lufs is not None else ""
    facts = [Figure(label="soundtrack", value=f"{sound.soundtrack}, {level}{measured}")]
    score = manifest.score
    if score is not None and sound.soundtrack != "clips":
        facts.append(Figure(label="score", value=f"{score.model}, {score.duration:.1f} s, ${score.cost_usd:.2f}"))
    return facts


def write_review_page(
    job: Job,
    manifest: Manifest,
    graph: RunGraph | None,
    seams: list[SeamRecord],
    drift: list[DriftRecord],
    pairs: dict[int, FramePair],
) -> str | None:
    """Write review.html (and the join frames beside it) from what exists; returns where to open it.
    `pairs`: per join, the last frame before it and the first new frame after it."""
    plan = manifest.plan
    shots = len(plan.shots) if plan else 0
    planned = [job.request.transition_into(k) for k in range(2, shots + 1)]
    transitions = list(graph.merge.transitions) if graph else planned
    files = [
        Figure(label=name, value=name)
        for name in (layout.MANIFEST, layout.PLAN, layout.SEAMS, layout.DRIFT, layout.FINAL_RECORD)
        if name == layout.MANIFEST or job.store.exists(name)
    ]
    page = ReviewPage(
        title=plan.title if plan else job.request.prompt,
        language=plan.language if plan else "und",
        status=manifest.status,
        error=manifest.error,
        failed_step=manifest.failed_step,
        facts=_facts(job, plan, manifest),
        video=layout.FINAL if manifest.final else None,
        duration=manifest.final.duration if manifest.final else 0.0,
        joins=_joins(job, shots, transitions, seams, pairs, manifest.final.sound if manifest.final else None),
        segments=_segments(job, plan, manifest, drift) if plan else [],
        keyframes=_keyframes(job, plan, manifest) if plan else [],
        contact_sheet=layout.CONTACT_SHEET if manifest.segments else None,
        files=files,
    )
    job.store.write_bytes(layout.REVIEW_PAGE, render_review_page(page).encode("utf-8"))
    return review_link(job.store)
