"""How segments join, and what a merge produced: the values every merge path shares."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sora_extend.media.soundtrack import SoundReport


class JoinPlan(BaseModel):
    """How segment k joins segment k+1."""

    transition: str = "continuous"
    dedupe_first_frame: bool = Field(False, description="k+1 starts with k's last frame: show each for half.")
    trim_tail_frames: int = Field(0, ge=0, description="Frames at the end of k that must not be shown.")
    crossfade_s: float = Field(0.0, ge=0)


class MergeResult(BaseModel):
    method: str
    reason: str = ""
    frames: int
    duration: float
    seconds: float
    joins_at: list[float] = Field(default_factory=list, description="Output times where segments meet.")
    sound: SoundReport = Field(default_factory=SoundReport, description="What the merge did to the sound.")


class StreamCopyUnsupported(Exception):
    """Stream copy cannot produce this output exactly; the caller re-encodes instead."""
