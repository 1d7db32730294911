"""Render one segment, paying for it at most once.

Order of operations, each step durable before the next starts:
  1. the segment is already in storage under the same content key -> return it (no provider call);
  2. take the per-key lock (a concurrent run of the same job waits here, then finds step 1 true);
  3. the ledger holds a request id for the key -> resume it by id; otherwise check the budget, write
     a "submitting" entry, submit, and record the request id the moment it exists;
  4. poll until done; a terminal failure is recorded (only that allows a new submission later);
  5. download, verify it decodes to its end, re-fetch if truncated or expired;
  6. store the file and its record, then mark the ledger entry completed.
A crash anywhere leaves the job resumable: before step 3 nothing was paid, after it the id is known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from sora_extend.catalogue import ModelSpec
from sora_extend.errors import MediaError, ResultExpiredError, TerminalProviderError, TransientProviderError
from sora_extend.hashing import content_key, sha256_bytes, sha256_file
from sora_extend.ledger import LedgerEntry
from sora_extend.media.frames import last_frames
from sora_extend.media.probe import MediaInfo, probe
from sora_extend.pipeline.budget import check_submission
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import HandoffRecord, SegmentRecord
from sora_extend.plan import Shot
from sora_extend.providers.base import GenerationRequest, Outcome, Submission, VideoProvider
from sora_extend.request import ExtendRequest

logger = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3


def segment_rel(index: int, suffix: str = "mp4") -> str:
    return f"segments/{index:02d}.{suffix}"


def segment_seed(base: int, index: int, take: int) -> int:
    """Different per shot and per take, stable across runs."""
    return (base + 1009 * (index - 1) + 7919 * (take - 1)) % (2**31)


def uses_native_extension(request: ExtendRequest, shot: Shot, previous: SegmentRecord | None) -> bool:
    """Continue with the provider's own extend call when the model has one and made the previous clip."""
    spec = request.spec
    return (
        spec.native_extend
        and shot.continues_previous
        and previous is not None
        and previous.provider == spec.provider
        and previous.model == spec.id
    )


def segment_key(
    request: ExtendRequest,
    shot: Shot,
    first_frame_sha256: str | None,
    take: int,
    previous: SegmentRecord | None = None,
) -> str:
    """The content key of a segment: exactly what determines the provider's output, and nothing else."""
    spec = request.spec
    extends = previous.sha256 if previous is not None and uses_native_extension(request, shot, previous) else None
    width, height = request.size
    return content_key(
        "segment",
        model=spec.id,
        wire_model=spec.wire_model,
        prompt=shot.prompt,
        seconds=shot.seconds,
        aspect=request.aspect,
        resolution=request.resolution,
        size=[width, height],
        seed=segment_seed(request.effective_seed, shot.index, take) if spec.seed_field else None,
        audio=request.audio and spec.supports_audio,
        first_frame=None if extends else first_frame_sha256,
        extends=extends,
        take=take,
    )


def build_request(
    job: Job, shot: Shot, handoff_png: bytes | None, take: int, previous: SegmentRecord | None = None
) -> GenerationRequest:
    request, spec = job.request, job.spec
    width, height = request.size
    extend = uses_native_extension(request, shot, previous)
    if extend:
        handoff_png = None
    first_sha = sha256_bytes(handoff_png) if handoff_png is not None else None
    return GenerationRequest(
        segment=shot.index,
        content_key=segment_key(request, shot, first_sha, take, previous),
        model=spec.id,
        prompt=shot.prompt,
        seconds=shot.seconds,
        aspect=request.aspect,
        resolution=request.resolution or spec.default_resolution,
        width=width,
        height=height,
        fps=spec.fps,
        seed=segment_seed(request.effective_seed, shot.index, take),
        audio=request.audio and spec.supports_audio,
        story_seed=request.effective_seed,
        first_frame_png=handoff_png,
        extend_request_id=previous.request_id if extend and previous is not None else None,
    )


def read_handoff(job: Job, handoff: HandoffRecord) -> bytes:
    data = job.store.read_bytes(handoff.path)
    if sha256_bytes(data) != handoff.sha256:
        raise MediaError(f"{job.store.url(handoff.path)} changed since it was extracted; rerun to re-extract it")
    return data


def finished_segment(job: Job, index: int, key: str) -> SegmentRecord | None:
    """The stored record for this segment if it was rendered from exactly this content key."""
    record = job.store.read_model(segment_rel(index, "json"), SegmentRecord)
    if record is None or record.key != key:
        return None
    if job.store.size(record.path) != record.bytes:
        return None
    return record


def verify_download(path: Path, request: GenerationRequest, spec: ModelSpec) -> MediaInfo:
    """The file decodes to its own declared end; raise MediaError (re-fetchable) if not."""
    if not path.exists() or path.stat().st_size == 0:
        raise MediaError("the download is empty")
    info = probe(path)
    if info.video is None:
        raise MediaError("the download has no video stream")
    declared = info.video.duration or info.duration
    tail = last_frames(path, 1)[-1]
    frame_s = 1.0 / (info.video.fps or spec.fps)
    if tail.time + frame_s < declared - max(0.25, 3 * frame_s):
        raise MediaError(
            f"the download is truncated: it declares {declared:.2f} s but decodes only to {tail.time + frame_s:.2f} s"
        )
    # A wrong duration or size is the model's answer, not a broken download: fetching it again cannot
    # change it, so it is reported and recorded; the hand-off fit and the merge cope with it.
    if abs(declared - request.seconds) > max(0.5, 0.1 * request.seconds):
        logger.warning(
            "segment %d: %s returned %.2f s for a %d s request", request.segment, spec.id, declared, request.seconds
        )
    if (info.video.width, info.video.height) != (request.width, request.height):
        logger.warning(
            "segment %d: %s returned %dx%d for a %dx%d request",
            request.segment,
            spec.id,
            info.video.width,
            info.video.height,
            request.width,
            request.height,
        )
    return info


def _archive_previous_take(job: Job, index: int) -> None:
    """Keep an earlier take of this segment (nothing is lost on re-render)."""
    old = job.store.read_model(segment_rel(index, "json"), SegmentRecord)
    if old is None or not job.store.exists(old.path):
        return
    stem = f"segments/history/{index:02d}-take{old.take}-{old.sha256[:12]}"
    job.store.move(old.path, f"{stem}.mp4")
    job.store.write_json(f"{stem}.json", old.model_copy(update={"path": f"{stem}.mp4"}))


def _submit(job: Job, provider: VideoProvider, request: GenerationRequest, entry: LedgerEntry) -> Submission:
    check_submission(job.request, job.ledger.spent_usd(), entry.cost_usd, request.segment)
    job.ledger.put(entry)  # "submitting": the intent is durable before any money can move
    try:
        submission = provider.submit(request)
    except (TransientProviderError, TerminalProviderError) as exc:
        if exc.status_code is not None:  # the provider answered and did not accept it: nothing to pay
            entry.state, entry.error = "failed", exc.reason
            job.ledger.put(entry)
        raise exc.for_segment(request.segment) from None
    entry.state, entry.request_id, entry.billed = "submitted", submission.request_id, provider.is_paid
    job.ledger.put(entry)
    logger.info(
        "segment %d: submitted to %s (%s), request id %s",
        request.segment,
        submission.endpoint,
        request.mode,
        submission.request_id,
    )
    return submission


def _orphan_message(entry: LedgerEntry) -> str:
    return (
        f"a submission to {entry.endpoint} started at {entry.updated_at:%Y-%m-%d %H:%M:%S} UTC but its request id "
        "was never recorded (the process stopped mid-submit), so it may or may not have been accepted and "
        "billed. Check the provider's dashboard; to submit again anyway set SORA_EXTEND_ORPHAN_POLICY=resubmit."
    )


def _submission_for(
    job: Job, provider: VideoProvider, request: GenerationRequest, take: int
) -> tuple[Submission, LedgerEntry, bool]:
    """The request to wait for: a recorded one (resumed) or a new submission."""
    entry = job.ledger.get(request.content_key)
    if entry is not None and entry.request_id and entry.state in {"submitted", "completed"}:
        logger.info(
            "segment %d: resuming request %s (submitted %s)",
            request.segment,
            entry.request_id,
            f"{entry.created_at:%Y-%m-%d %H:%M:%S} UTC",
        )
        submission = Submission(
            provider=entry.provider,
            model=entry.model,
            endpoint=entry.endpoint,
            request_id=entry.request_id,
            submitted_at=entry.created_at,
        )
        return submission, entry, True
    if entry is not None and entry.state == "submitting":
        if provider.is_paid and job.settings.orphan_policy == "fail":
            raise TerminalProviderError(
                _orphan_message(entry), provider=provider.name, model=job.spec.id, segment=request.segment
            )
        logger.warning("segment %d: %s; submitting again", request.segment, _orphan_message(entry))
    cost = job.spec.cost(request.seconds, request.resolution, request.audio)
    if entry is None:
        entry = LedgerEntry(
            key=request.content_key,
            segment=request.segment,
            take=take,
            provider=provider.name,
            model=job.spec.id,
            endpoint=provider.endpoint_for(request),
            state="submitting",
            cost_usd=cost,
        )
    else:  # an earlier request for this key failed terminally (or was orphaned): keep it in history
        job.ledger.retire(entry)
        entry.cost_usd, entry.endpoint = cost, provider.endpoint_for(request)
    return _submit(job, provider, request, entry), entry, False


def _wait(job: Job, provider: VideoProvider, submission: Submission, entry: LedgerEntry, segment: int) -> Outcome:
    def on_state(state: str, detail: str) -> None:
        logger.info("segment %d: %s %s%s", segment, submission.request_id, state, f" ({detail})" if detail else "")

    try:
        return provider.wait(submission, on_state, job.settings.poll_timeout_s)
    except (TerminalProviderError, TransientProviderError) as exc:
        if exc.request_failed:
            # The provider finished this request unsuccessfully: record it, so a later attempt may
            # submit anew. Server-side failures (5xx) are not billed; a rejected input may be.
            # Any other error (auth, polling, timeouts) leaves the request resumable as it was.
            entry.state, entry.error = "failed", exc.reason
            entry.billed = provider.is_paid and (exc.status_code is None or exc.status_code < 500)
            job.ledger.put(entry)
            logger.warning("segment %d: request %s failed: %s", segment, submission.request_id, exc.reason)
        raise exc.for_segment(segment) from None


def _download(
    job: Job, provider: VideoProvider, submission: Submission, outcome: Outcome, request: GenerationRequest
) -> tuple[Path, MediaInfo]:
    local = job.cache.scratch(job.job_id) / f"{request.content_key}.mp4"
    problem = ""
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            provider.download(submission, outcome, request, local)
            return local, verify_download(local, request, job.spec)
        except ResultExpiredError:
            logger.warning(
                "segment %d: result link expired; asking %s for it again by request id",
                request.segment,
                provider.name,
            )
            outcome = provider.refresh(submission)
            problem = "the result link expired"
        except MediaError as exc:
            problem = str(exc)
            logger.warning(
                "segment %d: download attempt %d/%d is unusable: %s",
                request.segment,
                attempt,
                DOWNLOAD_ATTEMPTS,
                problem,
            )
    raise TransientProviderError(
        f"could not download a complete video after {DOWNLOAD_ATTEMPTS} attempts ({problem}); "
        "the request id is recorded and the next attempt fetches it again without resubmitting",
        provider=provider.name,
        model=job.spec.id,
        segment=request.segment,
        request_id=submission.request_id,
    )


def render_segment(
    job: Job,
    shot: Shot,
    handoff: HandoffRecord | None,
    provider: VideoProvider,
    take: int = 1,
    previous: SegmentRecord | None = None,
    gate: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> SegmentRecord:
    """Render (or find, or resume) one segment; `previous` is the segment before it, for native extension.
    `gate` is entered around the provider work only (e.g. a provider-wide concurrency slot)."""
    extend = uses_native_extension(job.request, shot, previous)
    handoff_png = read_handoff(job, handoff) if handoff is not None and shot.continues_previous and not extend else None
    request = build_request(job, shot, handoff_png, take, previous)
    done = finished_segment(job, shot.index, request.content_key)
    if done is not None:
        logger.info("segment %d: already rendered (%s), nothing to pay", shot.index, done.request_id)
        return done
    with job.lock(request.content_key):
        done = finished_segment(job, shot.index, request.content_key)
        if done is not None:
            logger.info("segment %d: rendered by a concurrent run (%s)", shot.index, done.request_id)
            return done
        with gate():
            started = time.monotonic()
            submission, entry, resumed = _submission_for(job, provider, request, take)
            outcome = _wait(job, provider, submission, entry, shot.index)
            local, info = _download(job, provider, submission, outcome, request)
        sha = sha256_file(local)
        _archive_previous_take(job, shot.index)
        rel = segment_rel(shot.index)
        job.store.put_file(local, rel)
        job.cache.adopt(local, sha)
        assert info.video is not None
        record = SegmentRecord(
            index=shot.index,
            take=take,
            key=request.content_key,
            provider=provider.name,
            model=job.spec.id,
            endpoint=submission.endpoint,
            request_id=submission.request_id,
            mode=request.mode,
            prompt=shot.prompt,
            seconds=shot.seconds,
            width=info.video.width,
            height=info.video.height,
            seed=request.seed,
            audio=request.audio,
            seeded_from_sha256=sha256_bytes(handoff_png) if handoff_png is not None else None,
            path=rel,
            sha256=sha,
            bytes=local.stat().st_size,
            duration=info.video.duration or info.duration,
            frames=info.video.frames,
            has_audio=info.audio is not None,
            cost_usd=entry.cost_usd,
            submitted_at=submission.submitted_at,
            render_s=round(time.monotonic() - started, 3),
            resumed=resumed,
        )
        job.store.write_json(segment_rel(shot.index, "json"), record)
        entry.state = "completed"
        job.ledger.put(entry)
        local.unlink(missing_ok=True)
        logger.info(
            "segment %d: stored %s (%.2f s, %dx%d, $%.2f)",
            shot.index,
            job.store.url(rel),
            record.duration,
            record.width,
            record.height,
            record.cost_usd,
        )
        return record
