"""A judge's verdict on one take of a piece, and which of several takes to keep."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from sora_extend.ledger import utcnow
from sora_extend.quality.flaws import Flaw


class ModelAnswer(BaseModel):
    """What the chat model judge answered (judge vlm), as its schema asks."""

    same_subject: bool = Field(
        ..., description="The clip shows the same subject (person, animal, object) as the stills."
    )
    same_setting: bool = Field(..., description="The clip stays in the same place and light as the stills.")
    artefacts: bool = Field(..., description="Visible artefacts: melting limbs, garbled text, broken anatomy.")
    morphing: bool = Field(
        ..., description="Something turns into something else, or a face or object changes identity."
    )
    follows_prompt: bool = Field(..., description="The frames show what the shot prompt asks for.")
    score: int = Field(..., ge=1, le=5, description="Overall: 1 unusable, 3 acceptable, 5 excellent.")
    reasons: list[str] = Field(..., description="Short plain-words reasons for the answers above.")


class Verdict(BaseModel):
    """Pass or flawed, a score, and the reasons in plain words; stored by its content key, so a rerun does not
    judge the same take again."""

    key: str
    piece: str = Field(..., description="The step judged: 'segment-03', 'keyframe-02'.")
    take: int
    sha256: str = Field(..., description="The file judged.")
    judge: str = Field(..., description="'pixels', or 'pixels + <model>' with the chat model judge.")
    passed: bool
    score: float = Field(..., ge=0, le=1, description="1 = nothing found; lower the more, and the worse, it found.")
    flaws: list[Flaw] = Field(default_factory=list)
    model_answer: ModelAnswer | None = None
    cost_usd: float = Field(0.0, description="What the chat model judge's answer cost (pixels: nothing).")
    cpu_s: float = Field(0.0, description="CPU seconds the pixel checks took.")
    judged_at: datetime = Field(default_factory=utcnow)

    @property
    def headline(self) -> str:
        """The first flaw found, in a few words ('hard cut at 2.1 s'), or 'clean'. The detectors run from the
        causes to their consequences (a cut first, then the wrong last frame it leads to)."""
        return self.flaws[0].words if self.flaws else "clean"


def score_of(flaws: list[Flaw], answer: ModelAnswer | None = None) -> float:
    """1 for a clean piece, lower with every flaw and how far past its line it goes; the chat model's own 1-5
    score, when there is one, weighs as much as everything the pixels found."""
    pixels = 1.0 / (1.0 + sum(min(flaw.severity, 4.0) for flaw in flaws))
    if answer is None:
        return round(pixels, 4)
    return round((pixels + (answer.score - 1) / 4) / 2, 4)


def model_flaws(answer: ModelAnswer) -> list[Flaw]:
    """The chat model's no's as flaws (it sees what pixels cannot: identity, morphing, the prompt)."""
    found = []
    reasons = "; ".join(answer.reasons)
    for failed, words in (
        (not answer.same_subject, "not the same subject as the stills"),
        (not answer.same_setting, "not the same setting as the stills"),
        (answer.morphing, "morphing"),
        (answer.artefacts, "visible artefacts"),
        (not answer.follows_prompt, "does not follow its shot prompt"),
        (answer.score <= 2, f"rated {answer.score}/5"),
    ):
        if failed:
            found.append(
                Flaw(kind="model", words=f"{words} (judge model: {reasons})" if reasons else words, severity=1.0)
            )
    return found


def best(verdicts: list[Verdict]) -> Verdict:
    """The take to keep: a passing one before a flawed one, then the higher score, then the earlier take."""
    return max(verdicts, key=lambda verdict: (verdict.passed, verdict.score, -verdict.take))
