"""One ComfyUI server, spoken to over its own HTTP API (ComfyUI's `server.py`).

`POST /upload/image` (multipart `image`, `type`, `subfolder`, `overwrite`), `POST /prompt` with an
API-format graph and our own `prompt_id`, `GET /history/{prompt_id}` and `GET /queue` for where a
prompt is, `GET /view` for its output files, `GET /object_info` for the nodes (and model files) the
server has. Credentials (user:password in the URL, or a bearer token for a proxy) go into the HTTP
client only: the server's label, used in request ids and messages, never carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from sora_extend.errors import InputError, TerminalProviderError, TransientProviderError
from sora_extend.providers.http import tls

ENV = "SORA_EXTEND_COMFYUI_URLS"
UPLOAD_FOLDER = "sora-extend"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif")


@dataclass(frozen=True)
class Server:
    label: str  # host:port[/path]: what messages and request ids show
    url: str = field(repr=False)  # without credentials
    auth: tuple[str, str] | None = field(default=None, repr=False)
    token: SecretStr | None = field(default=None, repr=False)

    def client(self, timeout_s: float) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"} if self.token else {}
        return httpx.Client(base_url=self.url, auth=self.auth, headers=headers, timeout=timeout_s, verify=tls())


def parse_servers(urls: str, token: SecretStr | None = None) -> list[Server]:
    """The servers of a comma-separated URL list; user:password in a URL becomes basic auth."""
    servers: list[Server] = []
    for text in (part.strip() for part in urls.split(",")):
        if not text:
            continue
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Never echo the text: it may hold a password.
            raise InputError(
                ENV, f"entry {len(servers) + 1} is not an http(s) URL", "http://host:8188,http://host2:8188"
            )
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        path = parts.path.rstrip("/")
        auth = (parts.username or "", parts.password or "") if parts.username else None
        servers.append(
            Server(label=host + path, url=urlunsplit((parts.scheme, host, path, "", "")), auth=auth, token=token)
        )
    if not servers:
        raise InputError(ENV, "lists no ComfyUI server", "http://127.0.0.1:8188 or several, comma-separated")
    labels = [server.label for server in servers]
    if len(set(labels)) != len(labels):
        raise InputError(ENV, "lists a server twice", "each server once")
    return servers


@dataclass(frozen=True)
class OutputFile:
    filename: str
    subfolder: str
    type: str

    @property
    def view_url(self) -> str:
        return str(
            httpx.URL("/view", params={"filename": self.filename, "subfolder": self.subfolder, "type": self.type})
        )


def prompt_refusal(body: Any, label: str) -> str:
    """A /prompt 400 answer in words, naming every node that failed validation."""
    error = body.get("error") if isinstance(body, dict) else None
    words = error.get("message", "") if isinstance(error, dict) else str(error or body)
    details = error.get("details", "") if isinstance(error, dict) else ""
    if details and isinstance(error, dict) and error.get("type") == "invalid_prompt":
        words += f" ({details})"
    for node_id, problem in (body.get("node_errors") or {}).items() if isinstance(body, dict) else ():
        reasons = "; ".join(
            f"{item.get('message', '')}: {item.get('details', '')}".strip(": ") for item in problem.get("errors", [])
        )
        words += f"; node {node_id} ({problem.get('class_type', '?')}): {reasons}"
    return f"ComfyUI server {label} refused the workflow: {words}"


def execution_failure(
    entry: dict[str, Any], label: str, prompt_id: str
) -> TerminalProviderError | TransientProviderError:
    """The error for a prompt the server ran and failed (its history's execution_error or interruption)."""
    messages = (entry.get("status") or {}).get("messages") or []
    for event, data in messages:
        if event == "execution_error":
            kind = "out of memory" if "OutOfMemory" in str(data.get("exception_type", "")) else ""
            reason = (
                f"ComfyUI server {label} failed running node {data.get('node_id')} ({data.get('node_type')}): "
                f"{data.get('exception_type', 'error')}: {str(data.get('exception_message', '')).strip()}"
            )
            error_class = TransientProviderError if kind else TerminalProviderError
            return error_class(
                reason, provider="comfyui", request_id=prompt_id, status_code=500 if kind else 400, request_failed=True
            )
        if event == "execution_interrupted":
            reason = f"ComfyUI server {label} interrupted node {data.get('node_id')} ({data.get('node_type')})"
            return TransientProviderError(
                reason, provider="comfyui", request_id=prompt_id, status_code=503, request_failed=True
            )
    return TerminalProviderError(
        f"ComfyUI server {label} ended the prompt without success",
        provider="comfyui",
        request_id=prompt_id,
        request_failed=True,
    )


def output_file(entry: dict[str, Any], video: bool) -> OutputFile | None:
    """The file a finished prompt made: core SaveVideo lists its file under `images` with `animated`,
    VideoHelperSuite's VHS_VideoCombine under `gifs`, SaveImage under `images`."""
    for output in (entry.get("outputs") or {}).values():
        files = [*output.get("gifs", []), *output.get("images", [])] if video else output.get("images", [])
        animated = any(output.get("animated") or [])
        for item in files:
            name = str(item.get("filename", ""))
            is_video = name.lower().endswith(VIDEO_SUFFIXES) or animated or item in output.get("gifs", [])
            if name and item.get("type", "output") == "output" and is_video == video:
                return OutputFile(name, str(item.get("subfolder", "")), str(item.get("type", "output")))
    return None


class ComfyClient:
    """HTTP calls to one server; transport errors are left to the caller, who knows what they mean."""

    def __init__(self, server: Server, timeout_s: float) -> None:
        self.server = server
        self.http = server.client(timeout_s)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code in (401, 403):
            raise TerminalProviderError(
                f"ComfyUI server {self.server.label} refused the credentials (HTTP {response.status_code})",
                provider="comfyui",
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            raise TransientProviderError(
                f"ComfyUI server {self.server.label} answered HTTP {response.status_code} "
                f"on {response.request.url.path}",
                provider="comfyui",
                status_code=response.status_code,
            )
        return response.json()

    def object_info(self) -> dict[str, Any]:
        return self._json(self.http.get("/object_info"))  # type: ignore[no-any-return]

    def upload_image(self, png: bytes, name: str) -> str:
        """Upload (overwriting a same-named file) and return the name LoadImage takes: `subfolder/name`."""
        files = {"image": (name, png, "image/png")}
        data = {"type": "input", "subfolder": UPLOAD_FOLDER, "overwrite": "true"}
        answer = self._json(self.http.post("/upload/image", files=files, data=data))
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else str(answer["name"])

    def queue_prompt(self, graph: dict[str, Any], prompt_id: str, client_id: str) -> dict[str, Any]:
        response = self.http.post("/prompt", json={"prompt": graph, "client_id": client_id, "prompt_id": prompt_id})
        if response.status_code == 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise TerminalProviderError(prompt_refusal(body, self.server.label), provider="comfyui", status_code=400)
        return self._json(response)  # type: ignore[no-any-return]

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        answer = self._json(self.http.get(f"/history/{prompt_id}"))
        return answer.get(prompt_id) if isinstance(answer, dict) else None

    def queue(self) -> tuple[list[str], list[str]]:
        """The prompt ids running and waiting (each queue item is [number, prompt_id, prompt, extra, outputs])."""
        answer = self._json(self.http.get("/queue"))
        return (
            [str(item[1]) for item in answer.get("queue_running", [])],
            [str(item[1]) for item in sorted(answer.get("queue_pending", []), key=lambda item: item[0])],
        )
