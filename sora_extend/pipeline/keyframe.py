"""Render one keyframe still with the keyframe image model, paying for it at most once.

Keyframe 0 comes from the text; every later keyframe is an edit of the still the plan names (keyframe 0
by default), so identity is one edit away from a single image. Whatever size the image model returns,
the stored still is cover-cropped to exactly the video's size: it is what segments start and end on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from sora_extend import layout
from sora_extend.catalogue import ImageModelSpec
from sora_extend.errors import MediaError
from sora_extend.hashing import sha256_bytes
from sora_extend.media.images import decode_png, encode_png, fit_to_size
from sora_extend.pipeline.generation import Gate, complete, generate, once
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.keys import generation_seed, keyframe_key
from sora_extend.pipeline.records import ImageRecord, KeyframeRecord
from sora_extend.pipeline.steps import KeyframeStep
from sora_extend.pipeline.stored import finished, keep_earlier_take, read_image
from sora_extend.providers.base import GenerationRequest, Provider

logger = logging.getLogger(__name__)


def keyframe_model(job: Job) -> ImageModelSpec:
    spec = job.request.keyframe_spec
    if spec is None:
        raise ValueError("this job has no keyframe model (continuity is not 'keyframes')")
    return spec


def build_request(job: Job, step: KeyframeStep, inputs: Mapping[str, object]) -> GenerationRequest:
    request, spec = job.request, keyframe_model(job)
    width, height = request.size
    images: tuple[bytes, ...] = ()
    if step.base:
        base = inputs[step.base]
        assert isinstance(base, ImageRecord)
        images = (read_image(job, base),)
    return GenerationRequest(
        label=f"keyframe {step.index}",
        index=step.index,
        content_key=keyframe_key(request, step, inputs),
        model=spec.id,
        output="image",
        prompt=step.still.prompt,
        aspect=request.aspect,
        resolution=spec.size_label(width, height),
        width=width,
        height=height,
        seed=generation_seed(request.effective_seed, step.index + 1, step.take),
        story_seed=request.effective_seed,
        images=images,
        references=tuple(read_image(job, reference) for reference in step.references),
    )


def verify_image(path: Path, request: GenerationRequest) -> np.ndarray:
    """The download decodes as an image; raise MediaError (re-fetchable) if not."""
    if not path.exists() or path.stat().st_size == 0:
        raise MediaError("the download is empty")
    try:
        return decode_png(path.read_bytes())
    except ValueError:
        raise MediaError("the download is not a decodable image") from None


def render_keyframe(
    job: Job, step: KeyframeStep, inputs: Mapping[str, object], provider: Provider, gate: Gate = nullcontext
) -> KeyframeRecord:
    """Render (or find, or resume) one keyframe still. `inputs` holds the still it is an edit of."""
    key = keyframe_key(job.request, step, inputs)
    record_rel = layout.keyframe_record(step.index)

    def produce() -> KeyframeRecord:
        request = build_request(job, step, inputs)  # reads its input media: only when there is work to do
        price = job.prices.keyframe(keyframe_model(job), provider.endpoint_for(request), request.width, request.height)
        made = generate(job, provider, request, price, verify_image, gate)
        returned = made.checked
        assert isinstance(returned, np.ndarray)
        png = encode_png(fit_to_size(returned, request.width, request.height, "cover"))
        keep_earlier_take(job, record_rel, KeyframeRecord, layout.KEYFRAME_HISTORY_DIR)
        rel = layout.keyframe(step.index)
        job.store.write_bytes(rel, png)
        record = KeyframeRecord(
            index=step.index,
            take=step.take,
            key=request.content_key,
            provider=provider.name,
            **made.paid_fields(),
            model=request.model,
            mode=request.mode,
            prompt=step.still.prompt,
            edit_of=step.still.edit_of,
            path=rel,
            sha256=sha256_bytes(png),
            width=request.width,
            height=request.height,
            returned_width=int(returned.shape[1]),
            returned_height=int(returned.shape[0]),
        )
        job.store.write_json(record_rel, record)
        complete(job, made)
        cropped = (record.returned_width, record.returned_height) != (record.width, record.height)
        logger.info(
            "keyframe %d: stored %s (%dx%d%s, $%.3f)",
            step.index,
            job.store.url(rel),
            record.width,
            record.height,
            f", cover-cropped from {record.returned_width}x{record.returned_height}" if cropped else "",
            record.cost_usd,
        )
        return record

    return once(
        job,
        key,
        lambda: finished(job, record_rel, key, KeyframeRecord, f"keyframe {step.index}", layout.KEYFRAME_HISTORY_DIR),
        produce,
    )
