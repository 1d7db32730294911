"""The provider interface: one generation (a video clip, a still or a score) as submit, wait, download.

A generation is three steps so that a crash between them loses nothing: `submit` returns a request
id (recorded in the ledger at once), `wait` polls that id until the provider is done, and `download`
fetches the result. Every step after submit works from the request id alone, so a new process can
resume a request another process submitted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sora_extend.catalogue import ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.errors import LookupUnavailable, TransientProviderError
from sora_extend.ledger import utcnow
from sora_extend.settings import Settings

StateCallback = Callable[[str, str], None]  # (state, detail), called on every state *change*
Mode = Literal[
    "text_to_video",
    "image_to_video",
    "first_last_frame",
    "reference_to_video",
    "extend",
    "text_to_image",
    "image_edit",
    "video_to_music",
    "text_to_music",
]


class GenerationRequest(BaseModel):
    """What one step asks a provider for, in provider-neutral terms."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(..., description="What a person calls it in messages: 'segment 3', 'keyframe 0'.")
    index: int
    content_key: str
    model: str
    output: Literal["video", "image", "audio"] = "video"
    prompt: str
    seconds: int = 0
    aspect: str
    resolution: str
    width: int
    height: int
    fps: int = 24
    seed: int | None
    audio: bool = False
    story_seed: int = 0
    first_frame_png: bytes | None = Field(None, repr=False, description="The image the clip starts on, exact size.")
    last_frame_png: bytes | None = Field(None, repr=False, description="The image the clip ends on, exact size.")
    images: tuple[bytes, ...] = Field((), repr=False, description="Image edits: the image(s) to edit.")
    references: tuple[bytes, ...] = Field((), repr=False, description="The subject's reference images.")
    source_video: Path | None = Field(
        None, description="Extension: the clip to continue; video-to-music: the video to score (a local file)."
    )
    source_seconds: float = Field(0.0, description="Extension: how long the clip sent is.")
    extend_request_id: str | None = Field(
        None, description="Extension: the provider's id of the clip to continue (providers that extend by id)."
    )

    @property
    def step_id(self) -> str:
        if self.output == "audio":
            return "score"
        return f"{'keyframe' if self.output == 'image' else 'segment'}-{self.index:02d}"

    @property
    def mode(self) -> Mode:
        if self.output == "audio":
            return "video_to_music" if self.source_video is not None else "text_to_music"
        if self.output == "image":
            return "image_edit" if self.images or self.references else "text_to_image"
        if self.source_video is not None or self.extend_request_id:
            return "extend"
        if self.last_frame_png is not None:
            return "first_last_frame"
        if self.first_frame_png is not None:
            return "image_to_video"
        return "reference_to_video" if self.references else "text_to_video"


class Submission(BaseModel):
    provider: str
    model: str
    endpoint: str
    request_id: str
    submitted_at: datetime = Field(default_factory=utcnow)


class Outcome(BaseModel):
    """Where a finished result can be fetched from (a URL, or the provider's content endpoint)."""

    request_id: str
    media_url: str | None = None


class Provider(ABC):
    name: str

    def __init__(self, spec: ModelSpec | ImageModelSpec | MusicModelSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self._clients: list[Any] = []  # network clients to close with the provider

    @classmethod
    def for_run(cls, spec: ModelSpec | ImageModelSpec, settings: Settings, options: Any) -> Provider:
        """The provider for one run's pieces; `options` is the run's request, for providers that take
        run-wide choices from it (ComfyUI: the user's own workflow)."""
        return cls(spec, settings)

    @abstractmethod
    def endpoint_for(self, request: GenerationRequest) -> str:
        """The endpoint a request goes to (recorded in the ledger before submitting)."""

    @abstractmethod
    def submit(self, request: GenerationRequest) -> Submission: ...

    @abstractmethod
    def wait(self, submission: Submission, on_state: StateCallback, timeout_s: float) -> Outcome: ...

    @abstractmethod
    def download(self, submission: Submission, outcome: Outcome, request: GenerationRequest, dest: Path) -> None:
        """Write the result to `dest`. Raise ResultExpiredError if the result URL is gone."""

    def extension_head_seconds(self, request: GenerationRequest) -> float:
        """How much of an extension's answer is the clip it continued (when the model sends back the
        whole extended video): by default, what was sent."""
        return request.source_seconds

    def reserve_id(self, request: GenerationRequest) -> str | None:
        """The request id the next `submit` of this request will send, for providers that take the client's
        own id (ComfyUI's prompt_id): written into the ledger's intent before submitting, so a lost answer
        is looked up by it. None: the provider mints its ids."""
        return None

    def find_submission(
        self, request: GenerationRequest, since: datetime, request_id: str | None = None
    ) -> Submission | None:
        """The provider's record of a submission of this request sent since `since` whose answer was lost
        (None if it has none); `request_id` is the id reserved for it, where the provider takes ours.
        Raises LookupUnavailable when the provider offers no such list."""
        raise LookupUnavailable(f"{self.name} offers no list of submitted requests")

    def refresh(self, submission: Submission) -> Outcome:
        """Ask again for a finished request's result (a fresh URL after the old one expired)."""
        return self.wait(submission, lambda state, detail: None, self.settings.poll_timeout_s)

    def still_waiting(self, submission: Submission, state: str, timeout_s: float) -> TransientProviderError:
        """The error for a request still queued or running at the poll deadline: transient, so the next
        attempt resumes the same request by id."""
        return TransientProviderError(
            f"still {state} after {timeout_s:.0f} s; the request stays recorded and the next attempt resumes it",
            provider=self.name,
            model=self.spec.id,
            request_id=submission.request_id,
        )

    @property
    def is_paid(self) -> bool:
        return self.spec.is_paid

    def close(self) -> None:
        """Release the provider's network clients."""
        while self._clients:
            self._clients.pop().close()
