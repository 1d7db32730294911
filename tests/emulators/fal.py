"""A loopback emulator of fal.ai's queue, REST (upload token) and CDN hosts, for the real `fal_client`.

One base URL serves all three hosts: tests point `fal_client.client.QUEUE_URL_FORMAT` at `.url` and
`REST_URL` / `CDN_URL` at `.url` without the trailing slash. Endpoints, field names, types and allowed
values come from snapshots of fal's published schemas (tests/fixtures/fal_schemas, with their sources),
never from the project's catalogue: a catalogue row that disagrees with fal fails here as it would
there. Generations are rendered with the offline preview renderer from the moment a request leaves the
queue; a clip given a last image ends exactly on it; image endpoints return PNG stills; music endpoints
return the offline procedural score as AAC at 44.1 kHz, as long as the request asks (or as the video it
scores), answered in the shape the endpoint's published output schema gives.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import re
import tempfile
import threading
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jsonschema import Draft202012Validator

from sora_extend.media.frames import last_frame
from sora_extend.media.images import encode_png
from sora_extend.media.merge import JoinPlan, merge_videos
from sora_extend.media.probe import probe
from sora_extend.preview.still import render_still
from tests.emulators._common import (
    BackgroundRender,
    ClipJob,
    EmulatorBase,
    LoopbackServer,
    Request,
    Response,
    at_queue_exit,
    busy_interval,
    canonical_json,
    decode_data_uri,
    decode_image,
    json_response,
    render_clip,
    render_music,
    sha256_hex,
)
from tests.emulators.fal_schemas import EndpointSchema, FalSchemas, Reading, frame_size, music_seconds, read
from tests.emulators.faults import Fault, FaultBook, FaultKind
from tests.flaws_factory import spoil

ROUTE_FAULTS: dict[str, frozenset[FaultKind]] = {
    "submit": frozenset({"status", "reset", "stuck", "lost_answer", "slow_answer"}),
    "platform": frozenset({"status", "reset"}),
    "status": frozenset({"status", "reset"}),
    "result": frozenset({"status", "reset"}),
    "cancel": frozenset({"status", "reset"}),
    "download": frozenset({"status", "reset", "truncate", "expire"}),
    "upload": frozenset({"status", "reset"}),
    "generation": frozenset({"failed"}),
    "clip": frozenset({"flawed"}),  # video generations only (not stills)
}


STATS_PATH = "/_emulator/stats"
PLATFORM_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fal_platform"
# The Platform API's operations, validated against fal's documented query parameters.
PLATFORM_OPERATIONS = {
    operation: Draft202012Validator(json.loads((PLATFORM_FIXTURES / f"{fixture}.json").read_text("utf-8"))["request"])
    for operation, fixture in (("pricing", "pricing"), ("requests/by-endpoint", "requests_by_endpoint"))
}


def _query_values(query: dict[str, str]) -> dict[str, Any]:
    """Query strings as the documented types (limit is an integer)."""
    return {name: int(value) if name == "limit" and value.isdigit() else value for name, value in query.items()}


def render_plan(plan: _RenderPlan, out: Path) -> Path:
    """Make what a request asked for (module level, so a process pool can run it)."""
    if plan.still is not None:
        width, height = plan.still
        out = out.with_suffix(".png")
        out.write_bytes(encode_png(render_still(width, height, plan.seed, plan.base_image)))
        return out
    if plan.music_seconds is not None:
        return render_music(plan.music_seconds, plan.seed, out)
    assert plan.clip is not None
    if plan.source_video is None:
        render_clip(plan.clip, out, plan.last_frame)
        return spoil(out, plan.flaw, out, np.random.default_rng(plan.clip.seed)) if plan.flaw else out  # type: ignore[arg-type]
    # An extension answers with the whole extended video: the clip sent, then the new part after it.
    part = out.with_name(out.stem + "-part.mp4")
    render_clip(plan.clip, part, plan.last_frame)
    if plan.flaw:
        spoil(part, plan.flaw, part, np.random.default_rng(plan.clip.seed))  # type: ignore[arg-type]
    merge_videos([plan.source_video, part], out, [JoinPlan(transition="cut")])
    return out


def environment_for(url: str, key: str) -> dict[str, str]:
    """The settings that point this project (and the real fal_client) at an emulator serving `url`."""
    return {
        "FAL_KEY": key,
        "SORA_EXTEND_FAL_QUEUE_URL": url,
        "SORA_EXTEND_FAL_REST_URL": url.rstrip("/"),
        "SORA_EXTEND_FAL_CDN_URL": url.rstrip("/"),
        "SORA_EXTEND_FAL_PLATFORM_URL": f"{url}v1",
    }


@dataclass(frozen=True)
class FalSubmission:
    endpoint: str
    payload: dict[str, Any]  # data URIs replaced by "sha256:<hex of the decoded bytes>"
    request_id: str
    content_key: str  # sha256 of endpoint + canonical JSON of `payload`
    time: float  # wall clock
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # what was sent: the Platform API's json_input


@dataclass(frozen=True)
class _Failure:
    status: int
    body: dict[str, Any]
    error: str
    error_type: str


@dataclass
class _StoredFile:
    path: Path
    content_type: str


@dataclass
class _RenderPlan:
    clip: ClipJob | None = None  # a video
    source_video: Path | None = None  # extend: the clip to continue (output = source + new part)
    last_frame: Any = None  # the image the clip must end on
    still: tuple[int, int] | None = None  # an image: its size
    base_image: Any = None  # an image edit: the image it starts from
    music_seconds: float | None = None  # music: how long
    seed: int = 0
    flaw: str = ""  # a flaw the clip comes back with (an injected fault)


class _Invalid(Exception):
    """Request fields the model would reject with a 422 (fal's pydantic-style `detail` items)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__(details[0]["msg"])
        self.details = details

    @classmethod
    def field(cls, field: str, message: str, error_type: str = "value_error") -> _Invalid:
        return cls([{"loc": ["body", field], "msg": message, "type": error_type}])


@dataclass
class FalRequest:
    request_id: str
    endpoint: str
    app: str  # owner/alias: what the status/result/cancel URLs carry
    schema: EndpointSchema
    submitted: float  # monotonic
    queue_until: float
    done_at: float
    plan: _RenderPlan | None
    seed: int
    failure: _Failure | None = None
    cancelled: bool = False
    render: BackgroundRender = field(default_factory=BackgroundRender, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def video(self) -> Path | None:
        return self.render.path

    def state(self, now: float) -> str:
        if self.cancelled:
            return "COMPLETED"
        if now < self.queue_until:
            return "IN_QUEUE"
        # Completed once its time is up and its outcome exists (a slow render keeps it in progress).
        finished = self.failure is not None or self.render.done
        return "COMPLETED" if now >= self.done_at and finished else "IN_PROGRESS"

    def interval(self, now: float) -> tuple[float, float]:
        return busy_interval(self.queue_until, self.done_at, self.render, self.failure is not None, now)


class FalEmulator(EmulatorBase):
    """fal's queue + REST + CDN on one loopback port. Use as a context manager (or call `stop()`)."""

    def __init__(
        self,
        key: str = "fal-test-key",
        queue_seconds: float = 0.05,
        progress_seconds: float = 0.2,
        schemas: FalSchemas | None = None,
        *,
        progress_by_endpoint: dict[str, float] | None = None,
        render_pool: Executor | None = None,
        reject_invalid_at: Literal["submit", "result"] = "submit",
        refused_words: tuple[str, ...] = (),
    ) -> None:
        self.key = key
        self.queue_seconds = queue_seconds
        self.progress_seconds = progress_seconds
        # Endpoint prefix -> seconds in progress, e.g. stills faster than clips.
        self.progress_by_endpoint = dict(progress_by_endpoint or {})
        # Renders run on this pool when given (processes: a stand-in provider's work off this interpreter).
        self.render_pool = render_pool
        self.prices: dict[str, tuple[float, str]] = {}  # endpoint -> (unit price, unit) for the Platform API
        self.reject_invalid_at = reject_invalid_at
        # A moderation filter: a prompt with any of these words is accepted, then always ends failed.
        self.refused_words = refused_words
        self.schemas = schemas or FalSchemas.load()
        self._faults = FaultBook(ROUTE_FAULTS)
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="fal-emulator-"))
        self._files: dict[str, _StoredFile] = {}  # CDN name -> file
        self._expired: set[str] = set()
        self._cdn_tokens: set[str] = set()
        self._multipart: dict[str, dict[int, bytes]] = {}
        self._pending_blobs: dict[str, str] = {}  # storage-fallback name -> content type
        self._counter = itertools.count(1)
        self.requests: dict[str, FalRequest] = {}
        self.submissions: list[FalSubmission] = []
        self.rejections: list[dict[str, Any]] = []  # submits answered 422 (endpoint, payload, detail)
        self.flawed: dict[str, str] = {}  # request id -> the flaw its clip came back with (injected)
        self._server = LoopbackServer(self._handle)
        self.url = f"http://127.0.0.1:{self._server.port}/"
        self.rest_url = self.url.rstrip("/")  # for fal_client.client.REST_URL and CDN_URL

    # ------------------------------------------------------------------ lifecycle and test API

    def _jobs(self) -> list[Any]:
        return list(self.requests.values())

    @staticmethod
    def _prompt_of(submission: Any) -> str:
        return str(submission.payload.get("prompt", ""))

    def submissions_for(self, subject: str) -> list[FalSubmission]:
        """The submissions of one job: its prompts open with the subject, then the story bible (" | ")."""
        with self._lock:
            return [s for s in self.submissions if str(s.payload.get("prompt", "")).startswith(f"{subject} |")]

    def progress_for(self, endpoint: str) -> float:
        matches = [prefix for prefix in self.progress_by_endpoint if endpoint.startswith(prefix)]
        return self.progress_by_endpoint[max(matches, key=len)] if matches else self.progress_seconds

    def environment(self) -> dict[str, str]:
        """The settings that point this project (and the real fal_client) at the emulator."""
        return environment_for(self.url, self.key)

    def stats(self) -> dict[str, float]:
        """Counts, and how long its own rendering took (the part of a generation's time that is this
        machine's CPU, not the configured latency)."""
        with self._lock:
            renders = [r.render for r in self.requests.values() if r.render.finished_at and r.render.started_at]
        seconds = [render.finished_at - render.started_at for render in renders]  # type: ignore[operator]
        return {
            "submissions": len(self.submissions),
            "max_in_progress": self.max_in_progress,
            "render_s_max": round(max(seconds, default=0.0), 3),
        }

    def add_file(self, data: bytes, content_type: str, name: str | None = None) -> str:
        """Put a file on the emulated CDN directly; returns its URL (as an upload would)."""
        return self._store(data, content_type, name)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _route(request: Request) -> str:
        segments = request.segments
        if segments[:2] == ["v1", "models"]:
            return "platform"
        if segments[:1] == ["files"]:
            return "download" if request.method in ("GET", "HEAD") else "upload"
        if segments[:1] == ["storage"]:
            return "upload"
        if len(segments) >= 4 and segments[2] == "requests":
            if len(segments) == 5 and segments[4] == "status":
                return "status"
            return "cancel" if len(segments) == 5 and segments[4] == "cancel" else "result"
        return "submit"

    def _handle(self, request: Request) -> Response:
        if request.path == STATS_PATH:  # for a test or benchmark driving the emulator in another process
            return json_response(200, self.stats())
        route = self._route(request)
        fault = self._faults.take(route)
        if fault is not None and fault.kind == "reset":
            return Response(reset=True)
        if fault is not None and fault.kind == "status":
            return self._status_fault(fault)
        if route == "download":
            return self._download(request, fault)
        if route == "upload":
            return self._upload(request)
        denied = self._check_key(request)
        if denied is not None:
            return denied
        if route == "platform":
            return self._platform(request)
        if route == "submit":
            return self._submit(request, fault)
        return self._request_route(route, request)

    @staticmethod
    def _status_fault(fault: Fault) -> Response:
        # Gateway-level answers: no x-fal-request-id. A bare 502/503/504 looks like fal's nginx ingress
        # page (which fal_client retries); any other code is a JSON error fal_client raises at once.
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if fault.error_type:
            headers["X-Fal-Error-Type"] = fault.error_type
        if fault.body is not None:
            return json_response(fault.code, fault.body, headers)
        if fault.code in (502, 503, 504) and fault.error_type is None:
            page = f"<html><head><title>{fault.code}</title></head><body><center>nginx</center></body></html>"
            return Response(fault.code, page.encode(), {"Content-Type": "text/html", **headers})
        body: dict[str, Any] = {"detail": fault.code_name or f"Injected HTTP {fault.code}"}
        if fault.error_type:
            body["error_type"] = fault.error_type
        return json_response(fault.code, body, headers)

    def _check_key(self, request: Request) -> Response | None:
        if request.header("Authorization") == f"Key {self.key}":
            return None
        if request.header("Authorization") is None:
            return json_response(401, {"detail": "Authentication is required to access this application."})
        return json_response(401, {"detail": "No user found for Key ID and Secret"})

    # ------------------------------------------------------------------ queue: submit

    def _submit(self, request: Request, fault: Fault | None) -> Response:
        endpoint = "/".join(request.segments)
        if request.method != "POST":
            return json_response(405, {"detail": "Method Not Allowed"})
        if endpoint not in self.schemas:  # includes the retired models: fal deleted their endpoints
            return json_response(404, {"detail": f"Application '{endpoint}' not found"})
        request_id = str(uuid.uuid4())
        headers = {"x-fal-request-id": request_id}
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            detail = [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
            return json_response(422, {"detail": detail}, headers)
        schema = self.schemas[endpoint]
        try:
            plan, seed = self._plan(schema, payload)
            failure = None
        except _Invalid as exc:
            with self._lock:
                self.rejections.append({"endpoint": endpoint, "payload": _redact(payload), "detail": exc.details})
            if self.reject_invalid_at == "submit":
                return json_response(422, {"detail": exc.details}, headers)
            plan, seed = None, 0
            failure = _Failure(422, {"detail": exc.details}, exc.details[0]["msg"], "validation_error")
        flawed = self._faults.take("clip") if plan is not None and plan.clip is not None else None
        if flawed is not None and plan is not None:
            plan = dataclasses.replace(plan, flaw=flawed.flaw)
        generation = self._faults.take("generation")
        if generation is None and any(word in str(payload.get("prompt", "")) for word in self.refused_words):
            generation = Fault.failed(422, "content_policy_violation", "The prompt was flagged by the content checker.")
        if generation is not None:
            failure = _failure_from(generation)
        stuck = fault.seconds if fault is not None and fault.kind == "stuck" else 0.0
        entry = self._register(request_id, endpoint, schema, payload, plan, seed, failure, stuck)
        if flawed is not None:
            with self._lock:
                self.flawed[request_id] = flawed.flaw
        if fault is not None and fault.kind == "lost_answer":
            return Response(reset=True)  # accepted and queued: only the answer is lost
        if fault is not None and fault.kind == "slow_answer":
            time.sleep(fault.seconds)
        return json_response(200, self._queue_receipt(entry), headers)

    def _register(
        self,
        request_id: str,
        endpoint: str,
        schema: EndpointSchema,
        payload: dict[str, Any],
        plan: _RenderPlan | None,
        seed: int,
        failure: _Failure | None,
        stuck: float,
    ) -> FalRequest:
        now = time.monotonic()
        owner, alias = endpoint.split("/")[:2]
        entry = FalRequest(
            request_id=request_id,
            endpoint=endpoint,
            app=f"{owner}/{alias}",
            schema=schema,
            submitted=now,
            queue_until=now + self.queue_seconds + stuck,
            done_at=now + self.queue_seconds + stuck + self.progress_for(endpoint),
            plan=plan,
            seed=seed,
            failure=failure,
        )
        redacted = _redact(payload)
        content_key = sha256_hex(endpoint + canonical_json(redacted))
        with self._lock:
            self.requests[request_id] = entry
            self.submissions.append(FalSubmission(endpoint, redacted, request_id, content_key, time.time(), payload))
        at_queue_exit(entry.queue_until, lambda: self._advance(entry))
        return entry

    def _queue_receipt(self, entry: FalRequest) -> dict[str, Any]:
        # fal_client reads all four URLs; they carry owner/alias only, never the endpoint's sub-path.
        base = f"{self.url}{entry.app}/requests/{entry.request_id}"
        return {
            "request_id": entry.request_id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
            "queue_position": self._queue_position(entry),
        }

    def _queue_position(self, entry: FalRequest) -> int:
        """How many earlier requests are still queued (0-indexed, like fal)."""
        now = time.monotonic()
        with self._lock:
            queued = [r for r in self.requests.values() if r.state(now) == "IN_QUEUE"]
        return sum(1 for r in queued if r.submitted < entry.submitted)

    def _plan(self, schema: EndpointSchema, payload: dict[str, Any]) -> tuple[_RenderPlan, int]:
        """Validate the arguments against fal's published schema, then decide what to render (as fal's
        runner would read them); raises _Invalid with fal's 422 details."""
        details = self.schemas.validate(schema.endpoint, payload)
        if details:
            raise _Invalid(details)
        if not str(payload.get("prompt", "x")).strip():
            raise _Invalid.field("prompt", "prompt must be a non-empty string")
        reading = read(schema, payload)
        if schema.makes_audio:
            return self._music_plan(schema, payload, reading), reading.seed
        if reading.makes_images:
            return self._still_plan(reading, payload), reading.seed
        first = self._image(payload, reading.start_field) if reading.start_field else None
        for value in payload.get("image_urls") or []:  # reference-to-video: the subject's images must decode
            self._image_value(value, "image_urls")
        last = self._image(payload, reading.end_field) if reading.end_field else None
        source = self._source_video(payload, schema) if reading.source_field else None
        if source is not None:
            info = probe(source)
            assert info.video is not None  # _source_video checked it
            width, height, fps = info.video.width, info.video.height, round(info.video.fps) or 24
            first = last_frame(source)
        else:
            width, height = frame_size(reading, None if first is None else first.shape)
            fps = reading.fps
        clip = ClipJob(
            str(payload.get("prompt", "")),
            reading.seconds,
            width,
            height,
            fps,
            reading.seed,
            reading.audio,
            first,
            continuation=source is not None,
        )
        return _RenderPlan(clip=clip, source_video=source, last_frame=last), reading.seed

    def _music_plan(self, schema: EndpointSchema, payload: dict[str, Any], reading: Reading) -> _RenderPlan:
        video_seconds = None
        if reading.source_field:  # video-to-music: the video must be one fal could read
            video_seconds = probe(self._source_video(payload, schema)).duration
        return _RenderPlan(music_seconds=music_seconds(schema, payload, video_seconds), seed=reading.seed)

    def _still_plan(self, reading: Reading, payload: dict[str, Any]) -> _RenderPlan:
        images = [self._image_value(value, "image_urls") for value in payload.get("image_urls") or []]
        base = images[0] if images else None
        size = frame_size(reading, None if base is None else base.shape)
        return _RenderPlan(still=size, base_image=base, seed=reading.seed)

    def _image(self, payload: dict[str, Any], name: str) -> Any:
        return self._image_value(payload.get(name), name)

    def _image_value(self, value: Any, name: str) -> Any:
        try:
            return decode_image(self._media_value(value, name))
        except ValueError:
            raise _Invalid.field(name, "the file is not a decodable image") from None

    def _source_video(self, payload: dict[str, Any], schema: EndpointSchema) -> Path:
        data = self._media(payload, "video_url")
        path = self._dir / f"source-{uuid.uuid4().hex}.mp4"
        path.write_bytes(data)
        try:
            info = probe(path)
            if info.video is None:
                raise ValueError("no video stream")
        except Exception as exc:
            raise _Invalid.field("video_url", f"the file is not a readable video: {exc}") from None
        limit = (schema.extension or {}).get("max_input_seconds")
        if limit is not None and info.duration > limit + 0.05:
            raise _Invalid.field(
                "video_url", f"input videos up to {limit} seconds in length (got {info.duration:.2f} s)"
            )
        return path

    def _media(self, payload: dict[str, Any], name: str) -> bytes:
        return self._media_value(payload.get(name), name)

    def _media_value(self, value: Any, name: str) -> bytes:
        if value is None:
            raise _Invalid.field(name, "field required", "missing")
        if not isinstance(value, str):
            raise _Invalid.field(name, "value is not a valid URL")
        try:
            data = decode_data_uri(value)
        except (ValueError, UnicodeEncodeError):
            raise _Invalid.field(name, "invalid data URI") from None
        if data is not None:
            return data
        stored = self._cdn_file(value)
        if stored is None:
            raise _Invalid.field(name, f"Failed to download the file from {value!r}", "file_download_error")
        return stored.path.read_bytes()

    def _cdn_file(self, url: str) -> _StoredFile | None:
        prefix = f"{self.url}files/"
        if not url.startswith(prefix):
            return None
        name = url[len(prefix) :].split("?")[0]
        with self._lock:
            return None if name in self._expired else self._files.get(name)

    # ------------------------------------------------------------------ queue: status, result, cancel

    def _request_route(self, route: str, request: Request) -> Response:
        segments = request.segments
        app, request_id = f"{segments[0]}/{segments[1]}", segments[3]
        with self._lock:
            entry = self.requests.get(request_id)
        if entry is None or entry.app != app:
            return json_response(404, {"detail": f"Request {request_id} not found"})
        headers = {"x-fal-request-id": request_id}
        if route == "status" and request.method == "GET":
            return json_response(200, self._status_body(entry, request.query.get("logs", "0")), headers)
        if route == "result" and request.method == "GET" and len(segments) == 4:
            return self._result(entry, headers)
        if route == "cancel" and request.method == "PUT":
            return self._cancel(entry, headers)
        return json_response(405, {"detail": "Method Not Allowed"}, headers)

    def _advance(self, entry: FalRequest) -> str:
        """The request's state now; its render starts in the background the first time it is in progress."""
        with entry.lock:
            if entry.state(time.monotonic()) != "IN_QUEUE" and entry.failure is None and entry.plan is not None:
                plan, out = entry.plan, self._dir / f"{entry.request_id}.mp4"
                entry.render.ensure(lambda: self._render(plan, out))
            if entry.render.error is not None and entry.failure is None:
                # A render bug looks like a runner crash to the client, and stays visible to the test.
                message = f"render failed: {entry.render.error!r}"
                self._server.errors.append(f"{entry.request_id}: {message}")
                entry.failure = _Failure(
                    500, {"detail": message, "error_type": "runner_disconnected"}, message, "runner_disconnected"
                )
            return entry.state(time.monotonic())

    def _render(self, plan: _RenderPlan, out: Path) -> Path:
        if self.render_pool is None:
            return render_plan(plan, out)
        return self.render_pool.submit(render_plan, plan, out).result()

    def _status_body(self, entry: FalRequest, logs_param: str) -> dict[str, Any]:
        state = self._advance(entry)
        with_logs = logs_param.lower() in ("1", "true")
        body: dict[str, Any] = {"status": state, "request_id": entry.request_id}
        body["response_url"] = f"{self.url}{entry.app}/requests/{entry.request_id}"
        if state == "IN_QUEUE":
            body["queue_position"] = self._queue_position(entry)
            return body
        stamp = datetime.now(UTC).isoformat()
        lines = [{"message": f"Generating {entry.endpoint}", "level": "INFO", "source": "user", "timestamp": stamp}]
        body["logs"] = lines if with_logs else None
        if state == "COMPLETED":
            body["metrics"] = {"inference_time": round(max(0.0, entry.done_at - entry.queue_until), 3)}
            if entry.failure is not None:
                body["error"], body["error_type"] = entry.failure.error, entry.failure.error_type
        return body

    def _result(self, entry: FalRequest, headers: dict[str, str]) -> Response:
        if self._advance(entry) != "COMPLETED":
            return json_response(400, {"detail": "Request is still in progress"}, headers)
        if entry.failure is not None:
            failure_headers = dict(headers)
            if entry.failure.status != 422:
                failure_headers["X-Fal-Error-Type"] = entry.failure.error_type
            return json_response(entry.failure.status, entry.failure.body, failure_headers)
        assert entry.video is not None
        # Each fetch mints a fresh URL for the same bytes, like signed CDN links.
        is_image = entry.video.suffix == ".png"
        name = f"{uuid.uuid4().hex}{entry.video.suffix}"
        content_type = {".png": "image/png", ".m4a": "audio/mp4"}.get(entry.video.suffix, "video/mp4")
        with self._lock:
            self._files[name] = _StoredFile(entry.video, content_type)
        media = {
            "url": f"{self.url}files/{name}",
            "content_type": content_type,
            "file_name": f"{entry.request_id}{entry.video.suffix}",
            "file_size": entry.video.stat().st_size,
        }
        if entry.schema.makes_audio:
            return json_response(200, self._music_answer(entry, media), headers)
        if is_image:
            height, width = decode_image(entry.video.read_bytes()).shape[:2]
            return json_response(
                200, {"images": [media | {"width": width, "height": height}], "description": ""}, headers
            )
        return json_response(200, {"video": media, "seed": entry.seed}, headers)

    def _music_answer(self, entry: FalRequest, media: dict[str, Any]) -> dict[str, Any]:
        """The answer in the shape the endpoint's published output schema gives (one of fal's file types,
        or its richer Audio type), checked against that schema before it is sent."""
        assert entry.video is not None
        audio = media
        if "bitrate" in entry.schema.output["properties"]["audio"].get("properties", {}):
            info = probe(entry.video)
            assert info.audio is not None
            audio = media | {
                "bitrate": round(8 * media["file_size"] / max(info.duration, 1e-3)),
                "channels": info.audio.channels,
                "codec": info.audio.codec,
                "container": "mp4",
                "duration": round(info.duration, 3),
                "media_type": "audio",
                "sample_rate": info.audio.sample_rate,
            }
        answer: dict[str, Any] = {"audio": audio}
        if "audios" in entry.schema.output["properties"]:
            answer["audios"] = [audio]
        if "seed" in entry.schema.output.get("required", []):
            answer["seed"] = entry.seed
        problems = list(Draft202012Validator(entry.schema.output).iter_errors(answer))
        assert not problems, f"the emulator's answer breaks {entry.endpoint}'s output schema: {problems[0].message}"
        return answer

    # ------------------------------------------------------------------ Platform API (api.fal.ai/v1)

    def _platform(self, request: Request) -> Response:
        name = "/".join(request.segments[2:])
        if request.method != "GET" or name not in PLATFORM_OPERATIONS:
            return json_response(404, {"detail": "Not Found"})
        problems = sorted(PLATFORM_OPERATIONS[name].iter_errors(_query_values(request.query)), key=str)
        if problems:
            detail = [
                {"loc": ["query", *map(str, e.absolute_path)], "msg": e.message, "type": "value_error"}
                for e in problems
            ]
            return json_response(422, {"detail": detail})
        if name == "pricing":
            return self._pricing(request.query["endpoint_id"].split(","))
        return self._requests_by_endpoint(request.query)

    def _pricing(self, endpoints: list[str]) -> Response:
        with self._lock:
            known = {endpoint: self.prices[endpoint] for endpoint in endpoints if endpoint in self.prices}
        prices = [
            {"endpoint_id": endpoint, "unit_price": price, "unit": unit, "currency": "USD"}
            for endpoint, (price, unit) in known.items()
        ]
        return json_response(200, {"prices": prices, "next_cursor": None, "has_more": False})

    def _requests_by_endpoint(self, query: dict[str, str]) -> Response:
        start = datetime.fromisoformat(query["start"].replace("Z", "+00:00")) if "start" in query else None
        since = start.timestamp() if start else time.time() - 24 * 3600
        payloads = query.get("expand") == "payloads"
        with self._lock:
            mine = [s for s in self.submissions if s.endpoint == query["endpoint_id"] and s.time >= since]
        offset = int(base64.b64decode(query["cursor"]).decode()) if query.get("cursor") else 0
        limit = int(query.get("limit", 50))
        page = mine[offset : offset + limit]
        more = offset + limit < len(mine)
        items = [
            {
                "request_id": s.request_id,
                "endpoint_id": s.endpoint,
                "sent_at": datetime.fromtimestamp(s.time, UTC).isoformat().replace("+00:00", "Z"),
                "started_at": None,
                "ended_at": None,
                "status_code": None,
                "duration": None,
                **({"json_input": s.raw, "json_output": None} if payloads else {}),
            }
            for s in page
        ]
        cursor = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return json_response(200, {"items": items, "next_cursor": cursor, "has_more": more})

    def _cancel(self, entry: FalRequest, headers: dict[str, str]) -> Response:
        with entry.lock:
            if entry.state(time.monotonic()) == "COMPLETED":
                return json_response(400, {"status": "ALREADY_COMPLETED"}, headers)
            entry.cancelled = True
            entry.done_at = min(entry.done_at, time.monotonic())
            entry.failure = _Failure(
                400, {"detail": "Request was cancelled"}, "Request was cancelled", "request_cancelled"
            )
        return json_response(202, {"status": "CANCELLATION_REQUESTED"}, headers)

    # ------------------------------------------------------------------ CDN download and uploads

    def _download(self, request: Request, fault: Fault | None) -> Response:
        name = "/".join(request.segments[1:])
        with self._lock:
            expired = name in self._expired
            stored = None if expired else self._files.get(name)
            if stored is not None and fault is not None and fault.kind == "expire":
                self._expired.add(name)
                stored = None
        if stored is None:
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        data = stored.path.read_bytes()
        if fault is not None and fault.kind == "truncate":
            data = data[: int(len(data) * fault.fraction)]
        return Response(200, data, {"Content-Type": stored.content_type, "Cache-Control": "max-age=604800"})

    def _store(self, data: bytes, content_type: str, name: str | None = None) -> str:
        name = f"{uuid.uuid4().hex[:12]}_{_safe_name(name)}" if name else _generated_name(content_type)
        path = self._dir / f"upload-{next(self._counter)}-{Path(name).name}"
        path.write_bytes(data)
        with self._lock:
            self._files[name] = _StoredFile(path, content_type)
        return f"{self.url}files/{name}"

    def _upload(self, request: Request) -> Response:
        segments, method = request.segments, request.method
        if segments == ["storage", "auth", "token"] and method == "POST":
            return self._check_key(request) or self._issue_cdn_token()
        if segments == ["storage", "upload", "initiate"] and method == "POST":
            return self._check_key(request) or self._initiate_storage_upload(request)
        if segments[:2] == ["storage", "blob"] and method == "PUT":
            return self._finish_storage_upload("/".join(segments[2:]), request.body)
        denied = self._check_cdn_token(request)
        if denied is not None:
            return denied
        content_type = request.header("Content-Type") or "application/octet-stream"
        if segments == ["files", "upload"] and method == "POST":
            return json_response(
                200, {"access_url": self._store(request.body, content_type, request.header("X-Fal-File-Name"))}
            )
        if segments == ["files", "upload", "multipart"] and method == "POST":
            name = f"{uuid.uuid4().hex[:12]}_{_safe_name(request.header('X-Fal-File-Name') or 'upload.bin')}"
            upload_id = uuid.uuid4().hex
            with self._lock:
                self._multipart[upload_id] = {}
                self._pending_blobs[upload_id] = content_type
            return json_response(200, {"access_url": f"{self.url}files/{name}", "uploadId": upload_id})
        if len(segments) >= 4 and segments[-3] == "multipart" and method == "PUT":
            return self._upload_part(segments[-2], segments[-1], request.body)
        if len(segments) >= 4 and segments[-3] == "multipart" and segments[-1] == "complete" and method == "POST":
            return self._complete_multipart("/".join(segments[1:-3]), segments[-2], request)
        return json_response(404, {"detail": "Not Found"})

    def _issue_cdn_token(self) -> Response:
        token = uuid.uuid4().hex
        with self._lock:
            self._cdn_tokens.add(token)
        expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        # base_url has no trailing slash: fal_client appends "/files/upload/multipart" to it.
        return json_response(
            200, {"token": token, "token_type": "Bearer", "base_url": self.rest_url, "expires_at": expires}
        )

    def _check_cdn_token(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        with self._lock:
            valid = scheme == "Bearer" and token in self._cdn_tokens
        return None if valid else json_response(401, {"detail": "Invalid or missing CDN token"})

    def _initiate_storage_upload(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            body = {}
        file_name = body.get("file_name", "upload.bin") if isinstance(body, dict) else "upload.bin"
        content_type = body.get("content_type", "application/octet-stream") if isinstance(body, dict) else ""
        name = f"{uuid.uuid4().hex[:12]}_{_safe_name(file_name)}"
        with self._lock:
            self._pending_blobs[name] = content_type or "application/octet-stream"
        return json_response(
            200, {"upload_url": f"{self.url}storage/blob/{name}", "file_url": f"{self.url}files/{name}"}
        )

    def _finish_storage_upload(self, name: str, data: bytes) -> Response:
        with self._lock:
            content_type = self._pending_blobs.pop(name, None)
        if content_type is None:
            return Response(403, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"})
        path = self._dir / f"upload-{next(self._counter)}-{Path(name).name}"
        path.write_bytes(data)
        with self._lock:
            self._files[name] = _StoredFile(path, content_type)
        return Response(200, b"", {})

    def _upload_part(self, upload_id: str, number: str, data: bytes) -> Response:
        with self._lock:
            parts = self._multipart.get(upload_id)
            if parts is None or not number.isdigit():
                return json_response(404, {"detail": "Unknown upload"})
            parts[int(number)] = data
        return Response(200, b"", {"ETag": f'"{sha256_hex(data)[:32]}"'})

    def _complete_multipart(self, name: str, upload_id: str, request: Request) -> Response:
        try:
            listed = [int(part["partNumber"]) for part in request.json()["parts"]]
        except (ValueError, KeyError, TypeError):
            return json_response(400, {"detail": "invalid parts list"})
        with self._lock:
            parts = self._multipart.pop(upload_id, None)
            content_type = self._pending_blobs.pop(upload_id, "application/octet-stream")
        if parts is None or sorted(listed) != sorted(parts):
            return json_response(400, {"detail": "parts do not match the upload"})
        path = self._dir / f"upload-{next(self._counter)}-{Path(name).name}"
        path.write_bytes(b"".join(parts[n] for n in sorted(parts)))
        with self._lock:
            self._files[name] = _StoredFile(path, content_type)
        return json_response(200, {"access_url": f"{self.url}files/{name}"})


def _failure_from(fault: Fault) -> _Failure:
    error_type = fault.error_type or "internal_error"
    if fault.code == 422:
        detail = [{"loc": ["body", "prompt"], "msg": fault.message, "type": error_type}]
        return _Failure(422, {"detail": detail}, fault.message, error_type)
    return _Failure(fault.code, {"detail": fault.message, "error_type": error_type}, fault.message, error_type)


def _redact(value: Any) -> Any:
    """The payload with each data URI replaced by the sha256 of its decoded bytes (for bookkeeping)."""
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    if isinstance(value, str) and value.startswith("data:"):
        try:
            data = decode_data_uri(value)
        except (ValueError, UnicodeEncodeError):
            data = None
        return f"sha256:{sha256_hex(data if data is not None else value)}"
    return value


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name)
    return cleaned or "upload.bin"


def _generated_name(content_type: str) -> str:
    extensions = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "video/mp4": ".mp4"}
    return f"{uuid.uuid4().hex}{extensions.get(content_type.split(';')[0].strip(), '.bin')}"
