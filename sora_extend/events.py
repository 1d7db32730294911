"""Progress events: what a person watching a run wants to know about each piece, as structured log
records on the `sora_extend.events` logger (so they also reach Prefect's run logs as plain lines).

A consumer (the CLI's live view) attaches a logging handler and reads `record.sora_event`; nothing in
the pipeline depends on anyone listening.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel

logger = logging.getLogger("sora_extend.events")

State = Literal[
    "started", "submitted", "resumed", "queued", "in_progress", "downloading", "judging", "flawed", "done", "failed"
]


class Event(BaseModel):
    step: str  # "segment-03", "keyframe-00", "handoff-02", "merge"
    state: State
    request_id: str | None = None
    cost_usd: float | None = None
    detail: str = ""


def emit(
    step: str, state: State, *, request_id: str | None = None, cost_usd: float | None = None, detail: str = ""
) -> None:
    event = Event(step=step, state=state, request_id=request_id, cost_usd=cost_usd, detail=detail)
    text = " ".join(part for part in (step, state, request_id or "", detail) if part)
    logger.info(text, extra={"sora_event": event})
