"""Cost estimates before anything is spent, and the budget checks that stop spending."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sora_extend.catalogue import load_catalogue
from sora_extend.errors import BudgetExceededError
from sora_extend.pricing import PriceBook, catalogue_only
from sora_extend.quality.vlm import estimate_usd
from sora_extend.request import ExtendRequest


class Work(BaseModel):
    """Paid pieces: clips, keyframe stills and the score."""

    segments: int = Field(0, ge=0)
    keyframes: int = Field(0, ge=0)
    scores: int = Field(0, ge=0, le=1)


class Estimate(BaseModel):
    provider: str
    model: str
    continuity: str
    segments: int
    seconds_per_segment: int
    total_seconds: int
    resolution: str
    audio: bool
    usd_per_second: float
    price_source: str
    segment_usd: list[float] = Field(..., description="Per segment: text-to-video may be priced differently.")
    keyframe_model: str | None = None
    keyframes: int = 0
    usd_per_keyframe: float = 0.0
    keyframe_price_source: str = ""
    quality_gate: str = "off"
    max_takes: int = Field(1, description="Takes per piece the gate may render (1 without retakes).")
    judge: str = "pixels"
    usd_per_verdict: float = Field(0.0, description="What one chat model verdict is expected to cost (judge vlm).")
    soundtrack_model: str | None = None
    score_usd: float = 0.0
    score_price_source: str = ""

    def cost_of(self, work: Work) -> float:
        """An upper bound for this much work (each pending segment at the dearest segment's price)."""
        dearest = max(self.segment_usd, default=0.0)
        verdicts = (work.segments + work.keyframes) * self.usd_per_verdict
        paid = work.segments * dearest + work.keyframes * self.usd_per_keyframe + work.scores * self.score_usd
        return round(paid + verdicts, 4)

    @property
    def total_usd(self) -> float:
        """Every piece once, judged once: what the run costs when nothing has to be retaken."""
        verdicts = (self.segments + self.keyframes) * self.usd_per_verdict
        return round(sum(self.segment_usd) + self.keyframes * self.usd_per_keyframe + self.score_usd + verdicts, 4)

    @property
    def worst_usd(self) -> float:
        """Every piece retaken as often as the gate allows (the score is not judged): the most the run can cost."""
        return round((self.total_usd - self.score_usd) * self.max_takes + self.score_usd, 4)

    def lines(self) -> list[str]:
        lines = [
            f"model          {self.provider}/{self.model} ({self.continuity})",
            f"segments       {self.segments} x {self.seconds_per_segment} s = {self.total_seconds} s"
            if self.total_seconds == self.segments * self.seconds_per_segment
            else f"segments       {self.segments}, {self.total_seconds} s in all (extensions: "
            f"{(self.total_seconds - self.seconds_per_segment) // max(1, self.segments - 1)} s each)",
            f"resolution     {self.resolution}, audio {'on' if self.audio else 'off'}",
            f"price          ${self.usd_per_second:.3f} per second ({self.price_source})",
        ]
        if len(set(self.segment_usd)) > 1:  # e.g. text-to-video priced differently from image-to-video
            lines.append("per segment    " + ", ".join(f"${usd:.2f}" for usd in self.segment_usd))
        if self.keyframe_model:
            lines.append(
                f"keyframes      {self.keyframes} x ${self.usd_per_keyframe:.3f} on {self.keyframe_model} "
                f"({self.keyframe_price_source})"
            )
        if self.soundtrack_model:
            lines.append(
                f"score          ${self.score_usd:.3f} on {self.soundtrack_model}, {self.total_seconds} s "
                f"({self.score_price_source})"
            )
        if self.usd_per_verdict:
            verdicts = self.segments + self.keyframes
            lines.append(f"judge          {self.judge}, ${self.usd_per_verdict:.4f} per verdict x {verdicts}")
        lines.append(f"total          ${self.total_usd:.2f}" + (" without retakes" if self.max_takes > 1 else ""))
        if self.max_takes > 1:
            lines.append(
                f"worst case     ${self.worst_usd:.2f} (every piece flawed and retaken: {self.max_takes} takes each; "
                "no retake is submitted past the budget)"
            )
        return lines


def segment_modes(request: ExtendRequest) -> list[str]:
    """How each segment will be generated (what it is priced as). keyframes: every segment starts on a
    still; chain and extend: segment 1 and every cut start from nothing (text-to-video, or
    reference-to-video with references; "auto" joins are assumed continuous), the others continue."""
    if request.mode == "keyframes":
        return ["first_last_frame"] * request.segments
    opening = "reference_to_video" if request.references and request.spec.reference else "text_to_video"
    follow = "extend" if request.mode == "extend" else "image_to_video"
    return [
        opening if index == 1 or request.transition_into(index) == "cut" else follow
        for index in range(1, request.segments + 1)
    ]


def estimate(request: ExtendRequest, prices: PriceBook | None = None) -> Estimate:
    """The run's price before anything is spent, from `prices` (live where fetched) or the catalogue."""
    prices = prices or catalogue_only()
    spec = request.spec
    seconds = request.seconds or spec.duration.default
    resolution = request.resolution or spec.default_resolution
    audio = request.audio and spec.supports_audio
    quotes = [
        prices.segment(spec, spec.endpoint(mode) or "", request.segment_seconds(index), resolution, audio, mode)
        for index, mode in enumerate(segment_modes(request), start=1)
    ]
    music = request.soundtrack_spec
    score = prices.score(music, request.total_seconds) if music else None
    keyframe_spec = request.keyframe_spec
    verdict_usd = 0.0
    if request.judge == "vlm" and request.judge_model:
        stills = len(request.references) + (2 if request.mode == "keyframes" else 1)  # its images: first (and last)
        verdict_usd = estimate_usd(load_catalogue().judge(request.judge_model), stills)
    still = (
        prices.keyframe(keyframe_spec, keyframe_spec.endpoints.image_edit or "", *request.size)
        if keyframe_spec
        else None
    )
    return Estimate(
        provider=spec.provider,
        model=spec.id,
        continuity=request.mode if request.continuity != "auto" else f"{request.mode}, {request.mode_reason}",
        segments=request.segments,
        seconds_per_segment=seconds,
        total_seconds=request.total_seconds,
        resolution=resolution,
        audio=audio,
        usd_per_second=round(quotes[-1].usd / request.segment_seconds(request.segments), 4),
        price_source=quotes[-1].source,
        segment_usd=[quote.usd for quote in quotes],
        keyframe_model=keyframe_spec.id if keyframe_spec else None,
        keyframes=request.segments + 1 if keyframe_spec else 0,
        usd_per_keyframe=still.usd if still else 0.0,
        keyframe_price_source=still.source if still else "",
        quality_gate=request.quality_gate,
        max_takes=request.max_takes if request.quality_gate == "retake" else 1,
        judge=f"{request.judge} ({request.judge_model})" if request.judge_model else request.judge,
        usd_per_verdict=verdict_usd,
        soundtrack_model=music.id if music else None,
        score_usd=score.usd if score else 0.0,
        score_price_source=score.source if score else "",
    )


def check_estimate(
    request: ExtendRequest, already_spent: float = 0.0, pending: Work | None = None, prices: PriceBook | None = None
) -> None:
    """Refuse a run whose estimate (for the pieces still to render, default all) passes the budget."""
    if request.budget_usd is None:
        return
    quote = estimate(request, prices)
    pending = pending or Work(
        segments=quote.segments, keyframes=quote.keyframes, scores=int(bool(quote.soundtrack_model))
    )
    needed = round(already_spent + quote.cost_of(pending), 4)
    if needed > request.budget_usd + 1e-9:
        pieces = (
            f"{pending.segments} segment(s) x {quote.seconds_per_segment} s at up to ${max(quote.segment_usd):.2f} each"
        )
        if pending.keyframes:
            pieces += f" + {pending.keyframes} keyframe(s) x ${quote.usd_per_keyframe:.3f}"
        if pending.scores:
            pieces += f" + a score at ${quote.score_usd:.2f}"
        raise BudgetExceededError(
            f"budget_usd: this run needs ${needed:.2f} (${already_spent:.2f} already spent + {pieces}) but the "
            f"budget is ${request.budget_usd:.2f}. Raise the budget or pick fewer/shorter segments or a cheaper model."
        )


def check_submission(request: ExtendRequest, spent: float, cost: float, label: str) -> None:
    """Stop before the submission that would pass the budget (re-renders included)."""
    if request.budget_usd is None:
        return
    if spent + cost > request.budget_usd + 1e-9:
        raise BudgetExceededError(
            f"budget_usd: submitting {label} would cost ${cost:.2f} on top of ${spent:.2f} already "
            f"spent, passing the budget of ${request.budget_usd:.2f}. Nothing was submitted; finished "
            "pieces are kept and the run resumes where it stopped once the budget allows."
        )
