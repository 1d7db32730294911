"""Render one segment (a video clip) from its start and end images, paying for it at most once.

The paid-generation protocol itself (ledger, resume by id, budget, download checks) is in
`generation.py`; this module says what a segment asks for, how its download is checked and how it
is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

from sora_extend import layout
from sora_extend.errors import MediaError
from sora_extend.hashing import sha256_bytes, sha256_file
from sora_extend.media.frames import last_frames
from sora_extend.media.probe import MediaInfo, probe
from sora_extend.pipeline.generation import Gate, complete, generate, once
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.keys import generation_seed, segment_key
from sora_extend.pipeline.records import ImageRecord, SegmentRecord
from sora_extend.pipeline.steps import SegmentStep
from sora_extend.pipeline.stored import finished, keep_earlier_take, read_image
from sora_extend.providers.base import GenerationRequest, Provider

logger = logging.getLogger(__name__)


def _image(job: Job, inputs: Mapping[str, object], step_id: str | None) -> bytes | None:
    if not step_id:
        return None
    record = inputs[step_id]
    assert isinstance(record, ImageRecord)
    return read_image(job, record)


def build_request(job: Job, step: SegmentStep, inputs: Mapping[str, object]) -> GenerationRequest:
    request, spec = job.request, job.spec
    width, height = request.size
    return GenerationRequest(
        label=f"segment {step.index}",
        index=step.index,
        content_key=segment_key(request, step, inputs),
        model=spec.id,
        prompt=step.shot.prompt,
        seconds=step.shot.seconds,
        aspect=request.aspect,
        resolution=request.resolution or spec.default_resolution,
        width=width,
        height=height,
        fps=spec.fps,
        seed=generation_seed(request.effective_seed, step.index, step.take),
        audio=request.audio and spec.supports_audio,
        story_seed=request.effective_seed,
        first_frame_png=_image(job, inputs, step.first),
        last_frame_png=_image(job, inputs, step.last),
    )


def verify_video(path: Path, request: GenerationRequest) -> MediaInfo:
    """The file decodes to its own declared end; raise MediaError (re-fetchable) if not."""
    if not path.exists() or path.stat().st_size == 0:
        raise MediaError("the download is empty")
    info = probe(path)
    if info.video is None:
        raise MediaError("the download has no video stream")
    declared = info.video.duration or info.duration
    tail = last_frames(path, 1)[-1]
    frame_s = 1.0 / (info.video.fps or request.fps)
    if tail.time + frame_s < declared - max(0.25, 3 * frame_s):
        raise MediaError(
            f"the download is truncated: it declares {declared:.2f} s but decodes only to {tail.time + frame_s:.2f} s"
        )
    # A wrong duration or size is the model's answer, not a broken download: fetching it again cannot
    # change it, so it is reported and recorded; the hand-off fit and the merge cope with it.
    if abs(declared - request.seconds) > max(0.5, 0.1 * request.seconds):
        logger.warning(
            "%s: %s returned %.2f s for a %d s request", request.label, request.model, declared, request.seconds
        )
    if (info.video.width, info.video.height) != (request.width, request.height):
        logger.warning(
            "%s: %s returned %dx%d for a %dx%d request",
            request.label,
            request.model,
            info.video.width,
            info.video.height,
            request.width,
            request.height,
        )
    return info


def render_segment(
    job: Job, step: SegmentStep, inputs: Mapping[str, object], provider: Provider, gate: Gate = nullcontext
) -> SegmentRecord:
    """Render (or find, or resume) one segment. `inputs` holds the records of the steps it needs."""
    request = build_request(job, step, inputs)
    record_rel = layout.segment_record(step.index)

    def stored() -> SegmentRecord | None:
        done = finished(job, record_rel, request.content_key, SegmentRecord)
        if done is not None:
            logger.info("segment %d: already rendered (%s), nothing to pay", step.index, done.request_id)
        return done

    def produce() -> SegmentRecord:
        price = job.prices.segment(
            job.spec, provider.endpoint_for(request), request.seconds, request.resolution, request.audio, request.mode
        )
        made = generate(job, provider, request, price, verify_video, gate)
        info = made.checked
        assert isinstance(info, MediaInfo) and info.video is not None
        sha = sha256_file(made.local)
        keep_earlier_take(job, record_rel, SegmentRecord, layout.SEGMENT_HISTORY_DIR)
        rel = layout.segment(step.index)
        job.store.put_file(made.local, rel)
        job.cache.adopt(made.local, sha)
        record = SegmentRecord(
            index=step.index,
            take=step.take,
            key=request.content_key,
            provider=provider.name,
            model=job.spec.id,
            endpoint=made.submission.endpoint,
            request_id=made.submission.request_id,
            mode=request.mode,
            prompt=step.shot.prompt,
            seconds=step.shot.seconds,
            width=info.video.width,
            height=info.video.height,
            seed=request.seed,
            audio=request.audio,
            seeded_from_sha256=sha256_bytes(request.first_frame_png) if request.first_frame_png else None,
            ends_on_sha256=sha256_bytes(request.last_frame_png) if request.last_frame_png else None,
            path=rel,
            sha256=sha,
            bytes=made.local.stat().st_size,
            duration=info.video.duration or info.duration,
            frames=info.video.frames,
            has_audio=info.audio is not None,
            cost_usd=made.entry.cost_usd,
            price_source=made.entry.price_source,
            submitted_at=made.submission.submitted_at,
            render_s=made.render_s,
            resumed=made.resumed,
        )
        job.store.write_json(record_rel, record)
        complete(job, made)
        logger.info(
            "segment %d: stored %s (%.2f s, %dx%d, $%.2f)",
            step.index,
            job.store.url(rel),
            record.duration,
            record.width,
            record.height,
            record.cost_usd,
        )
        return record

    return once(job, request.content_key, stored, produce)
