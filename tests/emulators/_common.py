"""Plumbing shared by the emulators: a loopback HTTP/1.1 server, request/response values, a multipart
parser, interval bookkeeping and the media helpers that turn a request into a real MP4."""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import hashlib
import json
import logging
import re
import shutil
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import HeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import av
import cv2
import numpy as np

from sora_extend.media.frames import iter_frames
from sora_extend.media.images import decode_png, encode_jpeg
from sora_extend.preview import PreviewSpec, render_preview
from sora_extend.preview.score import render_score
from tests.emulators.faults import Fault, FaultBook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def segments(self) -> list[str]:
        return [part for part in self.path.split("/") if part]

    def json(self) -> Any:
        """The JSON body; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # close the connection with a TCP reset instead of answering


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, like the real hosts: the SDKs reuse pooled connections between calls.
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(split.path),
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.app(request)
        except Exception:  # an emulator bug: answer 500 and keep it for the test to see
            self.server.errors.append(traceback.format_exc())
            logger.exception("emulator error on %s %s", self.command, self.path)
            response = json_response(500, {"detail": "emulator error (see server_errors)"})
        if response.reset:
            self._reset()
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees a connection reset, a transport error.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: App) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app
        self.errors: list[str] = []
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with a random free port, serving one `App` callable."""

    def __init__(self, app: App) -> None:
        self._server = _Server(app)
        self.port: int = self._server.server_address[1]
        # A short poll interval so stop() (which waits for the serve loop to notice) is quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"emulator-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def errors(self) -> list[str]:
        return self._server.errors

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """Parse a multipart/form-data body; raises ValueError when it is malformed."""
    header = HeaderParser().parsestr(f"Content-Type: {content_type}\r\n\r\n")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("multipart body is not terminated by its closing boundary")
    parts = []
    for section in sections[1:-1]:
        section = section.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("multipart part without a header block")
        headers = HeaderParser().parsestr(head.decode("utf-8", "surrogateescape") + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("multipart part without a name")
        parts.append(Part(name, headers.get_filename(), headers.get("Content-Type"), data))
    return parts


DATA_URI = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL)


def decode_data_uri(value: str) -> bytes | None:
    """The bytes of a `data:` URI, None when `value` is not one; raises ValueError when it is malformed."""
    match = DATA_URI.match(value)
    if match is None:
        return None
    if ";base64" not in match["params"]:
        return unquote(match["data"]).encode("latin-1")
    try:
        return base64.b64decode(match["data"], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64 in data URI: {exc}") from None


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most half-open [start, end) intervals covering one instant (a sweep over the endpoints)."""
    events = sorted(
        [(start, 1) for start, end in intervals if end > start] + [(end, -1) for start, end in intervals if end > start]
    )  # at equal times -1 sorts first: an interval ending when another starts does not overlap it
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def decode_image(data: bytes) -> np.ndarray:
    """RGB pixels of a PNG/JPEG/WebP; raises ValueError when it is not an image."""
    return decode_png(data)


def orientation(rgb: np.ndarray) -> str:
    height, width = rgb.shape[:2]
    return "9:16" if height > width else "16:9"


class BackgroundRender:
    """Renders one output on a daemon thread, started when its request leaves the queue (`at_queue_exit`)
    or is first seen in progress, whichever comes first.

    Status polls stay fast and truthful: a request reports in progress until its file exists, as a
    real provider does while its GPU works, instead of blocking the poll for the render.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.path: Path | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None  # monotonic
        self.finished_at: float | None = None  # monotonic

    def ensure(self, work: Callable[[], Path]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(work,), name="emulator-render", daemon=True)
                self._thread.start()

    def _run(self, work: Callable[[], Path]) -> None:
        self.started_at = time.monotonic()
        try:
            self.path = work()
        except Exception as exc:  # kept for the emulator to turn into a provider-side failure
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def at_queue_exit(queue_until: float, advance: Callable[[], object]) -> None:
    """Call `advance` (which starts a request's render) once the request leaves the queue: a provider's
    GPU starts when a runner is free, whether or not anyone is polling at that moment."""
    timer = threading.Timer(max(0.0, queue_until - time.monotonic()), advance)
    timer.daemon = True
    timer.start()


def busy_interval(
    queue_until: float, done_at: float, render: BackgroundRender, ended_early: bool, now: float
) -> tuple[float, float]:
    """When a request was in progress, clipped to `now`: from leaving the queue until its result existed."""
    if ended_early or render.finished_at is None:
        end = done_at if ended_early or now < done_at else now
    else:
        end = max(done_at, render.finished_at)
    return queue_until, min(end, now)


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to render one emulated generation."""

    caption: str
    seconds: float
    width: int
    height: int
    fps: int
    seed: int = 0
    audio: bool = True
    first_frame: np.ndarray | None = field(default=None, compare=False)
    continuation: bool = False  # the clip continues another: its first frame (the other's last) is not shown


def render_clip(job: ClipJob, out: Path, last_frame: np.ndarray | None = None) -> Path:
    spec = PreviewSpec(
        caption=job.caption,
        seconds=job.seconds,
        width=job.width,
        height=job.height,
        fps=job.fps,
        seed=job.seed,
        audio=job.audio,
        continuation=job.continuation,
    )
    return render_preview(spec, job.first_frame, out, last_frame)


MUSIC_RATE = 44_100  # what music models commonly deliver (the merge resamples it to 48 kHz)


def render_music(seconds: float, seed: int, out: Path) -> Path:
    """An emulated music model's answer: the offline procedural score as AAC in an .m4a at 44.1 kHz."""
    samples = render_score(seconds, seed)
    out = out.with_suffix(".m4a")
    with av.open(str(out), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=MUSIC_RATE)
        stream.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=MUSIC_RATE)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48_000, 0
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(resampled))
        container.mux(stream.encode(None))
    return out


def thumbnail_jpeg(video: Path) -> bytes:
    for frame in iter_frames(video):
        return encode_jpeg(frame.rgb, quality=90)
    raise ValueError(f"{video.name} has no frames")


def spritesheet_jpeg(video: Path, tiles: int = 5) -> bytes:
    """A strip of `tiles` evenly spaced frames at a quarter size, like a player's scrub preview."""
    frames = [frame.rgb for frame in iter_frames(video)]
    if not frames:
        raise ValueError(f"{video.name} has no frames")
    picks = [frames[round(i * (len(frames) - 1) / max(1, tiles - 1))] for i in range(tiles)]
    height, width = picks[0].shape[:2]
    small = [cv2.resize(rgb, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA) for rgb in picks]
    return encode_jpeg(np.concatenate(small, axis=1), quality=90)


class EmulatorBase:
    """Lifecycle, fault injection and bookkeeping shared by the emulators. A subclass sets `_server`,
    `_lock`, `_faults`, `_dir` and `submissions`, and says where its jobs and prompts are."""

    _server: LoopbackServer
    _lock: threading.Lock
    _faults: FaultBook
    _dir: Path
    submissions: list[Any]

    def _jobs(self) -> list[Any]:
        """Every generation so far: objects with `.render` (a BackgroundRender) and `.interval(now)`."""
        raise NotImplementedError

    @staticmethod
    def _prompt_of(submission: Any) -> str:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.stop()
        with self._lock:
            renders = [job.render for job in self._jobs()]
        for render in renders:
            render.join(timeout=60)  # never delete files under a running encoder
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of emulator bugs (each answered with a 500); a test should expect none."""
        return self._server.errors

    @property
    def fault_log(self) -> list[tuple[str, Fault]]:
        return self._faults.log

    def inject(self, route: str, fault: Fault, times: int = 1) -> None:
        self._faults.inject(route, fault, times)

    def random_faults(self, rate: float, kinds: list[tuple[str, Fault]], seed: int) -> None:
        self._faults.random_faults(rate, kinds, seed)

    def clear_faults(self) -> None:
        self._faults.clear()

    def submission_counts(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(submission.content_key for submission in self.submissions)

    def count_prompt(self, substring: str) -> int:
        with self._lock:
            return sum(substring in self._prompt_of(submission) for submission in self.submissions)

    @property
    def max_in_progress(self) -> int:
        """The most generations in progress at one instant so far (from their time intervals)."""
        now = time.monotonic()
        with self._lock:
            return max_overlap([job.interval(now) for job in self._jobs()])
