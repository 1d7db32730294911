"""fal.ai's queue protocol, driven entirely by the catalogue row.

Submit is one HTTP POST, never retried (fal has no idempotency key); it returns a request id at once
(recorded by the caller before any polling). Status, result and cancel go through the real `fal_client`
(its retries of those GETs cost nothing) and are rebuilt from the id, so another process can resume a
request. A submit whose answer was lost is found again in fal's request list (`find_submission`). fal
reports a failed request as COMPLETED with an `error`, then answers the result fetch with the error's
HTTP status: there is no FAILED status.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import fal_client
import fal_client.client as fal_wire
import httpx

from sora_extend.catalogue import ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.errors import (
    InputError,
    MissingKeyError,
    ProviderError,
    TerminalProviderError,
    TransientProviderError,
)
from sora_extend.ledger import utcnow
from sora_extend.media.images import image_type
from sora_extend.providers.base import GenerationRequest, Outcome, Provider, StateCallback, Submission
from sora_extend.providers.fal_platform import requests_since, same_input
from sora_extend.providers.http import one_attempt, stream_to_file, tls
from sora_extend.providers.polling import PollPacer
from sora_extend.settings import Settings

DATA_URI_LIMIT = 10 * 1024 * 1024  # fal decodes data URIs up to about 10 MiB; larger frames are uploaded
TRANSIENT_STATUS = {408, 409, 429}
MAX_POLL_ERRORS = 5  # consecutive failed status polls tolerated in place before the attempt fails


def configure_endpoints(settings: Settings) -> None:
    """Point fal_client at the configured hosts. fal_client reads these module globals at call time
    (its env variables only at import, and always with https://), so plain-http gateways work too."""
    fal_wire.QUEUE_URL_FORMAT = settings.fal_queue_url.rstrip("/") + "/"
    fal_wire.REST_URL = settings.fal_rest_url.rstrip("/")
    fal_wire.CDN_URL = settings.fal_cdn_url.rstrip("/")


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", [])[1:]) or "request"
                parts.append(f"{where}: {item.get('msg', '')} [{item.get('type', 'error')}]")
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def classify(
    response: httpx.Response, *, model: str, request_id: str | None = None, failed: bool = False
) -> ProviderError:
    """An error answer from fal. Transient: 408/409/429 and 5xx (fal never bills those). Terminal:
    validation, content policy, auth, unknown or removed endpoints. `failed` marks a request fal already
    finished unsuccessfully."""
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
    error_type = (body.get("error_type") if isinstance(body, dict) else None) or response.headers.get(
        "x-fal-error-type"
    )
    reason = f"fal answered HTTP {code}: {_detail_text(detail)}"
    if error_type and error_type not in reason:
        reason += f" ({error_type})"
    if code in (401, 403):
        reason = f"fal rejected the API key (HTTP {code}); check FAL_KEY"
    retry_after = response.headers.get("retry-after")
    kind = TransientProviderError if code in TRANSIENT_STATUS or code >= 500 else TerminalProviderError
    return kind(
        reason,
        provider="fal",
        model=model,
        request_id=request_id,
        status_code=code,
        retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
        request_failed=failed,
    )


@lru_cache(maxsize=4)
def sdk_client(key: str, timeout_s: float) -> fal_client.SyncClient:
    """fal_client's client for a key, one per process: it builds its HTTP client (and TLS context) on first
    use, and every piece of every run then shares them (it is thread-safe)."""
    return fal_client.SyncClient(key=key, default_timeout=timeout_s)


class FalProvider(Provider):
    name = "fal"

    def __init__(self, spec: ModelSpec | ImageModelSpec | MusicModelSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        if settings.fal_key is None:
            raise MissingKeyError("FAL_KEY", "fal-key", f"provider 'fal' (model {spec.id})")
        configure_endpoints(settings)
        key = settings.fal_key.get_secret_value()
        self.client = sdk_client(key, settings.http_timeout_s)
        self.downloads = httpx.Client(timeout=settings.http_timeout_s, follow_redirects=True, verify=tls())
        self.submits = httpx.Client(
            timeout=settings.http_timeout_s, headers={"Authorization": f"Key {key}"}, verify=tls()
        )
        self._clients += [self.downloads, self.submits]

    # ------------------------------------------------------------------ request mapping

    def endpoint_for(self, request: GenerationRequest) -> str:
        spec = self.spec
        if isinstance(spec, MusicModelSpec):
            return spec.endpoint
        endpoint = spec.endpoint(request.mode) if isinstance(spec, ModelSpec) else getattr(spec.endpoints, request.mode)
        if not endpoint:
            raise InputError("model", f"{spec.id} has no {request.mode.replace('_', '-')} endpoint")
        return str(endpoint)

    def arguments(self, request: GenerationRequest) -> dict[str, Any]:
        """The model's own fields for a generic request; refuses values the model does not allow."""
        if isinstance(self.spec, ImageModelSpec):
            return self._image_arguments(self.spec, request)
        if isinstance(self.spec, MusicModelSpec):
            return self._music_arguments(self.spec, request)
        spec, mode = self.spec, request.mode
        if request.aspect not in spec.aspects:
            raise InputError("aspect", f"{request.aspect} is not allowed for {spec.id}", spec.aspects)
        if request.resolution not in spec.resolutions:
            raise InputError("resolution", f"{request.resolution} is not allowed for {spec.id}", spec.resolutions)
        duration = spec.extend.duration if mode == "extend" and spec.extend else spec.duration
        if request.seconds not in duration.values:
            raise InputError("seconds", f"{request.seconds} is not allowed for {spec.id} ({mode})", duration.values)
        arguments: dict[str, Any] = {**spec.defaults, "prompt": request.prompt}
        if spec.sends(mode, "duration"):
            arguments[duration.field] = duration.to_wire(request.seconds)
        if spec.aspect_field and spec.sends(mode, "aspect"):
            arguments[spec.aspect_field] = request.aspect
        if spec.resolution_field and spec.sends(mode, "resolution"):
            arguments[spec.resolution_field] = spec.resolutions[request.resolution]
        if spec.audio_field and spec.sends(mode, "audio"):
            arguments[spec.audio_field] = request.audio
        if spec.seed_field and request.seed is not None and spec.sends(mode, "seed"):
            arguments[spec.seed_field] = request.seed
        if mode == "extend":
            assert spec.extend is not None and spec.extend.video_field and request.source_video is not None
            arguments[spec.extend.video_field] = self._video_reference(request.source_video)
        if mode == "reference_to_video":
            assert spec.reference is not None
            arguments[spec.reference.images_field] = [self._image_reference(image) for image in request.references]
        if request.first_frame_png is not None:
            start_field = spec.first_frame_field if spec.endpoints.first_last_frame and request.last_frame_png else None
            start_field = start_field or spec.image_field
            if not start_field:
                raise InputError("model", f"{spec.id} takes no start image")
            arguments[start_field] = self._image_reference(request.first_frame_png)
        if request.last_frame_png is not None:
            if not spec.last_frame_field:
                raise InputError("model", f"{spec.id} takes no end image")
            arguments[spec.last_frame_field] = self._image_reference(request.last_frame_png)
        return arguments

    def _image_arguments(self, spec: ImageModelSpec, request: GenerationRequest) -> dict[str, Any]:
        if request.aspect not in spec.aspects:
            raise InputError("aspect", f"{request.aspect} is not allowed for {spec.id}", spec.aspects)
        arguments: dict[str, Any] = {**spec.defaults, "prompt": request.prompt}
        if spec.aspect_field:
            arguments[spec.aspect_field] = request.aspect
        if spec.resolution_field:
            arguments[spec.resolution_field] = request.resolution
        if spec.seed_field and request.seed is not None:
            arguments[spec.seed_field] = request.seed
        if spec.format_field:
            arguments[spec.format_field] = spec.output_format
        inputs = (*request.images, *request.references)
        if inputs:
            if not spec.images_field or len(inputs) > spec.max_images:
                raise InputError("keyframe_model", f"{spec.id} takes at most {spec.max_images} input image(s)")
            arguments[spec.images_field] = [self._image_reference(image) for image in inputs]
        return arguments

    def _music_arguments(self, spec: MusicModelSpec, request: GenerationRequest) -> dict[str, Any]:
        length = spec.length
        if not length.min_s <= request.seconds <= length.max_s:
            raise InputError(
                "soundtrack_model",
                f"{spec.id} makes {length.min_s:g}-{length.max_s:g} s of music, not {request.seconds} s",
            )
        arguments: dict[str, Any] = {**spec.defaults, spec.prompt_field: request.prompt}
        if length.field:
            arguments[length.field] = length.to_wire(request.seconds)
        if spec.seed_field and request.seed is not None:
            arguments[spec.seed_field] = request.seed
        if request.mode == "video_to_music":
            assert spec.video_field and request.source_video is not None
            arguments[spec.video_field] = self._video_reference(request.source_video)
        return arguments

    def _image_reference(self, image: bytes) -> str:
        kind = image_type(image)
        if self.spec.image_transport == "data_uri" and len(image) <= DATA_URI_LIMIT:
            return fal_client.encode(image, kind)
        return self._upload(image, kind)

    def _video_reference(self, clip: Path) -> str:
        return self._upload(clip.read_bytes(), "video/mp4")

    def _upload(self, data: bytes, content_type: str) -> str:
        """A file on fal's CDN (videos to extend, and images where a model wants URLs)."""
        name = "clip.mp4" if content_type == "video/mp4" else "image." + content_type.rsplit("/", 1)[-1]
        try:
            return str(self.client.upload(data, content_type, file_name=name))
        except fal_client.FalClientHTTPError as exc:
            raise classify(exc.response, model=self.spec.id) from None
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"uploading an input file failed: {type(exc).__name__}", provider=self.name, model=self.spec.id
            ) from None

    # ------------------------------------------------------------------ queue protocol

    def submit(self, request: GenerationRequest) -> Submission:
        """One HTTP attempt, never retried here: fal has no idempotency key, and fal_client's own submit
        retries transport errors, which queues (and bills) a second generation when only the answer was
        lost. An unknown outcome is reported as such, for the caller to look the request up."""
        endpoint = self.endpoint_for(request)
        arguments = self.arguments(request)
        started = utcnow()
        with one_attempt(f"fal's {endpoint}", provider=self.name, model=self.spec.id, started=started):
            response = self.submits.post(fal_wire.QUEUE_URL_FORMAT + endpoint, json=arguments)
        if response.status_code >= 400:
            raise classify(response, model=self.spec.id)
        return Submission(
            provider=self.name,
            model=self.spec.id,
            endpoint=endpoint,
            request_id=str(response.json()["request_id"]),
            submitted_at=started,
        )

    def find_submission(
        self, request: GenerationRequest, since: datetime, request_id: str | None = None
    ) -> Submission | None:
        """The request fal received with exactly this request's arguments since `since`, if it lists one;
        raises PlatformUnavailable when the list cannot be read."""
        endpoint = self.endpoint_for(request)
        sent = self.arguments(request)
        for listed in requests_since(self.settings, endpoint, since):
            if same_input(sent, listed.json_input):
                return Submission(
                    provider=self.name,
                    model=self.spec.id,
                    endpoint=endpoint,
                    request_id=listed.request_id,
                    submitted_at=listed.sent_at or since,
                )
        return None

    def _handle(self, submission: Submission) -> fal_client.SyncRequestHandle:
        return self.client.get_handle(submission.endpoint, submission.request_id)

    def wait(self, submission: Submission, on_state: StateCallback, timeout_s: float) -> Outcome:
        handle = self._handle(submission)
        deadline = time.monotonic() + timeout_s
        last = ""
        poll_errors = 0
        pacer = PollPacer(self.settings.poll_interval_s)
        while True:
            try:
                status = handle.status(with_logs=False)
                poll_errors = 0
            except (fal_client.FalClientHTTPError, httpx.HTTPError) as exc:
                error = self._poll_error(exc, submission)
                poll_errors += 1
                if isinstance(error, TerminalProviderError) or poll_errors > MAX_POLL_ERRORS:
                    raise error from None
                time.sleep(max(self.settings.poll_interval_s * 2**poll_errors, error.retry_after or 0.0))
                continue
            state = type(status).__name__.upper()
            if state != last:
                detail = f"position {status.position}" if isinstance(status, fal_client.Queued) else ""
                on_state({"QUEUED": "IN_QUEUE", "INPROGRESS": "IN_PROGRESS"}.get(state, state), detail)
                if isinstance(status, fal_client.InProgress):
                    pacer.restart()
                last = state
            if isinstance(status, fal_client.Completed):
                return self._result(submission, failed=status.error is not None, error=status.error or "")
            if time.monotonic() > deadline:
                raise self.still_waiting(submission, last, timeout_s)
            time.sleep(pacer.next_wait_s())

    def _poll_error(self, exc: Exception, submission: Submission) -> ProviderError:
        """A failed status poll says nothing about the request itself: never a failed request."""
        if isinstance(exc, fal_client.FalClientHTTPError):
            return classify(exc.response, model=self.spec.id, request_id=submission.request_id)
        return TransientProviderError(
            f"polling failed: {type(exc).__name__}",
            provider=self.name,
            model=self.spec.id,
            request_id=submission.request_id,
        )

    def _result(self, submission: Submission, failed: bool = False, error: str = "") -> Outcome:
        """Fetch the result of a COMPLETED request. `failed`: fal reported COMPLETED with an error, so the
        result fetch answers with that error, and only then does an error mean the request itself failed."""
        try:
            result = self._handle(submission).get()
        except fal_client.FalClientHTTPError as exc:
            from_status_poll = exc.response.request.url.path.endswith("/status")
            raise classify(
                exc.response,
                model=self.spec.id,
                request_id=submission.request_id,
                failed=failed and not from_status_poll,
            ) from None
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"fetching the result failed: {type(exc).__name__}",
                provider=self.name,
                model=self.spec.id,
                request_id=submission.request_id,
            ) from None
        if failed:  # COMPLETED + error but the result fetch did not raise: still a failed request
            raise TransientProviderError(
                f"fal finished the request with an error: {error}",
                provider=self.name,
                model=self.spec.id,
                request_id=submission.request_id,
                request_failed=True,
            )
        try:
            # Video endpoints answer {"video": {"url"}}, music endpoints {"audio": {"url"}}, image endpoints
            # {"images": [{"url"}, ...]}.
            media = result.get("video") or result.get("audio") or result["images"][0]
            url = str(media["url"])
        except (KeyError, IndexError, TypeError):
            raise TerminalProviderError(
                f"the result has no media url: {str(result)[:200]}",
                provider=self.name,
                model=self.spec.id,
                request_id=submission.request_id,
                request_failed=True,
            ) from None
        return Outcome(request_id=submission.request_id, media_url=url)

    def refresh(self, submission: Submission) -> Outcome:
        return self._result(submission)

    def download(self, submission: Submission, outcome: Outcome, request: GenerationRequest, dest: Path) -> None:
        assert outcome.media_url is not None
        stream_to_file(self.downloads, outcome.media_url, dest, provider=self.name, request_id=submission.request_id)
