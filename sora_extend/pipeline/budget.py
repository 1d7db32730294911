"""Cost estimates before anything is spent, and the budget checks that stop spending."""

from __future__ import annotations

from pydantic import BaseModel

from sora_extend.errors import BudgetExceededError
from sora_extend.request import ExtendRequest


class Estimate(BaseModel):
    provider: str
    model: str
    segments: int
    seconds_per_segment: int
    total_seconds: int
    resolution: str
    audio: bool
    usd_per_second: float
    total_usd: float
    price_source: str

    def lines(self) -> list[str]:
        return [
            f"model          {self.provider}/{self.model}",
            f"segments       {self.segments} x {self.seconds_per_segment} s = {self.total_seconds} s",
            f"resolution     {self.resolution}, audio {'on' if self.audio else 'off'}",
            f"price          ${self.usd_per_second:.3f} per second ({self.price_source or 'catalogue'})",
            f"total          ${self.total_usd:.2f}",
        ]


def estimate(request: ExtendRequest) -> Estimate:
    spec = request.spec
    seconds = request.seconds or spec.duration.default
    resolution = request.resolution or spec.default_resolution
    audio = request.audio and spec.supports_audio
    rate = spec.price_per_second(resolution, audio)
    return Estimate(
        provider=spec.provider,
        model=spec.id,
        segments=request.segments,
        seconds_per_segment=seconds,
        total_seconds=request.segments * seconds,
        resolution=resolution,
        audio=audio,
        usd_per_second=rate,
        total_usd=round(rate * seconds * request.segments, 4),
        price_source=spec.price_source,
    )


def check_estimate(request: ExtendRequest, already_spent: float = 0.0, still_to_render: int | None = None) -> None:
    """Refuse a run whose estimate (for the segments still to render) passes the budget."""
    if request.budget_usd is None:
        return
    quote = estimate(request)
    remaining = quote.segments if still_to_render is None else still_to_render
    needed = round(already_spent + remaining * quote.seconds_per_segment * quote.usd_per_second, 4)
    if needed > request.budget_usd + 1e-9:
        raise BudgetExceededError(
            f"budget_usd: this run needs ${needed:.2f} (${already_spent:.2f} already spent + {remaining} "
            f"segment(s) x {quote.seconds_per_segment} s x ${quote.usd_per_second:.3f}/s) but the budget is "
            f"${request.budget_usd:.2f}. Raise the budget or pick fewer/shorter segments or a cheaper model."
        )


def check_submission(request: ExtendRequest, spent: float, cost: float, segment: int) -> None:
    """Stop before the submission that would pass the budget (re-renders included)."""
    if request.budget_usd is None:
        return
    if spent + cost > request.budget_usd + 1e-9:
        raise BudgetExceededError(
            f"budget_usd: submitting segment {segment} would cost ${cost:.2f} on top of ${spent:.2f} already "
            f"spent, passing the budget of ${request.budget_usd:.2f}. Nothing was submitted; finished "
            "segments are kept and the run resumes where it stopped once the budget allows."
        )


def segments_to_render(request: ExtendRequest, stored: set[int]) -> int:
    """How many segments this run will pay for: the missing ones, plus every segment from the first
    re-rendered one on (a new take changes every later hand-off frame, so they are rendered again too)."""
    pending = {index for index in range(1, request.segments + 1) if index not in stored}
    if request.rerender:
        pending |= set(range(min(request.rerender), request.segments + 1))
    return len(pending)
