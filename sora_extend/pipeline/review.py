"""Review material for every run: the seam report (seams.json) and the contact sheet."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sora_extend.media.contact_sheet import contact_sheet
from sora_extend.media.frames import first_frame, last_frame
from sora_extend.media.images import decode_png, encode_png, psnr, ssim
from sora_extend.media.seams import measure_seams
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import FinalRecord, HandoffRecord, SegmentRecord
from sora_extend.plan import ShotPlan

SEAMS_REL = "seams.json"
CONTACT_SHEET_REL = "contact_sheet.png"


class SeamRecord(BaseModel):
    boundary: int = Field(..., description="Between segment `boundary` and `boundary + 1`.")
    transition: str
    at_s: float
    handoff_psnr: float | None = Field(None, description="Hand-off frame vs the next segment's first frame (dB).")
    handoff_ssim: float | None = None
    handoff_from_end: int | None = Field(None, description="Frames before the end the guard took the hand-off from.")
    anchor_shift: float | None = Field(None, description="Lab distance colour re-anchoring removed.")
    colour_delta: float
    motion_jump: float
    audio_jump_db: float


def seam_report(
    job: Job, plan: ShotPlan, segments: list[SegmentRecord], handoffs: dict[int, HandoffRecord], final: FinalRecord
) -> list[SeamRecord]:
    video = job.cache.fetch(job.store, final.path, final.sha256)
    measures = measure_seams(video, final.joins_at)
    records = []
    for measure, shot, after in zip(measures, plan.shots[1:], segments[1:], strict=False):
        handoff = handoffs.get(shot.index - 1)
        seeded = handoff is not None and after.seeded_from_sha256 == handoff.sha256
        similarity: dict[str, float | None] = {"handoff_psnr": None, "handoff_ssim": None}
        if seeded and handoff is not None:
            seed = decode_png(job.store.read_bytes(handoff.path))
            start = first_frame(job.cache.fetch(job.store, after.path, after.sha256))
            if start.shape == seed.shape:
                similarity = {
                    "handoff_psnr": round(min(psnr(seed, start), 99.0), 2),
                    "handoff_ssim": round(ssim(seed, start), 4),
                }
        records.append(
            SeamRecord(
                boundary=shot.index - 1,
                transition=shot.transition_in,
                handoff_from_end=handoff.from_end if handoff else None,
                anchor_shift=handoff.colour_shift if handoff and handoff.colour_anchored else None,
                **similarity,
                **measure.model_dump(),
            )
        )
    job.store.write_json(SEAMS_REL, [record.model_dump() for record in records])
    return records


def write_contact_sheet(job: Job, segments: list[SegmentRecord]) -> str:
    """contact_sheet.png beside final.mp4: first and last frame of every segment. Returns a link to it."""
    pairs = []
    for record in segments:
        local = job.cache.fetch(job.store, record.path, record.sha256)
        pairs.append((first_frame(local), last_frame(local)))
    job.store.write_bytes(CONTACT_SHEET_REL, encode_png(contact_sheet(pairs)))
    return job.store.link(CONTACT_SHEET_REL, job.settings.link_ttl_s)
