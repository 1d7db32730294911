"""Judging a stored piece of a job: what it was asked to be (read from the records it was made from), the
pixel checks, the optional chat model judge, and the verdict, stored under its content key so that a rerun
reads it instead of judging again."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import nullcontext

import numpy as np

from sora_extend import layout
from sora_extend.catalogue import load_catalogue
from sora_extend.errors import BudgetExceededError
from sora_extend.events import emit
from sora_extend.ledger import LedgerEntry
from sora_extend.media.frames import last_frame
from sora_extend.media.images import decode_png
from sora_extend.openai_chat import chat_client
from sora_extend.pipeline.budget import check_submission
from sora_extend.pipeline.clip_review import review_clip
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.keys import verdict_key
from sora_extend.pipeline.records import ImageRecord, KeyframeRecord, PaidResult, SegmentRecord
from sora_extend.pipeline.steps import KeyframeStep, SegmentStep
from sora_extend.pipeline.stored import read_image
from sora_extend.quality.flaws import Asked, Flaw, clip_flaws, still_flaws
from sora_extend.quality.scan import scan_clip
from sora_extend.quality.verdict import ModelAnswer, Verdict, model_flaws, score_of
from sora_extend.quality.vlm import FRAMES, JudgeError, ask_judge, estimate_usd

logger = logging.getLogger(__name__)

Piece = KeyframeStep | SegmentStep
Stills = list[tuple[str, np.ndarray]]


def _image(job: Job, inputs: Mapping[str, object], step_id: str | None) -> np.ndarray | None:
    if not step_id:
        return None
    record = inputs[step_id]
    assert isinstance(record, ImageRecord)
    return decode_png(read_image(job, record))


def _references(job: Job, step: Piece) -> Stills:
    return [(f"subject reference {n}", decode_png(read_image(job, ref))) for n, ref in enumerate(step.references, 1)]


def judge_piece(job: Job, step: Piece, inputs: Mapping[str, object], record: PaidResult) -> Verdict:
    """The verdict on one take of a segment or keyframe (stored, or judged now and stored)."""
    key = verdict_key(job.request, step, inputs, record)
    stored = job.store.read_model(layout.verdict(key), Verdict)
    if stored is not None:  # the same file as another take (a model without a seed can repeat itself)
        return stored if stored.take == record.take else stored.model_copy(update={"take": record.take})
    emit(step.id, "judging", detail=f"take {record.take}")
    started = time.process_time()
    if isinstance(step, SegmentStep):
        assert isinstance(record, SegmentRecord)
        flaws, stills, frames = _clip(job, step, inputs, record)
    else:
        assert isinstance(record, KeyframeRecord)
        flaws, stills, frames = _still(job, step, inputs, record)
    cpu_s = round(time.process_time() - started, 3)
    answer, cost, judge = _ask_model(job, key, step, record, stills, frames)
    flaws += model_flaws(answer) if answer else []
    verdict = Verdict(
        key=key,
        piece=step.id,
        take=record.take,
        sha256=record.sha256,
        judge=judge,
        passed=not flaws,
        score=score_of(flaws, answer),
        flaws=flaws,
        model_answer=answer,
        cost_usd=cost,
        cpu_s=cpu_s,
    )
    job.store.write_json(layout.verdict(key), verdict)
    logger.info(
        "%s take %d: %s (score %.2f)", step.id, record.take, "; ".join(f.words for f in flaws) or "clean", verdict.score
    )
    return verdict


def _clip(
    job: Job, step: SegmentStep, inputs: Mapping[str, object], record: SegmentRecord
) -> tuple[list[Flaw], Stills, list[np.ndarray]]:
    width, height = job.request.size
    source_last = None
    if step.source:
        source = inputs[step.source]
        assert isinstance(source, SegmentRecord)
        source_last = last_frame(job.cache.fetch(job.store, source.path, source.sha256))
    asked = Asked(
        seconds=step.shot.seconds,
        width=width,
        height=height,
        audio=record.audio and job.spec.sends(record.mode, "audio"),  # the endpoint was asked for sound
        first=_image(job, inputs, step.first),
        last=_image(job, inputs, step.last),
        source_last=source_last,
    )
    scan = scan_clip(job.cache.fetch(job.store, record.path, record.sha256), audio=record.audio)
    review_clip(job, record, scan)  # the same pass gives the review its material
    stills = _references(job, step)
    for label, image in (("the image the clip starts on", asked.first), ("the keyframe it ends on", asked.last)):
        if image is not None:
            stills.append((label, image))
    if source_last is not None:
        stills.append(("the last frame of the clip it continues", source_last))
    return clip_flaws(scan, asked), stills, scan.pictures(FRAMES)


def _still(
    job: Job, step: KeyframeStep, inputs: Mapping[str, object], record: KeyframeRecord
) -> tuple[list[Flaw], Stills, list[np.ndarray]]:
    still = decode_png(read_image(job, record))
    base = _image(job, inputs, step.base)
    references = _references(job, step)
    flaws = still_flaws(still, base, [image for _, image in references])
    stills = references + ([("keyframe 0, which this still edits", base)] if base is not None else [])
    return flaws, stills, [still]


def _ask_model(
    job: Job, key: str, step: Piece, record: PaidResult, stills: Stills, frames: list[np.ndarray]
) -> tuple[ModelAnswer | None, float, str]:
    """The chat model judge's answer (judge vlm), paid for like any piece: an intent in the ledger before the
    call, its cost after. Skipped, and said so, when it would pass the budget or the model gives no usable
    answer (the pixel checks still stand); a transient error fails the step, to be retried."""
    request = job.request
    if request.judge != "vlm" or request.judge_model is None:
        return None, 0.0, "pixels"
    spec = load_catalogue().judge(request.judge_model)
    label = f"judging {step.id} take {record.take}"
    entry = LedgerEntry(
        key=f"judge-{key}",
        kind="judge",
        segment=step.index,
        take=record.take,
        provider="openai",
        model=spec.id,
        endpoint="chat/completions",
        state="submitting",
        cost_usd=estimate_usd(spec, len(stills)),
        price_source=spec.price_source,
    )
    lock = job.lock(f"budget-{job.job_id}") if request.budget_usd is not None else nullcontext()
    try:
        with lock:
            check_submission(request, job.ledger.committed_usd(), entry.cost_usd, label)
            job.ledger.put(entry)
    except BudgetExceededError as exc:
        logger.warning("%s: chat model judge skipped: %s", step.id, exc)
        return None, 0.0, f"pixels (the {spec.id} judge was skipped: it would pass the budget)"
    settings = job.settings
    api_key = settings.judge_api_key or settings.openai_api_key
    assert api_key is not None, "missing_keys() refuses judge vlm without a key before the run starts"
    client = chat_client(api_key, settings.judge_base_url or settings.openai_base_url, settings.http_timeout_s)
    prompt = step.shot.prompt if isinstance(step, SegmentStep) else step.still.prompt
    try:
        answer, cost = ask_judge(client, spec, prompt, stills, frames)
    except Exception as exc:
        entry.state, entry.error, entry.billed = "failed", str(exc)[:300], False
        job.ledger.put(entry)
        if isinstance(exc, JudgeError):
            logger.warning("%s: %s; the pixel checks stand alone", step.id, exc)
            return None, 0.0, f"pixels (the {spec.id} judge gave no usable answer)"
        raise
    finally:
        client.close()
    entry.state, entry.cost_usd, entry.billed = "completed", cost, True
    job.ledger.put(entry)
    return answer, cost, f"pixels + {spec.id}"
