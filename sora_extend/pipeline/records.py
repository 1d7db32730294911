"""What each step produces. Small, serialisable and hash-identified: these are also the Prefect task
results, so a cached result is a pointer into storage plus the hashes that prove what it points at."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from sora_extend.ledger import utcnow


class StoredFile(BaseModel):
    path: str = Field(..., description="Relative path in the job folder.")
    sha256: str


class ImageRecord(StoredFile):
    """A still in storage that can start or end a segment: a hand-off frame or a keyframe."""

    width: int
    height: int


class PaidResult(StoredFile):
    """What a paid generation left in storage, and how it was paid for."""

    index: int
    take: int = 1
    key: str = Field(..., description="Content key: what determines this output.")
    provider: str
    model: str
    endpoint: str
    request_id: str
    mode: str
    prompt: str
    cost_usd: float
    price_source: str = Field("", description="Where the price came from: fal's live price or the catalogue.")
    submitted_at: datetime | None = None
    finished_at: datetime = Field(default_factory=utcnow)
    render_s: float = 0.0
    resumed: bool = Field(False, description="True if this run resumed a request an earlier run submitted.")


class KeyframeRecord(ImageRecord, PaidResult):
    """index 0 = the opening still; k = the still between segments k and k+1."""

    edit_of: int | None = None
    returned_width: int = Field(..., description="The model's own size, before the cover-crop to the video size.")
    returned_height: int


class SegmentRecord(PaidResult):
    seconds: int
    width: int
    height: int
    seed: int | None
    audio: bool
    seeded_from_sha256: str | None = Field(None, description="Hash of the image it started from.")
    ends_on_sha256: str | None = Field(None, description="Hash of the keyframe it was asked to end on.")
    extends_sha256: str | None = Field(None, description="extend: hash of the segment it continues.")
    references_sha256: list[str] = Field(default_factory=list, description="Reference images it was given.")
    bytes: int
    duration: float
    frames: int
    has_audio: bool


class ScoreRecord(PaidResult):
    """The music for the whole video (soundtrack score / score-only)."""

    scored_from: Literal["video", "text"] = Field(..., description="The joined clips, or the plan's mood.")
    seconds: float = Field(..., description="How long a piece was asked for (video-to-music: the video's length).")
    duration: float = Field(..., description="How long the music that came back is.")
    format: str = Field(..., description="The file's container, as the model delivered it (mp3, mov/m4a, wav...).")
    bytes: int


class HandoffRecord(ImageRecord):
    segment: int = Field(..., description="The segment the frame was taken from.")
    key: str
    from_end: int = Field(0, description="0 = the last frame; n = n frames before it (guard chose it).")
    frame_time: float
    sharpness: float
    candidates: list[dict[str, float]] = Field(default_factory=list)
    colour_anchored: bool = False
    colour_shift: float = Field(0.0, description="Mean-Lab distance removed by re-anchoring.")


class JoinRecord(BaseModel):
    boundary: int = Field(..., description="Between segment `boundary` and `boundary + 1`.")
    transition: str
    dedupe_first_frame: bool = False
    trim_tail_frames: int = 0
    crossfade_s: float = 0.0


class ClipSound(BaseModel):
    """One segment's loudness, as the model delivered it and as final.mp4 plays it."""

    segment: int
    lufs_before: float | None = Field(..., description="Integrated loudness as rendered (None: silent).")
    gain_db: float = Field(..., description="The gain that brought it to the target (0: off, or silent).")
    lufs_after: float | None = Field(None, description="Measured in final.mp4 over the segment's span.")


class SoundRecord(BaseModel):
    """What the merge did to the sound, and what final.mp4 measures."""

    soundtrack: Literal["clips", "score", "score-only"] = "clips"
    target_lufs: float | None = Field(None, description="The loudness target (None: levels as they came).")
    lufs: float | None = Field(None, description="final.mp4's integrated loudness, measured.")
    clips: list[ClipSound] = Field(default_factory=list)
    score_sha256: str | None = Field(None, description="The score mixed in, if any.")
    score_lufs: float | None = Field(None, description="The score's own loudness, as it came.")
    mix_gain_db: float = Field(0.0, description="With a score: the gain that brought the mix to the target.")


class FinalRecord(BaseModel):
    key: str
    path: str
    url: str
    link: str
    sha256: str
    bytes: int
    duration: float
    frames: int
    width: int
    height: int
    has_audio: bool
    method: str = Field(..., description="stream-copy or re-encode, and why.")
    joins: list[JoinRecord]
    merge_s: float
    joins_at: list[float] = Field(default_factory=list, description="Seconds into final.mp4 where segments meet.")
    sound: SoundRecord | None = Field(None, description="Crossfades, loudness and score (absent in older records).")
