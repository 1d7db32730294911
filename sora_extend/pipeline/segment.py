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
from sora_extend.media.trim import drop_head
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


def _source(job: Job, step: SegmentStep, inputs: Mapping[str, object]) -> tuple[Path | None, float, str | None]:
    """extend: the clip to send (the previous segment, or its tail when the model takes shorter clips),
    its length, and the provider's id for it."""
    if not step.source:
        return None, 0.0, None
    record = inputs[step.source]
    assert isinstance(record, SegmentRecord)
    local = job.cache.fetch(job.store, record.path, record.sha256)
    limit = job.spec.extend.max_input_s if job.spec.extend else None
    if limit is not None and record.duration > limit + 1e-3:
        tail = job.cache.scratch(job.job_id) / f"{record.sha256[:16]}-tail{limit:g}.mp4"
        if not tail.exists():
            drop_head(local, tail, start=record.duration - limit)
        return tail, round(probe(tail).duration, 4), record.request_id
    return local, record.duration, record.request_id


def build_request(job: Job, step: SegmentStep, inputs: Mapping[str, object]) -> GenerationRequest:
    request, spec = job.request, job.spec
    width, height = request.size
    source, source_seconds, source_id = _source(job, step, inputs)
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
        references=tuple(read_image(job, reference) for reference in step.references),
        source_video=source,
        source_seconds=source_seconds,
        extend_request_id=source_id,
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
    # change it, so it is reported and recorded; the hand-off fit and the merge cope with it. An extension
    # may come back with the clip it continued in front.
    expected = [request.seconds, request.seconds + request.source_seconds]
    if all(abs(declared - seconds) > max(0.5, 0.1 * request.seconds) for seconds in expected):
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


def new_part(job: Job, provider: Provider, request: GenerationRequest, local: Path, info: MediaInfo) -> Path:
    """What a segment keeps of its download: all of it, except an extension that came back with the clip
    it continued in front, whose head is cut off (re-encoded), so no footage shows twice. Whether it came
    back whole is read from its length; the catalogue's word is only checked."""
    extend = job.spec.extend
    if request.mode != "extend" or extend is None:
        return local
    head = provider.extension_head_seconds(request)
    duration = info.duration
    whole = duration > request.seconds + head / 2
    if whole != (extend.returns == "whole"):
        logger.warning(
            "%s: %s sent back %.2f s for a %d s extension of %.2f s: %s, not %s as the catalogue says",
            request.label,
            job.spec.id,
            duration,
            request.seconds,
            head,
            "the whole video" if whole else "the new part only",
            "the whole video" if extend.returns == "whole" else "the new part only",
        )
    if not whole:
        return local
    kept = local.with_name(local.stem + "-new.mp4")
    drop_head(local, kept, start=head)
    local.unlink(missing_ok=True)
    return kept


def render_segment(
    job: Job, step: SegmentStep, inputs: Mapping[str, object], provider: Provider, gate: Gate = nullcontext
) -> SegmentRecord:
    """Render (or find, or resume) one segment. `inputs` holds the records of the steps it needs."""
    key = segment_key(job.request, step, inputs)
    record_rel = layout.segment_record(step.index)

    def produce() -> SegmentRecord:
        request = build_request(job, step, inputs)  # reads its input media: only when there is work to do
        price = job.prices.segment(
            job.spec, provider.endpoint_for(request), request.seconds, request.resolution, request.audio, request.mode
        )
        made = generate(job, provider, request, price, verify_video, gate)
        checked = made.checked
        assert isinstance(checked, MediaInfo)
        kept = new_part(job, provider, request, made.local, checked)
        info = checked if kept == made.local else probe(kept)  # probed again only when the head was cut off
        made.local = kept
        assert info.video is not None
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
            **made.paid_fields(),
            model=job.spec.id,
            mode=request.mode,
            prompt=step.shot.prompt,
            seconds=step.shot.seconds,
            width=info.video.width,
            height=info.video.height,
            seed=request.seed,
            audio=request.audio,
            seeded_from_sha256=sha256_bytes(request.first_frame_png) if request.first_frame_png else None,
            ends_on_sha256=sha256_bytes(request.last_frame_png) if request.last_frame_png else None,
            extends_sha256=inputs[step.source].sha256 if step.source else None,  # type: ignore[attr-defined]
            references_sha256=[reference.sha256 for reference in step.references],
            path=rel,
            sha256=sha,
            bytes=made.local.stat().st_size,
            duration=info.video.duration or info.duration,
            frames=info.video.frames,
            has_audio=info.audio is not None,
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

    return once(
        job,
        key,
        lambda: finished(job, record_rel, key, SegmentRecord, f"segment {step.index}", layout.SEGMENT_HISTORY_DIR),
        produce,
    )
