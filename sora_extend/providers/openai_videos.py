"""OpenAI-compatible `/v1/videos` through the real `openai` SDK (`client.videos`).

OpenAI shut its own Videos API down on 2026-09-24; gateways that speak the same protocol still serve
other models, so the base URL and the wire model come from settings and the catalogue. Every
`client.videos` method carries the SDK's Sora shutdown DeprecationWarning: it is silenced here, around
these calls only, because this adapter targets the protocol, not Sora.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
from openai import DefaultHttpxClient, OpenAI

from sora_extend.catalogue import ImageModelSpec, ModelSpec
from sora_extend.errors import (
    InputError,
    MediaError,
    MissingKeyError,
    ProviderError,
    ResultExpiredError,
    TerminalProviderError,
    TransientProviderError,
)
from sora_extend.providers.base import GenerationRequest, Outcome, Provider, StateCallback, Submission
from sora_extend.providers.http import tls
from sora_extend.providers.polling import PollPacer
from sora_extend.settings import Settings

SERVER_FAILURES = {"internal_error", "server_error", "service_unavailable", "timeout", "rate_limit_exceeded"}


@contextmanager
def sora_deprecation_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The Sora API is scheduled", category=DeprecationWarning)
        yield


def classify(exc: openai.OpenAIError, *, model: str, request_id: str | None = None) -> ProviderError:
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        name = exc.code or exc.type or "error"
        reason = f"the videos API answered HTTP {code} ({name}): {exc.message}"
        if code in (401, 403):
            reason = f"the videos API rejected the key (HTTP {code}); check OPENAI_API_KEY"
        retry_after = exc.response.headers.get("retry-after")
        kind = TransientProviderError if code in (408, 409, 429) or code >= 500 else TerminalProviderError
        return kind(
            reason,
            provider="openai",
            model=model,
            request_id=request_id,
            status_code=code,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    return TransientProviderError(
        f"the videos API could not be reached: {type(exc).__name__}",
        provider="openai",
        model=model,
        request_id=request_id,
    )


class OpenAIVideosProvider(Provider):
    name = "openai"
    spec: ModelSpec

    def __init__(self, spec: ModelSpec | ImageModelSpec, settings: Settings) -> None:
        if not isinstance(spec, ModelSpec):
            raise InputError("keyframe_model", f"{spec.id}: the OpenAI-compatible videos API renders no stills")
        super().__init__(spec, settings)
        key = settings.videos_api_key or settings.openai_api_key
        if key is None:
            raise MissingKeyError("OPENAI_API_KEY", "openai-api-key", f"provider 'openai' (model {spec.id})")
        self.client = OpenAI(
            api_key=key.get_secret_value(),
            base_url=settings.openai_videos_base_url or settings.openai_base_url,
            timeout=settings.http_timeout_s,
            max_retries=2,
            http_client=DefaultHttpxClient(verify=tls()),
        )
        self._clients.append(self.client)
        self.wire_model = spec.wire_model or spec.id

    def endpoint_for(self, request: GenerationRequest) -> str:
        return "/videos/extensions" if request.mode == "extend" else "/videos"

    def _create(self, request: GenerationRequest) -> Any:
        # No SDK retries on a create: the API has no idempotency key, so a retried POST could pay twice.
        client = self.client.with_options(max_retries=0)
        seconds = str(request.seconds)
        if request.extend_request_id:
            allowed = self.spec.extend.duration.values if self.spec.extend else ()
            if request.seconds not in allowed:
                raise InputError("seconds", f"{request.seconds} is not allowed for an extension", allowed)
            body = {"prompt": request.prompt, "seconds": seconds, "video": {"id": request.extend_request_id}}
            # The SDK's videos.extend() insists on a file; the id form goes through the raw client.
            return client.post("/videos/extensions", body=body, cast_to=openai.types.Video)
        if request.seconds not in self.spec.duration.values:
            raise InputError(
                "seconds", f"{request.seconds} is not allowed for {self.spec.id}", self.spec.duration.values
            )
        arguments: dict[str, Any] = {
            "model": self.wire_model,
            "prompt": request.prompt,
            "seconds": seconds,
            "size": f"{request.width}x{request.height}",
        }
        if request.first_frame_png is not None:
            arguments["input_reference"] = ("handoff.png", request.first_frame_png, "image/png")
        return client.videos.create(**arguments)

    def submit(self, request: GenerationRequest) -> Submission:
        try:
            with sora_deprecation_silenced():
                video = self._create(request)
        except openai.APIStatusError as exc:
            raise classify(exc, model=self.spec.id) from None
        except openai.OpenAIError as exc:  # no answer: accepted or not is unknown
            error = classify(exc, model=self.spec.id)
            error.status_code = None
            raise error from None
        return Submission(
            provider=self.name, model=self.spec.id, endpoint=self.endpoint_for(request), request_id=video.id
        )

    def wait(self, submission: Submission, on_state: StateCallback, timeout_s: float) -> Outcome:
        deadline = time.monotonic() + timeout_s
        last = ""
        pacer = PollPacer(self.settings.poll_interval_s)
        while True:
            try:
                with sora_deprecation_silenced():
                    video = self.client.videos.retrieve(submission.request_id)
            except openai.OpenAIError as exc:
                raise classify(exc, model=self.spec.id, request_id=submission.request_id) from None
            if video.status != last:
                on_state(video.status, f"{video.progress}%" if video.status == "in_progress" else "")
                if video.status == "in_progress":
                    pacer.restart()
                last = video.status
            if video.status == "completed":
                return Outcome(request_id=video.id)
            if video.status == "failed":
                code = video.error.code if video.error else "unknown"
                message = video.error.message if video.error else ""
                kind = TransientProviderError if code in SERVER_FAILURES else TerminalProviderError
                raise kind(
                    f"generation failed ({code}): {message}",
                    provider=self.name,
                    model=self.spec.id,
                    request_id=video.id,
                    status_code=500 if code in SERVER_FAILURES else 400,
                    request_failed=True,
                )
            if time.monotonic() > deadline:
                raise self.still_waiting(submission, last, timeout_s)
            time.sleep(pacer.next_wait_s())

    def download(self, submission: Submission, outcome: Outcome, request: GenerationRequest, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        raw = dest.with_name(dest.name + ".download")
        try:
            with (
                sora_deprecation_silenced(),
                self.client.videos.with_streaming_response.download_content(
                    submission.request_id, variant="video"
                ) as response,
                open(raw, "wb") as handle,
            ):
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
        except openai.NotFoundError:
            raw.unlink(missing_ok=True)
            raise ResultExpiredError(
                "the video's content is gone (expired or deleted)",
                provider=self.name,
                model=self.spec.id,
                request_id=submission.request_id,
                status_code=404,
            ) from None
        except openai.OpenAIError as exc:
            raw.unlink(missing_ok=True)
            raise MediaError(f"the video download failed: {type(exc).__name__}") from exc
        raw.replace(dest)

    def extension_head_seconds(self, request: GenerationRequest) -> float:
        """The gateway extends the video it holds under the source id (every part so far, stitched), so
        that video's length is what precedes the new part."""
        try:
            with sora_deprecation_silenced():
                source = self.client.videos.retrieve(str(request.extend_request_id))
        except openai.OpenAIError as exc:
            raise classify(exc, model=self.spec.id, request_id=request.extend_request_id) from None
        return float(source.seconds)
