"""Review material of a clip, computed once, right after it lands (in parallel with the clips still rendering)
instead of all at the end: its drift signature (kept in the job folder, it is small) and its first and last
frames (kept in the local cache beside the clip, they are not). After the merge only the joins remain to be
measured."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from sora_extend import layout
from sora_extend.media.drift import ClipSignature, signature_of
from sora_extend.media.frames import first_frame, last_frame
from sora_extend.media.images import decode_png, encode_png
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import SegmentRecord
from sora_extend.quality.scan import ClipScan, scan_clip


class ClipReview(BaseModel):
    sha256: str
    lab_mean: list[float]
    sharpness: float
    thumb_png: str  # hex: a 96x54 picture, a few kB


def review_clip(job: Job, record: SegmentRecord, scan: ClipScan | None = None) -> ClipReview:
    """The clip's review material: stored, or made now from `scan` (or one decode pass) and stored."""
    rel = layout.clip_review(record.sha256)
    stored = job.store.read_model(rel, ClipReview)
    if stored is not None:
        return stored
    scan = scan or scan_clip(job.cache.fetch(job.store, record.path, record.sha256), audio=False)
    signed = signature_of(scan)
    review = ClipReview(
        sha256=record.sha256,
        lab_mean=signed.lab_mean,
        sharpness=signed.sharpness,
        thumb_png=encode_png(signed.thumb).hex(),
    )
    job.store.write_json(rel, review)
    for name, rgb in (("first", scan.first), ("last", scan.last)):
        job.cache.derived(record.sha256, f"{name}.png").write_bytes(encode_png(rgb))
    return review


def clip_signature(job: Job, record: SegmentRecord) -> ClipSignature:
    review = review_clip(job, record)
    return ClipSignature(
        lab_mean=review.lab_mean, sharpness=review.sharpness, thumb=decode_png(bytes.fromhex(review.thumb_png))
    )


def clip_ends(job: Job, record: SegmentRecord) -> tuple[np.ndarray, np.ndarray]:
    """The clip's first and last frame: from the local cache when this machine made its review material."""
    cached = [job.cache.derived(record.sha256, f"{name}.png") for name in ("first", "last")]
    if all(path.exists() for path in cached):
        first, last = (decode_png(path.read_bytes()) for path in cached)
        return first, last
    local = job.cache.fetch(job.store, record.path, record.sha256)
    return first_frame(local), last_frame(local)
