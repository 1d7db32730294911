"""A loopback emulator of OpenAI's `/v1/videos` API (and gateways that mimic it) plus a chat model on
`/v1/chat/completions` and `/v1/responses`, for the real `openai` SDK.

Videos are rendered with the offline preview renderer once out of the queue; extensions are stitched (source
clip, then a new part seeded with its last frame), as OpenAI documents. Every chat request is validated against
a snapshot of OpenAI's published request schema (tests/fixtures/openai, with its source and date). The
planner answers with a deterministic plan shaped by whatever JSON schema the request carries, so
`.parse()` works; a request with images (the clip judge) gets the next answer a test queued in
`vision_answers`, shaped the same way, and is billed image tokens by OpenAI's documented patch rule.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jsonschema import Draft202012Validator

from sora_extend.media.frames import last_frame
from sora_extend.media.merge import JoinPlan, merge_videos
from sora_extend.media.probe import probe
from tests.emulators._common import (
    BackgroundRender,
    ClipJob,
    EmulatorBase,
    LoopbackServer,
    Part,
    Request,
    Response,
    at_queue_exit,
    busy_interval,
    canonical_json,
    decode_data_uri,
    decode_image,
    json_response,
    parse_multipart,
    render_clip,
    sha256_hex,
    spritesheet_jpeg,
    thumbnail_jpeg,
)
from tests.emulators.faults import Fault, FaultBook, FaultKind

CHAT_SNAPSHOT = Path(__file__).resolve().parent.parent / "fixtures" / "openai" / "create_chat_completion_request.json"
CHAT_REQUEST = Draft202012Validator(json.loads(CHAT_SNAPSHOT.read_text("utf-8"))["schema"])
# OpenAI's image tokens (platform.openai.com/docs/guides/images-vision): 32 px patches, at most 1536, times a
# per-model multiplier; a model not listed here counts its patches as they are.
PATCH, MAX_PATCHES = 32, 1536
PATCH_MULTIPLIER = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "gpt-5-mini": 1.2, "gpt-5-nano": 1.5, "o4-mini": 1.72}

ROUTE_FAULTS: dict[str, frozenset[FaultKind]] = {
    "create": frozenset({"status", "reset", "stuck"}),
    "retrieve": frozenset({"status", "reset"}),
    "list": frozenset({"status", "reset"}),
    "delete": frozenset({"status", "reset"}),
    "content": frozenset({"status", "reset", "truncate"}),
    "generation": frozenset({"failed"}),
    "chat": frozenset({"status", "reset", "bad_plan"}),
    "responses": frozenset({"status", "reset", "bad_plan"}),
}
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
TRANSITIONS = ("continuous", "crossfade", "cut")
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error"}
ERROR_TYPES |= {404: "invalid_request_error", 409: "invalid_request_error", 429: "requests"}
VideoStatus = Literal["queued", "in_progress", "completed", "failed"]


@dataclass(frozen=True)
class VideoSubmission:
    kind: Literal["create", "extend", "remix"]
    video_id: str
    model: str
    prompt: str
    seconds: str  # as requested (for an extension: the new part only)
    size: str
    reference_sha256: str | None  # input_reference image
    source: str | None  # extend/remix: the source video id, or "sha256:<hex>" of an uploaded clip
    content_key: str  # sha256 of model + prompt + seconds + size + reference/source
    time: float  # wall clock


@dataclass
class _Video:
    id: str
    model: str
    prompt: str
    seconds: str  # reported: for an extension, the stitched total
    size: str
    created_at: float  # wall clock
    submitted: float  # monotonic
    queue_until: float
    done_at: float
    clip: ClipJob
    source: Path | None = None  # extension: the clip to continue
    failure: dict[str, str] | None = None  # {"code", "message"}
    remixed_from: str | None = None
    deleted: bool = False
    render: BackgroundRender = field(default_factory=BackgroundRender, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def video(self) -> Path | None:
        return None if self.deleted else self.render.path

    def status(self, now: float) -> VideoStatus:
        if now < self.queue_until:
            return "queued"
        if self.failure is not None:
            return "in_progress" if now < self.done_at else "failed"
        # Completed once its time is up and its file exists (a slow render keeps it in progress).
        return "completed" if now >= self.done_at and self.render.done else "in_progress"

    def interval(self, now: float) -> tuple[float, float]:
        return busy_interval(self.queue_until, self.done_at, self.render, self.failure is not None, now)


class _ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class OpenAIEmulator(EmulatorBase):
    """OpenAI's videos + planner endpoints on one loopback port. Use as a context manager (or `stop()`)."""

    def __init__(
        self,
        key: str = "sk-test",
        progress_seconds: float = 0.2,
        *,
        queue_seconds: float = 0.05,
        fps: int = 30,
        seconds_values: tuple[int, ...] = (4, 8, 12),
        extend_seconds_values: tuple[int, ...] = (4, 8, 12, 16, 20),
        retired_models: tuple[str, ...] = ("sora-2", "sora-2-pro"),
        poll_after_ms: int = 50,
    ) -> None:
        self.key = key
        self.progress_seconds = progress_seconds
        self.queue_seconds = queue_seconds
        self.fps = fps
        self.seconds_values = seconds_values
        self.extend_seconds_values = extend_seconds_values
        self.retired_models = retired_models
        self.poll_after_ms = poll_after_ms
        self._faults = FaultBook(ROUTE_FAULTS)
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="openai-emulator-"))
        self._counter = itertools.count(1)
        self.videos: dict[str, _Video] = {}
        self.submissions: list[VideoSubmission] = []
        self.chat_requests: list[dict[str, Any]] = []  # every planner call's parsed body (chat and responses)
        self.vision_answers: deque[dict[str, Any]] = deque()  # what the chat model says about the next images
        self.vision_requests: list[dict[str, Any]] = []  # every chat request with images (the clip judge)
        self._server = LoopbackServer(self._handle)
        self.base_url = f"http://127.0.0.1:{self._server.port}/v1"

    # ------------------------------------------------------------------ lifecycle and test API

    def _jobs(self) -> list[Any]:
        return list(self.videos.values())

    @staticmethod
    def _prompt_of(submission: Any) -> str:
        return str(submission.prompt)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _route(request: Request) -> str | None:
        segments, method = request.segments, request.method
        if segments[:1] != ["v1"]:
            return None
        rest = segments[1:]
        if rest == ["chat", "completions"] and method == "POST":
            return "chat"
        if rest == ["responses"] and method == "POST":
            return "responses"
        if rest[:1] != ["videos"]:
            return None
        if len(rest) == 1:
            return {"POST": "create", "GET": "list"}.get(method)
        if rest == ["videos", "extensions"] and method == "POST":
            return "create"
        if len(rest) == 2:
            return {"GET": "retrieve", "DELETE": "delete"}.get(method)
        if len(rest) == 3 and rest[2] == "content" and method == "GET":
            return "content"
        if len(rest) == 3 and rest[2] == "remix" and method == "POST":
            return "create"
        return None

    def _handle(self, request: Request) -> Response:
        route = self._route(request)
        if route is None:
            return self._error(404, f"Invalid URL ({request.method} {request.path})")
        fault = self._faults.take(route)
        if fault is not None and fault.kind == "reset":
            return Response(reset=True)
        if fault is not None and fault.kind == "status":
            return self._status_fault(fault)
        if request.header("Authorization") != f"Bearer {self.key}":
            return self._auth_error(request)
        try:
            return self._dispatch(route, request, fault)
        except _ApiError as exc:
            return self._error(exc.status, exc.message, param=exc.param, code=exc.code)

    def _dispatch(self, route: str, request: Request, fault: Fault | None) -> Response:
        rest = request.segments[2:]
        if route == "chat":
            return self._chat(request, fault)
        if route == "responses":
            return self._responses(request, fault)
        if route == "list":
            return self._list()
        if route == "create":
            if rest == ["extensions"]:
                return self._extend(request, fault)
            if len(rest) == 2:
                return self._remix(rest[0], request, fault)
            return self._create(request, fault)
        video = self._find(rest[0])
        if route == "retrieve":
            return self._json(200, self._video_json(video), {"openai-poll-after-ms": str(self.poll_after_ms)})
        if route == "delete":
            return self._delete(video)
        return self._content(video, request.query.get("variant", "video"), fault)

    # ------------------------------------------------------------------ responses and errors

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return json_response(status, payload, {"x-request-id": f"req_{uuid.uuid4().hex}", **(headers or {})})

    def _error(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        kind = error_type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        return self._json(status, body, headers)

    def _status_fault(self, fault: Fault) -> Response:
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        if fault.body is not None:
            return self._json(fault.code, fault.body, headers)
        code_name = fault.code_name or ("rate_limit_exceeded" if fault.code == 429 else None)
        message = "Rate limit reached for requests" if fault.code == 429 else f"Injected HTTP {fault.code}"
        return self._error(fault.code, message, error_type=fault.error_type, code=code_name, headers=headers)

    def _auth_error(self, request: Request) -> Response:
        given = (request.header("Authorization") or "").removeprefix("Bearer ").strip()
        if not given:
            message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
            return self._error(401, message)
        shown = f"{given[:3]}*****{given[-4:]}" if len(given) > 8 else "*****"
        return self._error(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")

    # ------------------------------------------------------------------ videos: create, extend, remix

    @staticmethod
    def _form(request: Request) -> tuple[dict[str, Any], dict[str, Part], bool]:
        """Text fields, file parts, and whether the body was JSON (where types are checked)."""
        content_type = request.header("Content-Type") or ""
        if content_type.startswith("multipart/form-data"):
            try:
                parts = parse_multipart(content_type, request.body)
            except ValueError as exc:
                raise _ApiError(400, f"Could not parse multipart form: {exc}") from None
            fields = {part.name: part.text for part in parts if part.filename is None}
            return fields, {part.name: part for part in parts if part.filename is not None}, False
        if content_type.startswith("application/json"):
            try:
                body = request.json()
            except ValueError:
                raise _ApiError(400, "We could not parse the JSON body of your request.") from None
            if not isinstance(body, dict):
                raise _ApiError(400, "The request body must be a JSON object.")
            return body, {}, True
        raise _ApiError(400, f"Unsupported content type: {content_type!r}")

    @staticmethod
    def _prompt(fields: dict[str, Any]) -> str:
        prompt = fields.get("prompt")
        if prompt is None:
            raise _ApiError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _ApiError(400, "Invalid 'prompt': expected a non-empty string.", "prompt", "invalid_value")
        return prompt

    @staticmethod
    def _seconds(value: Any, allowed: tuple[int, ...], is_json: bool) -> int:
        names = [f"'{seconds}'" for seconds in allowed]
        listed = ", ".join(names[:-1]) + f", and {names[-1]}" if len(names) > 1 else names[0]
        if is_json and not isinstance(value, str):
            kind = "an integer" if isinstance(value, int) else f"a {type(value).__name__}"
            message = f"Invalid type for 'seconds': expected one of {listed}, but got {kind} instead."
            raise _ApiError(400, message, "seconds", "invalid_type")
        if not str(value).isdigit() or int(value) not in allowed:
            raise _ApiError(
                400, f"Invalid value: '{value}'. Supported values are: {listed}.", "seconds", "invalid_value"
            )
        return int(value)

    def _model(self, fields: dict[str, Any], default: str) -> str:
        model = fields.get("model", default)
        if not isinstance(model, str) or not model:
            raise _ApiError(400, "Invalid 'model': expected a string.", "model", "invalid_type")
        if any(model == name or model.startswith(f"{name}-20") for name in self.retired_models):
            raise _ApiError(
                404, f"The model `{model}` does not exist or you do not have access to it.", None, "model_not_found"
            )
        return model

    def _reference(
        self, fields: dict[str, Any], files: dict[str, Part], size: str
    ) -> tuple[np.ndarray | None, str | None]:
        part = files.get("input_reference")
        data: bytes | None = part.data if part is not None else None
        reference = fields.get("input_reference")
        image_url = (
            reference.get("image_url") if isinstance(reference, dict) else fields.get("input_reference[image_url]")
        )
        if data is None and isinstance(reference, dict) and "file_id" in reference:
            raise _ApiError(400, "input_reference.file_id is not supported here; send the image.", "input_reference")
        if data is None and isinstance(image_url, str):
            try:
                data = decode_data_uri(image_url)
            except ValueError:
                data = None
            if data is None:
                raise _ApiError(400, "input_reference.image_url must be a base64 data URL.", "input_reference")
        if data is None:
            return None, None
        try:
            rgb = decode_image(data)
        except ValueError:
            raise _ApiError(
                400, "Invalid image file for 'input_reference'.", "input_reference", "invalid_image"
            ) from None
        got = f"{rgb.shape[1]}x{rgb.shape[0]}"
        if got != size:
            message = f"Inpaint image must match the requested width and height (got {got}, requested {size})."
            raise _ApiError(400, message, "input_reference", "invalid_value")
        return rgb, sha256_hex(data)

    def _create(self, request: Request, fault: Fault | None) -> Response:
        fields, files, is_json = self._form(request)
        prompt = self._prompt(fields)
        model = self._model(fields, "sora-2")
        seconds = self._seconds(fields.get("seconds", "4"), self.seconds_values, is_json)
        size = fields.get("size", "720x1280")
        if size not in SIZES:
            listed = ", ".join(f"'{s}'" for s in SIZES)
            raise _ApiError(400, f"Invalid value: '{size}'. Supported values are: {listed}.", "size", "invalid_value")
        rgb, reference_sha = self._reference(fields, files, size)
        width, height = (int(n) for n in size.split("x"))
        clip = ClipJob(prompt, seconds, width, height, self.fps, 0, True, rgb)
        return self._register(
            "create", model, prompt, str(seconds), str(seconds), size, clip, fault, reference=reference_sha
        )

    def _extend(self, request: Request, fault: Fault | None) -> Response:
        fields, files, is_json = self._form(request)
        prompt = self._prompt(fields)
        if "seconds" not in fields:
            raise _ApiError(400, "Missing required parameter: 'seconds'.", "seconds", "missing_required_parameter")
        seconds = self._seconds(fields["seconds"], self.extend_seconds_values, is_json)
        path = self._dir / f"source-{next(self._counter)}.mp4"
        source_id = self._source_id(fields)
        if "video" in files:
            path.write_bytes(files["video"].data)
            source_ref, model = f"sha256:{sha256_hex(files['video'].data)}", self._model(fields, "sora-2-extension")
            try:
                info = probe(path)
            except Exception:
                info = None
            if info is None or info.video is None:
                raise _ApiError(400, "Invalid video file for 'video'.", "video", "invalid_video")
            total = round(info.duration) + seconds
            width, height, fps = info.video.width, info.video.height, round(info.video.fps) or self.fps
        elif source_id is not None:
            source = self._find(source_id)
            if self._advance(source) != "completed" or source.video is None:
                raise _ApiError(
                    400, f"Video '{source_id}' is not completed; only completed videos can be extended.", "video"
                )
            shutil.copyfile(source.video, path)
            source_ref, model, total = source_id, source.model, int(source.seconds) + seconds
            width, height, fps = source.clip.width, source.clip.height, source.clip.fps
        else:
            raise _ApiError(400, "Missing required parameter: 'video'.", "video", "missing_required_parameter")
        clip = ClipJob(prompt, seconds, width, height, fps, 0, True, None)  # first frame: the source's last, at render
        size = f"{width}x{height}"
        return self._register(
            "extend", model, prompt, str(seconds), str(total), size, clip, fault, source=source_ref, path=path
        )

    @staticmethod
    def _source_id(fields: dict[str, Any]) -> str | None:
        video = fields.get("video", fields.get("video[id]"))
        if isinstance(video, dict):
            video = video.get("id")
        if isinstance(video, str) and video.startswith("{"):
            try:
                video = json.loads(video).get("id")
            except (ValueError, AttributeError):
                return None
        return video if isinstance(video, str) and video else None

    def _remix(self, video_id: str, request: Request, fault: Fault | None) -> Response:
        fields, _, _ = self._form(request)
        prompt = self._prompt(fields)
        source = self._find(video_id)
        if self._advance(source) != "completed":
            raise _ApiError(400, f"Video '{video_id}' is not completed; only completed videos can be remixed.")
        clip = dataclasses.replace(source.clip, caption=prompt)  # same size, length and reference image
        seconds = source.seconds
        return self._register(
            "remix", source.model, prompt, seconds, seconds, source.size, clip, fault, source=video_id
        )

    def _register(
        self,
        kind: Literal["create", "extend", "remix"],
        model: str,
        prompt: str,
        seconds: str,
        reported_seconds: str,
        size: str,
        clip: ClipJob,
        fault: Fault | None,
        *,
        reference: str | None = None,
        source: str | None = None,
        path: Path | None = None,
    ) -> Response:
        generation = self._faults.take("generation")
        failure = None
        if generation is not None:
            failure = {"code": generation.error_type or "internal_error", "message": generation.message}
        stuck = fault.seconds if fault is not None and fault.kind == "stuck" else 0.0
        now = time.monotonic()
        video = _Video(
            id=f"video_{uuid.uuid4().hex}",
            model=model,
            prompt=prompt,
            seconds=reported_seconds,
            size=size,
            created_at=time.time(),
            submitted=now,
            queue_until=now + self.queue_seconds + stuck,
            done_at=now + self.queue_seconds + stuck + self.progress_seconds,
            clip=clip,
            source=path,
            failure=failure,
            remixed_from=source if kind == "remix" else None,
        )
        key = sha256_hex(canonical_json([model, prompt, seconds, size, reference or source]))
        with self._lock:
            self.videos[video.id] = video
            self.submissions.append(
                VideoSubmission(kind, video.id, model, prompt, seconds, size, reference, source, key, time.time())
            )
        at_queue_exit(video.queue_until, lambda: self._advance(video))
        return self._json(200, self._video_json(video, render=False))

    # ------------------------------------------------------------------ videos: state, content, delete

    def _find(self, video_id: str) -> _Video:
        with self._lock:
            video = self.videos.get(video_id)
        if video is None or video.deleted:
            raise _ApiError(404, f"Video with id '{video_id}' not found.", None, "video_not_found")
        return video

    def _advance(self, video: _Video) -> VideoStatus:
        """The status now; the render starts in the background once the video is out of the queue."""
        with video.lock:
            if video.status(time.monotonic()) != "queued" and video.failure is None and not video.deleted:
                video.render.ensure(lambda: self._render(video))
            if video.render.error is not None and video.failure is None:
                # A render bug looks like a server-side failure to the client, and stays visible to the test.
                message = f"Rendering failed: {video.render.error!r}"
                self._server.errors.append(f"{video.id}: {message}")
                video.failure = {"code": "internal_error", "message": message}
            return video.status(time.monotonic())

    def _render(self, video: _Video) -> Path:
        out = self._dir / f"{video.id}.mp4"
        if video.source is None:
            return render_clip(video.clip, out)
        part = self._dir / f"{video.id}-part.mp4"
        render_clip(dataclasses.replace(video.clip, first_frame=last_frame(video.source)), part)
        merge_videos([video.source, part], out, [JoinPlan(dedupe_first_frame=True)])
        return out

    def _video_json(self, video: _Video, *, render: bool = True) -> dict[str, Any]:
        status = self._advance(video) if render else video.status(time.monotonic())
        now = time.monotonic()
        span = max(video.done_at - video.queue_until, 1e-6)
        progress = {"queued": 0, "completed": 100}.get(status, min(99, int(100 * (now - video.queue_until) / span)))
        finished = int(video.created_at + (video.done_at - video.submitted))
        done = status in ("completed", "failed")
        return {
            "id": video.id,
            "object": "video",
            "created_at": int(video.created_at),
            "status": status,
            "model": video.model,
            "progress": progress,
            "seconds": video.seconds,
            "size": video.size,
            "prompt": video.prompt,
            "completed_at": finished if done else None,
            "expires_at": finished + 3600 if status == "completed" else None,
            "error": video.failure if status == "failed" else None,
            "remixed_from_video_id": video.remixed_from,
        }

    def _list(self) -> Response:
        with self._lock:
            videos = [v for v in self.videos.values() if not v.deleted]
        data = [self._video_json(v, render=False) for v in reversed(videos)]
        body = {"object": "list", "data": data, "has_more": False}
        body |= {"first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        return self._json(200, body)

    def _content(self, video: _Video, variant: str, fault: Fault | None) -> Response:
        if variant not in ("video", "thumbnail", "spritesheet"):
            listed = "'video', 'thumbnail', and 'spritesheet'"
            raise _ApiError(
                400, f"Invalid value: '{variant}'. Supported values are: {listed}.", "variant", "invalid_value"
            )
        if self._advance(video) != "completed" or video.video is None:
            raise _ApiError(404, f"Video '{video.id}' is not ready: its status is {video.status(time.monotonic())}.")
        if variant == "video":
            data, content_type = video.video.read_bytes(), "video/mp4"
        else:
            data = thumbnail_jpeg(video.video) if variant == "thumbnail" else spritesheet_jpeg(video.video)
            content_type = "image/jpeg"
        if fault is not None and fault.kind == "truncate":
            data = data[: int(len(data) * fault.fraction)]
        return Response(200, data, {"Content-Type": content_type, "x-request-id": f"req_{uuid.uuid4().hex}"})

    def _delete(self, video: _Video) -> Response:
        with video.lock:
            video.deleted = True  # the file stays until stop(): a render may still be writing it
        return self._json(200, {"id": video.id, "object": "video.deleted", "deleted": True})

    # ------------------------------------------------------------------ planner LLM

    def _planner_body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise _ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object.")
        if not isinstance(body.get("model"), str):
            raise _ApiError(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        with self._lock:
            self.chat_requests.append(body)
        return body

    def _chat(self, request: Request, fault: Fault | None) -> Response:
        body = self._planner_body(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
        problem = next(iter(sorted(CHAT_REQUEST.iter_errors(body), key=lambda error: list(error.absolute_path))), None)
        if problem is not None:
            where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem.absolute_path)
            raise _ApiError(
                400, f"Invalid value for '{where.lstrip('.')}': {problem.message}", where.lstrip("."), "invalid_value"
            )
        response_format = body.get("response_format") or {}
        schema = (response_format.get("json_schema") or {}).get("schema") if isinstance(response_format, dict) else None
        images = _images(messages)
        if images:
            with self._lock:
                self.vision_requests.append(body)
                answer = self.vision_answers.popleft() if self.vision_answers else {}
            shaped = _conform(answer, schema, schema, _Hint("", "", 1)) if isinstance(schema, dict) else answer
            text = json.dumps(shaped)
        else:
            text = _plan_text(_find_brief(messages), schema, fault)
        usage = _usage(body, text, images)
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }
        return self._json(200, completion)

    def _responses(self, request: Request, fault: Fault | None) -> Response:
        body = self._planner_body(request)
        items = body.get("input")
        messages = [{"role": "user", "content": items}] if isinstance(items, str) else items
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "Missing required parameter: 'input'.", "input", "missing_required_parameter")
        text_format = (body.get("text") or {}).get("format") or {}
        schema = text_format.get("schema") if text_format.get("type") == "json_schema" else None
        text = _plan_text(_find_brief(messages), schema, fault)
        usage = _usage(body, text, [])
        now = int(time.time())
        response = {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"],
            "output": [
                {
                    "id": f"msg_{uuid.uuid4().hex}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
                }
            ],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": text_format or {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": usage[0],
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": usage[1],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": sum(usage),
            },
            "user": None,
            "metadata": {},
        }
        return self._json(200, response)


# ---------------------------------------------------------------------- the emulated planner


_WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "title": "{prompt}: a story in {n} shots",
        "characters": ["the main character, same face, hair and clothes in every shot"],
        "setting": "the place the prompt describes, unchanged from shot to shot",
        "style": "cinematic live action, natural colours, 35 mm lens",
        "light": "soft late-afternoon daylight from the left",
        "beats": ["the scene opens", "the motion continues", "tension builds", "the moment peaks", "the scene settles"],
        "action": "Shot {i}: {prompt} — {beat}.",
        "cameras": ["slow dolly in", "gentle pan to the right", "steady wide shot", "low tracking shot"],
    },
    "ko": {
        "title": "{prompt}: {n}개의 장면으로 된 이야기",
        "characters": ["주인공, 모든 장면에서 같은 얼굴과 머리 모양과 옷"],
        "setting": "프롬프트가 묘사한 장소, 장면마다 그대로 유지",
        "style": "영화 같은 실사 스타일, 자연스러운 색감, 35mm 렌즈",
        "light": "왼쪽에서 들어오는 부드러운 늦은 오후의 햇빛",
        "beats": [
            "장면이 시작된다",
            "움직임이 이어진다",
            "긴장이 높아진다",
            "절정에 이른다",
            "여운을 남기며 마무리된다",
        ],
        "action": "장면 {i}: {prompt} — {beat}.",
        "cameras": ["천천히 다가가는 돌리 샷", "오른쪽으로 느리게 패닝", "고정된 와이드 샷", "낮은 각도의 트래킹 샷"],
    },
}


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _find_brief(messages: list[Any]) -> dict[str, Any]:
    """The most recent user message that is a JSON brief (a correction message may follow it)."""
    user_texts = [
        _message_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role", "user") == "user"
    ]
    for text in reversed(user_texts):
        try:
            brief = json.loads(text)
        except ValueError:
            continue
        if isinstance(brief, dict) and isinstance(brief.get("prompt"), str):
            return brief
    return {"prompt": user_texts[-1] if user_texts else "", "segments": 1}


def _base_plan(brief: dict[str, Any]) -> dict[str, Any]:
    prompt = brief["prompt"]
    segments = brief.get("segments")
    segments = segments if isinstance(segments, int) and segments > 0 else 1
    words = _WORDS.get(str(brief.get("language", "en")), _WORDS["en"])
    transition = brief.get("transition") if brief.get("transition") in TRANSITIONS else "continuous"
    shots = [
        {
            "action": words["action"].format(i=i + 1, prompt=prompt, beat=words["beats"][i % len(words["beats"])]),
            "camera": words["cameras"][i % len(words["cameras"])],
            "transition": transition,
        }
        for i in range(segments)
    ]
    bible = {key: words[key] for key in ("characters", "setting", "style", "light")}
    return {
        "title": words["title"].format(prompt=prompt, n=segments),
        "bible": {"subject": prompt, **bible},
        "shots": shots,
    }


def _plan_text(brief: dict[str, Any], schema: Any, fault: Fault | None) -> str:
    plan = _base_plan(brief)
    if fault is not None and fault.kind == "bad_plan":
        count = max(0, len(plan["shots"]) + fault.shots_delta)
        wanted = dict(brief, segments=max(count, 1))
        plan["shots"] = (_base_plan(wanted)["shots"] * 2)[:count]
    if isinstance(schema, dict):
        seconds = brief.get("seconds")
        plan = _conform(plan, schema, schema, _Hint("", brief["prompt"], seconds if isinstance(seconds, int) else 8))
    return json.dumps(plan, ensure_ascii=False)


@dataclass(frozen=True)
class _Hint:
    """What the planner knows when it must invent a value the schema asks for and the plan lacks."""

    key: str
    prompt: str
    seconds: int

    def at(self, key: str) -> _Hint:
        return _Hint(key, self.prompt, self.seconds)

    def number(self) -> int:
        return self.seconds if "second" in self.key or "duration" in self.key else 1


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node
    return schema if isinstance(schema, dict) else {}


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    checks: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if kind in checks:
        return isinstance(value, checks[kind])
    if kind in ("integer", "number"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _conform(value: Any, schema: dict[str, Any], root: dict[str, Any], hint: _Hint) -> Any:
    """`value` reshaped to satisfy `schema` (as an LLM under strict structured output would answer)."""
    schema = _resolve(schema, root)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combinator), list) and schema[combinator]:
            options = [_resolve(option, root) for option in schema[combinator]]
            if value is None and any(option.get("type") == "null" for option in options):
                return None
            candidates = [option for option in options if option.get("type") != "null"] or options
            chosen = next((option for option in candidates if _fits(value, option)), candidates[0])
            return _conform(value, chosen, root, hint)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return value if value in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        source = value if isinstance(value, dict) else {}
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return source
        return {key: _conform(source.get(key), sub, root, hint.at(key)) for key, sub in properties.items()}
    if kind == "array":
        items = value if isinstance(value, list) else [None] * int(schema.get("minItems", 0))
        return [_conform(item, schema.get("items", {}), root, hint) for item in items]
    if kind == "string":
        return value if isinstance(value, str) else f"{hint.key.replace('_', ' ')}: {hint.prompt}".strip(": ")
    if kind == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else hint.number()
    if kind == "number":
        return value if _fits(value, {"type": "number"}) else float(hint.number())
    if kind == "boolean":
        return value if isinstance(value, bool) else False
    return None if kind == "null" else value


def _images(messages: list[Any]) -> list[np.ndarray]:
    """Every image part of the messages, decoded (a request with images is a question about pictures)."""
    parts = [
        part
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]
    return [decode_image(decode_data_uri(str(part["image_url"]["url"]))) for part in parts]


def _image_tokens(image: np.ndarray, model: str) -> int:
    height, width = image.shape[:2]
    patches = min(MAX_PATCHES, -(-width // PATCH) * -(-height // PATCH))
    return round(patches * PATCH_MULTIPLIER.get(model, 1.0))


def _without_images(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_images(item) for item in node]
    if isinstance(node, dict):
        return {key: "" if key == "image_url" else _without_images(value) for key, value in node.items()}
    return node


def _usage(body: dict[str, Any], text: str, images: list[np.ndarray]) -> tuple[int, int]:
    # Text: roughly four bytes a token (image data apart), so budgets and logs see plausible numbers.
    text_bytes = len(json.dumps(_without_images(body), ensure_ascii=False).encode("utf-8"))
    prompt = max(1, text_bytes // 4) + sum(_image_tokens(image, str(body["model"])) for image in images)
    return prompt, max(1, len(text.encode("utf-8")) // 4)
