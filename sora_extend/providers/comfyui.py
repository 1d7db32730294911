"""Your own GPUs: ComfyUI servers driven through their HTTP API, several of them as one render farm.

Each generation fills a workflow (a shipped template for the catalogue row's mode, or the user's own
graph) and queues it on a free server with our own `prompt_id`, reserved before the submission so the
ledger's intent holds it. A lost answer is then resolved exactly: the id is in that server's
`/history/{id}` or `/queue`, or it is not (ComfyUI queues a repeated id again, so de-duplication is
ours). The request id is `<prompt_id>@<server>`: a piece is resumed on the server it was queued on
when that server answers again, and queued anew (on any free server) only when the server's history
and queue show it never ran there.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from sora_extend.catalogue import ImageModelSpec, ModelSpec
from sora_extend.comfyui.farm import Slot, farm_servers, server_named, take_slot
from sora_extend.comfyui.server import ComfyClient, Server, execution_failure, output_file
from sora_extend.comfyui.workflow import Workflow, shipped, user_workflow
from sora_extend.errors import InputError, TerminalProviderError, TransientProviderError
from sora_extend.hashing import sha256_bytes
from sora_extend.ledger import utcnow
from sora_extend.providers.base import GenerationRequest, Outcome, Provider, StateCallback, Submission
from sora_extend.providers.http import one_attempt, stream_to_file
from sora_extend.providers.polling import PollPacer
from sora_extend.settings import Settings

logger = logging.getLogger(__name__)

CLIENT_ID = uuid.uuid4().hex  # one per process: what the servers' /ws would address


def split_request_id(request_id: str) -> tuple[str, str]:
    """(prompt_id, server label) of a request id."""
    prompt_id, _, label = request_id.partition("@")
    return prompt_id, label


class ComfyUIProvider(Provider):
    name = "comfyui"

    def __init__(self, spec: ModelSpec | ImageModelSpec, settings: Settings, workflow: Workflow | None = None) -> None:
        super().__init__(spec, settings)
        self.servers = farm_servers(settings)
        self.user_workflow = workflow if isinstance(spec, ModelSpec) else None
        self._slot: Slot | None = None
        self._reserved: dict[str, str] = {}  # content key -> request id, between reserve and submit

    @classmethod
    def for_run(cls, spec: ModelSpec | ImageModelSpec, settings: Settings, options: Any) -> ComfyUIProvider:
        path = getattr(options, "comfy_workflow", None)
        return cls(spec, settings, user_workflow(path, options.comfy_mapping) if path else None)

    # ------------------------------------------------------------------ workflows

    def workflow_for(self, request: GenerationRequest) -> Workflow:
        if self.user_workflow is not None and self.user_workflow.renders(request.mode):
            return self.user_workflow
        spec = self.spec
        name = spec.endpoint(request.mode) if isinstance(spec, ModelSpec) else getattr(spec.endpoints, request.mode)
        if not name:
            raise InputError("model", f"{spec.id} has no ComfyUI workflow for {request.mode.replace('_', '-')}")
        return shipped(str(name))

    def endpoint_for(self, request: GenerationRequest) -> str:
        workflow = self.workflow_for(request)
        return f"workflow {workflow.name}@{workflow.sha256[:12]}" if workflow is self.user_workflow else workflow.name

    def values(self, request: GenerationRequest) -> dict[str, Any]:
        """What the placeholders other than images get."""
        values: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": str(self.spec.defaults.get("negative_prompt", "")),
            "seed": request.seed or 0,
            "width": request.width,
            "height": request.height,
        }
        if isinstance(self.spec, ModelSpec):
            values |= {"seconds": request.seconds, "fps": self.spec.fps, "frames": self.spec.frames(request.seconds)}
        return values

    @staticmethod
    def upload_images(request: GenerationRequest, client: ComfyClient) -> dict[str, str]:
        """The image placeholders: each image uploaded to the server that renders the piece (named by its
        content, so a still shared by two clips is one file there)."""
        images = {"start_image": request.first_frame_png, "end_image": request.last_frame_png}
        if request.images:
            images["image"] = request.images[0]
        return {
            name: client.upload_image(png, f"{sha256_bytes(png)[:20]}.png")
            for name, png in images.items()
            if png is not None
        }

    # ------------------------------------------------------------------ submit, with our own id

    def reserve_id(self, request: GenerationRequest) -> str:
        """Wait for a free server, hold its slot until this provider is closed, and pick the prompt id."""
        if self._slot is None:
            self._slot = take_slot(self.servers, self.settings.lock_dir, self.settings.poll_timeout_s, request.label)
        request_id = f"{uuid.uuid4()}@{self._slot.server.label}"
        self._reserved[request.content_key] = request_id
        return request_id

    def submit(self, request: GenerationRequest) -> Submission:
        request_id = self._reserved.pop(request.content_key, None) or self.reserve_id(request)
        prompt_id, label = split_request_id(request_id)
        workflow = self.workflow_for(request)
        started = utcnow()
        client = self._client(server_named(self.servers, label))
        try:
            with one_attempt(f"ComfyUI server {label}", provider=self.name, model=self.spec.id, started=started):
                graph = workflow.fill(self.values(request) | self.upload_images(request, client))
                client.queue_prompt(graph, prompt_id, CLIENT_ID)
        except TerminalProviderError as exc:
            exc.model = self.spec.id
            raise
        finally:
            client.close()
        logger.info("%s: queued on ComfyUI server %s as %s (%s)", request.label, label, prompt_id, workflow.name)
        return Submission(
            provider=self.name,
            model=self.spec.id,
            endpoint=self.endpoint_for(request),
            request_id=request_id,
            submitted_at=started,
        )

    def find_submission(
        self, request: GenerationRequest, since: datetime, request_id: str | None = None
    ) -> Submission | None:
        """The prompt queued under our reserved id, if its server has it in its history or queue."""
        if request_id is None:
            return None
        prompt_id, label = split_request_id(request_id)
        client = self._client(server_named(self.servers, label))
        try:
            known = client.history(prompt_id) is not None or prompt_id in {id for ids in client.queue() for id in ids}
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"ComfyUI server {label} does not answer ({type(exc).__name__}); prompt {prompt_id} is looked up "
                "there again when it does",
                provider=self.name,
                model=self.spec.id,
            ) from None
        finally:
            client.close()
        if not known:
            return None
        return Submission(
            provider=self.name, model=self.spec.id, endpoint=self.endpoint_for(request), request_id=request_id
        )

    # ------------------------------------------------------------------ wait and download

    def wait(self, submission: Submission, on_state: StateCallback, timeout_s: float) -> Outcome:
        prompt_id, label = split_request_id(submission.request_id)
        server = server_named(self.servers, label)
        deadline = time.monotonic() + timeout_s
        last, down_since = "", None
        pacer = PollPacer(self.settings.poll_interval_s)
        client = self._client(server)
        try:
            while True:
                try:
                    state, detail, entry = self._where(client, prompt_id)
                    down_since = None
                except httpx.HTTPError as exc:
                    if down_since is None:
                        down_since = time.monotonic()
                        logger.warning(
                            "ComfyUI server %s does not answer (%s); waiting for it to resume %s",
                            label,
                            type(exc).__name__,
                            prompt_id,
                        )
                    state, detail, entry = "SERVER_DOWN", f"{label} does not answer", None
                if state != last:
                    on_state(state, detail)
                    if state == "IN_PROGRESS":
                        pacer.restart()
                    last = state
                if entry is not None:
                    return self._finished(entry, submission, server)
                if state == "GONE":
                    raise TransientProviderError(
                        f"ComfyUI server {label} has no record of prompt {prompt_id} in its history or queue (it "
                        "restarted before finishing it): it never ran, so it is queued again",
                        provider=self.name,
                        model=self.spec.id,
                        request_id=submission.request_id,
                        status_code=503,
                        request_failed=True,
                    )
                if time.monotonic() > deadline:
                    raise self.still_waiting(submission, last, timeout_s)
                time.sleep(pacer.next_wait_s())
        finally:
            client.close()

    def _where(self, client: ComfyClient, prompt_id: str) -> tuple[str, str, dict[str, Any] | None]:
        entry = client.history(prompt_id)
        if entry is not None:
            return "COMPLETED", "", entry
        running, pending = client.queue()
        if prompt_id in running:
            return "IN_PROGRESS", f"on {client.server.label}", None
        if prompt_id in pending:
            return "IN_QUEUE", f"position {pending.index(prompt_id)} on {client.server.label}", None
        entry = client.history(prompt_id)  # it may have finished between the two calls
        return ("COMPLETED", "", entry) if entry is not None else ("GONE", "", None)

    def _finished(self, entry: dict[str, Any], submission: Submission, server: Server) -> Outcome:
        status = entry.get("status") or {}
        if status.get("status_str") == "error" or not status.get("completed", True):
            error = execution_failure(entry, server.label, submission.request_id)
            error.model = self.spec.id
            raise error
        found = output_file(entry, video=isinstance(self.spec, ModelSpec))
        if found is None:
            raise TerminalProviderError(
                f"ComfyUI server {server.label} finished the prompt but it saved no "
                f"{'video' if isinstance(self.spec, ModelSpec) else 'image'} (does the workflow end in SaveVideo, "
                "VHS_VideoCombine or SaveImage?)",
                provider=self.name,
                model=self.spec.id,
                request_id=submission.request_id,
                request_failed=True,
            )
        return Outcome(request_id=submission.request_id, media_url=found.view_url)

    def download(self, submission: Submission, outcome: Outcome, request: GenerationRequest, dest: Path) -> None:
        assert outcome.media_url is not None
        _, label = split_request_id(submission.request_id)
        client = self._client(server_named(self.servers, label))
        try:
            stream_to_file(client.http, outcome.media_url, dest, provider=self.name, request_id=submission.request_id)
        finally:
            client.close()

    def _client(self, server: Server) -> ComfyClient:
        return ComfyClient(server, self.settings.http_timeout_s)

    def close(self) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        super().close()
