"""A loopback emulator of one ComfyUI server (ComfyUI 0.8.0's HTTP API, as its `server.py` serves it).

`POST /upload/image`, `POST /prompt` (validated against the node-schema snapshot of a real server,
answering 400 with `error` / `node_errors` as ComfyUI does), `GET /queue`, `GET /history/{id}`,
`GET /view`, `GET /object_info[/{node}]`, `GET /prompt`. Like the real server it runs one prompt at a
time from its queue, keeps its history in memory only, and queues a repeated `prompt_id` again. Its
"models" are the offline preview renderer (see comfyui_nodes.py); its model files are whatever the test
says the server has.

Faults: a lost `/prompt` answer (queued, then the connection is reset), a restart (queue and history
lost, the server silent for a while), an execution_error at a node, and the transport faults of the
other emulators.
"""

from __future__ import annotations

import base64
import itertools
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.emulators._common import (
    BackgroundRender,
    EmulatorBase,
    LoopbackServer,
    Request,
    Response,
    canonical_json,
    json_response,
    parse_multipart,
    sha256_hex,
)
from tests.emulators.comfyui_nodes import Execution, ExecutionError, read_image
from tests.emulators.comfyui_schema import load_snapshot, served_info, validate_prompt
from tests.emulators.faults import Fault, FaultBook, FaultKind

ROUTE_FAULTS: dict[str, frozenset[FaultKind]] = {
    "prompt": frozenset({"status", "reset", "lost_answer", "slow_answer"}),
    "history": frozenset({"status", "reset"}),
    "queue": frozenset({"status", "reset"}),
    "view": frozenset({"status", "reset", "truncate"}),
    "upload": frozenset({"status", "reset"}),
    "object_info": frozenset({"status", "reset"}),
}
# The files the shipped templates load: what a server set up as the README says has in ComfyUI/models/.
README_MODELS: dict[str, list[str]] = {
    "diffusion_models": [
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "qwen_image_fp8_e4m3fn.safetensors",
        "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
    ],
    "text_encoders": [
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors",
        "gemma_3_12B_it_fp4_mixed.safetensors",
    ],
    "vae": ["wan_2.1_vae.safetensors", "qwen_image_vae.safetensors"],
    "checkpoints": ["ltx-2-19b-dev-fp8.safetensors"],
}


@dataclass
class ComfyPrompt:
    """One accepted /prompt call."""

    prompt_id: str
    number: int
    graph: dict[str, Any]
    outputs_to_execute: list[str]
    client_id: str
    received: float  # monotonic
    content_key: str
    epoch: int  # the server's life it was queued in (a restart starts a new one)
    render: BackgroundRender = field(default_factory=BackgroundRender, repr=False)
    started: float | None = None  # monotonic: when the server began running it
    finished: float | None = None  # monotonic: when its history entry was written (or it was lost)

    def interval(self, now: float) -> tuple[float, float]:
        """When the server was busy with it."""
        if self.started is None:
            return (0.0, 0.0)
        return (self.started, self.finished or now)

    def queue_item(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, {"client_id": self.client_id}, self.outputs_to_execute]

    @property
    def makes_video(self) -> bool:
        return any(node["class_type"] == "SaveVideo" for node in self.graph.values())

    def images(self) -> list[str]:
        """The uploaded files its LoadImage nodes read, in node order."""
        nodes = sorted(self.graph.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0)
        return [str(node["inputs"]["image"]) for _, node in nodes if node["class_type"] == "LoadImage"]


class ComfyUIEmulator(EmulatorBase):
    """One ComfyUI server on a loopback port. Use as a context manager (or call `stop()`)."""

    def __init__(
        self,
        *,
        models: dict[str, list[str]] | None = None,
        render_seconds: float = 0.2,
        still_seconds: float = 0.05,
        basic_auth: tuple[str, str] | None = None,
        token: str | None = None,
        nodes: dict[str, Any] | None = None,
    ) -> None:
        self.nodes = nodes if nodes is not None else load_snapshot()
        self.models = models if models is not None else README_MODELS
        self.render_seconds = render_seconds  # the least a clip prompt takes, as a GPU would
        self.still_seconds = still_seconds
        self.basic_auth, self.token = basic_auth, token
        self._faults = FaultBook(ROUTE_FAULTS)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._dir = Path(tempfile.mkdtemp(prefix="comfyui-emulator-"))
        self._input = self._dir / "input"
        self._output = self._dir / "output"
        self._input.mkdir()
        self._output.mkdir()
        self._numbers = itertools.count()
        self._epoch = 0
        self._down_until = 0.0
        self._stopping = False
        self._fail: tuple[str, str] | None = None
        self.pending: list[ComfyPrompt] = []
        self.running: ComfyPrompt | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.submissions: list[ComfyPrompt] = []  # every accepted prompt, in order
        self.rejections: list[dict[str, Any]] = []  # every 400 answer to /prompt
        self.unauthorised = 0  # requests refused for missing credentials
        self.max_outstanding = 0  # the most prompts queued or running at once
        self._server = LoopbackServer(self._handle)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self.label = f"127.0.0.1:{self._server.port}"
        self._worker = threading.Thread(target=self._work, name=f"comfyui-{self._server.port}", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ test API

    def _jobs(self) -> list[Any]:
        return list(self.submissions)

    @staticmethod
    def _prompt_of(submission: Any) -> str:
        return canonical_json(submission.graph)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        self._worker.join(timeout=60)
        super().stop()

    def outage(self, seconds: float) -> None:
        """The server stops answering for `seconds` (a network or proxy outage) and keeps working."""
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def uploaded(self, name: str) -> bytes:
        """An uploaded input file, by the name LoadImage takes (`subfolder/name`)."""
        return (self._input / name).read_bytes()

    def restart(self, down_seconds: float) -> None:
        """The server process restarts: its queue and history (kept in memory) are gone, a prompt being
        rendered is lost with it, and for `down_seconds` it answers nothing. Uploads stay on disk."""
        with self._lock:
            self._epoch += 1
            self.pending.clear()
            self.running = None
            self.history.clear()
            self._down_until = time.monotonic() + down_seconds

    def fail_next_at(self, class_type: str, message: str) -> None:
        """The next prompt that runs a node of `class_type` fails there with an execution_error."""
        with self._lock:
            self._fail = (class_type, message)

    def ids(self) -> list[str]:
        with self._lock:
            return [prompt.prompt_id for prompt in self.submissions]

    # ------------------------------------------------------------------ the queue worker

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self.pending and not self._stopping:
                    self._wake.wait(0.1)
                if self._stopping:
                    return
                prompt = self.pending.pop(0)
                self.running = prompt
                fail = self._fail
                if fail is not None and any(node["class_type"] == fail[0] for node in prompt.graph.values()):
                    self._fail = None
                else:
                    fail = None
            started = prompt.started = time.monotonic()
            execution = Execution(prompt.graph, self._load_image, self._output)
            if fail:
                execution.fail_class, execution.fail_message = fail
            prompt.render.ensure(lambda execution=execution, prompt=prompt: self._execute(execution, prompt))
            prompt.render.join()
            least = self.render_seconds if prompt.makes_video else self.still_seconds
            time.sleep(max(0.0, started + least - time.monotonic()))
            self._finish(prompt, execution)
            prompt.finished = time.monotonic()

    def _execute(self, execution: Execution, prompt: ComfyPrompt) -> Path:
        execution.run(prompt.outputs_to_execute)
        return self._output

    def _finish(self, prompt: ComfyPrompt, execution: Execution) -> None:
        stamp = int(time.time() * 1000)
        messages: list[list[Any]] = [
            ["execution_start", {"prompt_id": prompt.prompt_id, "timestamp": stamp}],
            ["execution_cached", {"nodes": [], "prompt_id": prompt.prompt_id, "timestamp": stamp}],
        ]
        error = prompt.render.error
        if isinstance(error, ExecutionError):
            messages.append(
                [
                    "execution_error",
                    {
                        "prompt_id": prompt.prompt_id,
                        "node_id": error.node_id,
                        "node_type": error.node_type,
                        "executed": list(execution.executed),
                        "exception_message": str(error),
                        "exception_type": error.exception_type,
                        "traceback": [],
                        "current_inputs": {},
                        "current_outputs": [],
                        "timestamp": stamp,
                    },
                ]
            )
            status = {"status_str": "error", "completed": False, "messages": messages}
        elif error is not None:  # an emulator bug, kept for the test to see
            self._server.errors.append(f"{prompt.prompt_id}: {error!r}")
            status = {"status_str": "error", "completed": False, "messages": messages}
        else:
            messages.append(["execution_success", {"prompt_id": prompt.prompt_id, "timestamp": stamp}])
            status = {"status_str": "success", "completed": True, "messages": messages}
        meta = {
            node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
            for node_id in execution.outputs
        }
        with self._lock:
            if prompt.epoch != self._epoch:  # the server restarted while it ran: the result is lost
                return
            self.running = None
            self.history[prompt.prompt_id] = {
                "prompt": prompt.queue_item(),
                "outputs": execution.outputs,
                "status": status,
                "meta": meta,
            }

    def _load_image(self, name: str) -> Any:
        return read_image(self._input / name)

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _route(request: Request) -> str:
        first = request.segments[0] if request.segments else ""
        return {"upload": "upload", "history": "history", "view": "view"}.get(first, first)

    def _authorised(self, request: Request) -> bool:
        given = request.header("Authorization") or ""
        if self.token is not None:
            return given == f"Bearer {self.token}"
        if self.basic_auth is not None:
            expected = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            return given == f"Basic {expected}"
        return True

    def _handle(self, request: Request) -> Response:
        if time.monotonic() < self._down_until:
            return Response(reset=True)  # restarting: nothing listens
        if not self._authorised(request):
            with self._lock:
                self.unauthorised += 1
            return Response(401, b"401: Unauthorized", {"Content-Type": "text/plain"})
        route = self._route(request)
        fault = self._faults.take(route) if route in ROUTE_FAULTS else None
        if fault is not None and fault.kind == "reset":
            return Response(reset=True)
        if fault is not None and fault.kind == "status":
            return json_response(fault.code, fault.body or {"error": f"Injected HTTP {fault.code}"})
        method, segments = request.method, request.segments
        if method == "POST" and segments == ["upload", "image"]:
            return self._upload(request)
        if method == "POST" and segments == ["prompt"]:
            return self._prompt(request, fault)
        if method == "GET" and segments == ["prompt"]:
            with self._lock:
                remaining = len(self.pending) + (self.running is not None)
            return json_response(200, {"exec_info": {"queue_remaining": remaining}})
        if method == "GET" and segments == ["queue"]:
            with self._lock:
                running = [self.running.queue_item()] if self.running else []
                pending = [prompt.queue_item() for prompt in self.pending]
            return json_response(200, {"queue_running": running, "queue_pending": pending})
        if method == "GET" and len(segments) == 2 and segments[0] == "history":
            with self._lock:
                entry = self.history.get(segments[1])
            return json_response(200, {segments[1]: entry} if entry is not None else {})
        if method == "GET" and segments[:1] == ["object_info"]:
            info = served_info(self.nodes, self.models, self._input_files())
            if len(segments) == 2:
                return json_response(200, {segments[1]: info[segments[1]]} if segments[1] in info else {})
            return json_response(200, info)
        if method == "GET" and segments == ["view"]:
            return self._view(request, fault)
        return Response(404, b"404: Not Found", {"Content-Type": "text/plain"})

    def _input_files(self) -> list[str]:
        return [str(path.relative_to(self._input)) for path in self._input.rglob("*") if path.is_file()]

    def _upload(self, request: Request) -> Response:
        try:
            parts = {part.name: part for part in parse_multipart(request.header("Content-Type") or "", request.body)}
        except ValueError:
            return Response(400)
        image = parts.get("image")
        if image is None or not image.filename:
            return Response(400)
        kind = parts["type"].text if "type" in parts else "input"
        subfolder = parts["subfolder"].text if "subfolder" in parts else ""
        if kind != "input" or ".." in subfolder or "/" in image.filename:
            return Response(400)
        folder = self._input / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / image.filename).write_bytes(image.data)
        return json_response(200, {"name": image.filename, "subfolder": subfolder, "type": kind})

    def _prompt(self, request: Request, fault: Fault | None) -> Response:
        try:
            body = request.json()
        except ValueError:
            return Response(400, b"invalid JSON")
        if not isinstance(body, dict) or "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return json_response(400, {"error": error, "node_errors": {}})
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        info = served_info(self.nodes, self.models, self._input_files())
        error, node_errors, outputs = validate_prompt(info, body["prompt"], lambda name: (self._input / name).is_file())
        if error is not None:
            with self._lock:
                self.rejections.append({"prompt_id": prompt_id, "error": error, "node_errors": node_errors})
            return json_response(400, {"error": error, "node_errors": node_errors})
        graph = body["prompt"]
        with self._lock:
            number = next(self._numbers)
            queued = ComfyPrompt(
                prompt_id=prompt_id,
                number=number,
                graph=graph,
                outputs_to_execute=outputs,
                client_id=str(body.get("client_id", "")),
                received=time.monotonic(),
                content_key=sha256_hex(canonical_json(graph)),
                epoch=self._epoch,
            )
            self.pending.append(queued)  # a repeated prompt_id is queued again, as ComfyUI does
            self.submissions.append(queued)
            self.max_outstanding = max(self.max_outstanding, len(self.pending) + (self.running is not None))
            self._wake.notify_all()
        if fault is not None and fault.kind == "lost_answer":
            return Response(reset=True)
        if fault is not None and fault.kind == "slow_answer":
            time.sleep(fault.seconds)
        return json_response(200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    def _view(self, request: Request, fault: Fault | None) -> Response:
        name = request.query.get("filename", "")
        base = {"output": self._output, "input": self._input}.get(request.query.get("type", "output"))
        if not name or base is None or name.startswith("/") or ".." in name:
            return Response(400)
        path = base / request.query.get("subfolder", "") / Path(name).name
        if ".." in request.query.get("subfolder", "") or not path.is_file():
            return Response(404, b"404: Not Found", {"Content-Type": "text/plain"})
        data = path.read_bytes()
        if fault is not None and fault.kind == "truncate":
            data = data[: int(len(data) * fault.fraction)]
        content_type = "video/mp4" if path.suffix == ".mp4" else "image/png"
        return Response(200, data, {"Content-Type": content_type, "Content-Disposition": f'filename="{path.name}"'})


def farm_environment(servers: list[ComfyUIEmulator]) -> dict[str, str]:
    """The settings that point the project at these emulated servers."""
    return {"SORA_EXTEND_COMFYUI_URLS": ",".join(server.url for server in servers)}


__all__ = ["README_MODELS", "ComfyPrompt", "ComfyUIEmulator", "farm_environment"]
