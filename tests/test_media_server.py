"""The read-only media server, started for real with uvicorn on loopback and spoken to over real HTTP:
local storage (FileResponse), a store that cannot sign (streamed through fsspec) and S3 on moto (redirects)."""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import fsspec
import httpx
import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette

from sora_extend.storage.store import JobStore
from sora_extend.web.media_server import ByteRange, RangeNotSatisfiable, build_app, parse_range
from tests.media_factory import write_clip

SECRET = b"outside the storage root"
BIG = random.Random(7).randbytes(600_000)  # crosses FileResponse's 64 KiB and the stream's 256 KiB chunks
# One client for the module: httpx.get() builds a new client (and TLS context) per call, ~30 ms each.
HTTP = httpx.Client(timeout=10)
REVIEW = "<!doctype html><title>review</title><video src='final.mp4'></video>"


@contextmanager
def live_server(app: Starlette) -> Iterator[str]:
    """The app on a real uvicorn server in a background thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # our own socket: no race for a free port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def raw_request(base: str, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Status and body for a request target sent byte for byte (httpx would normalise dot segments)."""
    url = urlparse(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request(method, target, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def head_on_the_wire(base: str, target: str) -> tuple[str, bytes]:
    """A HEAD request over a plain socket: the response head and whatever bytes followed it."""
    url = urlparse(base)
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=5) as conn:
        conn.sendall(f"HEAD {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), rest


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 48)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("images")
    Image.new("RGB", (32, 18), (200, 40, 40)).save(folder / "a.png")
    Image.new("RGB", (32, 18), (40, 200, 40)).save(folder / "a.jpg")
    return {"frames/01.png": (folder / "a.png").read_bytes(), "sheet.jpg": (folder / "a.jpg").read_bytes()}


def job_files(clip: Path, images: dict[str, bytes]) -> dict[str, bytes]:
    return {
        "final.mp4": clip.read_bytes(),
        "segments/01.mp4": clip.read_bytes(),
        "big.bin": BIG,
        "plan.json": b'{"title": "\xea\xb3\xa0\xec\x96\x91\xec\x9d\xb4"}',
        "review.html": REVIEW.encode(),
        "notes.txt": b"hello\n",
        **images,
    }


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, clip: Path, image_files: dict[str, bytes]) -> Iterator[str]:
    """A local storage with two jobs, a stray root file, a hidden folder, and symlinks in and out."""
    base = tmp_path_factory.mktemp("local")
    root, outside = base / "storage", base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    for rel, data in job_files(clip, image_files).items():
        (root / "job-1" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "job-1" / rel).write_bytes(data)
    (root / "job-2").mkdir()
    (root / "job-2" / "review.html").write_text(REVIEW)
    (root / "stray.txt").write_text("not a job")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("hidden")
    (root / "job-1" / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "job-1" / "alias.mp4").symlink_to(root / "job-1" / "final.mp4")
    (root / "linked-job").symlink_to(outside, target_is_directory=True)
    with live_server(build_app(f"file://{root}")) as url:
        yield url


@pytest.fixture(scope="module")
def streamed(clip: Path, image_files: dict[str, bytes]) -> Iterator[str]:
    """A store that cannot sign URLs (fsspec's memory filesystem): every file is streamed through."""
    storage = f"memory://media-{uuid.uuid4().hex[:8]}"
    fs, root = fsspec.core.url_to_fs(storage)
    for rel, data in job_files(clip, image_files).items():
        fs.pipe_file(f"{root}/job-1/{rel}", data)
    fs.pipe_file(f"{root}/stray.txt", b"not a job")
    with live_server(build_app(storage)) as url:
        yield url
    fs.rm(root, recursive=True)


@pytest.fixture(params=["local", "streamed"])
def server(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


# Range, HEAD and content types: the same answers from FileResponse and from the fsspec stream.


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, None),
        ("bytes=-500", -500, None),
        ("bytes=1000-99999999", 1000, None),  # an end past the file is clipped
    ],
)
@pytest.mark.parametrize("rel", ["final.mp4", "big.bin"])
def test_range_returns_exactly_the_bytes_asked_for(
    server: str, rel: str, header: str, start: int, end: int | None, clip: Path
) -> None:
    data = clip.read_bytes() if rel == "final.mp4" else BIG
    assert_range(server, rel, data, header, start, end)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=65530-65545", 65530, 65546),  # across FileResponse's 64 KiB chunks
        ("bytes=262140-262150", 262140, 262151),  # across the stream's 256 KiB chunks
        ("bytes=1000-599999", 1000, None),  # several chunks of both
    ],
)
def test_range_across_chunk_boundaries(server: str, header: str, start: int, end: int | None) -> None:
    assert_range(server, "big.bin", BIG, header, start, end)


def assert_range(server: str, rel: str, data: bytes, header: str, start: int, end: int | None) -> None:
    expected = data[start:end]
    response = HTTP.get(f"{server}/job-1/{rel}", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == expected
    first = start % len(data) if start < 0 else start
    assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["accept-ranges"] == "bytes"


def test_whole_file_without_range(server: str, clip: Path) -> None:
    response = HTTP.get(f"{server}/job-1/final.mp4")
    assert response.status_code == 200
    assert response.content == clip.read_bytes()
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=99999999-", "bytes=-0"])
def test_unsatisfiable_range_is_416(server: str, header: str, clip: Path) -> None:
    response = HTTP.get(f"{server}/job-1/final.mp4", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{clip.stat().st_size}"


def test_head_sends_headers_and_no_body(server: str, clip: Path) -> None:
    head, rest = head_on_the_wire(server, "/job-1/final.mp4")
    assert head.startswith("http/1.1 200")
    assert f"content-length: {clip.stat().st_size}" in head
    assert "content-type: video/mp4" in head
    assert "accept-ranges: bytes" in head
    assert rest == b""
    ranged = HTTP.head(f"{server}/job-1/final.mp4", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == b""
    assert ranged.headers["content-range"] == f"bytes 10-19/{clip.stat().st_size}"


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("final.mp4", "video/mp4"),
        ("frames/01.png", "image/png"),
        ("sheet.jpg", "image/jpeg"),
        ("plan.json", "application/json"),
        ("review.html", "text/html; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("big.bin", "application/octet-stream"),
    ],
)
def test_content_types(server: str, rel: str, expected: str, clip: Path, image_files: dict[str, bytes]) -> None:
    response = HTTP.get(f"{server}/job-1/{rel}")
    assert response.status_code == 200
    assert response.headers["content-type"] == expected
    assert response.content == job_files(clip, image_files)[rel]


# Nothing outside the root, nothing written.

ESCAPES = [
    "/job-1/../../outside/secret.txt",
    "/../outside/secret.txt",
    "/job-1/./final.mp4",
    "/job-1/%2e%2e/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/job-1/..%2f..%2foutside%2fsecret.txt",
    "/%2e%2e%2foutside%2fsecret.txt",
    "/job-1/..%5c..%5coutside%5csecret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/etc/passwd",
    "http://127.0.0.1/../outside/secret.txt",
    "/.hidden/x.txt",
]


@pytest.mark.parametrize("target", ESCAPES)
def test_paths_outside_the_root_are_refused(server: str, target: str) -> None:
    status, body = raw_request(server, "GET", target)
    assert 400 <= status < 500
    assert SECRET not in body and b"root:" not in body


@pytest.mark.parametrize("target", ["/job-1/escape.txt", "/linked-job/secret.txt", "/linked-job/"])
def test_symlinks_out_of_the_root_are_refused(local: str, target: str) -> None:
    status, body = raw_request(local, "GET", target)
    assert status == 404
    assert SECRET not in body


def test_symlinks_inside_the_root_are_served(local: str, clip: Path) -> None:
    response = HTTP.get(f"{local}/job-1/alias.mp4", headers={"Range": "bytes=4-11"})
    assert response.status_code == 206 and response.content == clip.read_bytes()[4:12]


@pytest.mark.parametrize(
    "target",
    [
        "/no-such-job/review.html",
        "/no-such-job/",
        "/job-1/missing.mp4",
        "/job-1/frames/",
        "/job-1/frames",
        "/stray.txt",
    ],
)
def test_unknown_jobs_files_and_inner_folders_are_404(server: str, target: str) -> None:
    assert HTTP.get(f"{server}{target}").status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("target", ["/", "/job-1/final.mp4", "/job-1/new.txt"])
def test_write_methods_are_405(server: str, method: str, target: str, clip: Path) -> None:
    status, _ = raw_request(server, method, target, body=b"hello")
    assert status == 405
    assert HTTP.get(f"{server}/job-1/final.mp4").content == clip.read_bytes()
    assert HTTP.get(f"{server}/job-1/new.txt").status_code == 404


def test_root_is_the_library_of_indexed_jobs_only(server: str) -> None:
    response = HTTP.get(f"{server}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Library</h1>" in response.text
    # These folders have no job.json, so no index entry: the library lists no folder it was not told about.
    for absent in ("job-1", "job-2", "stray.txt", ".hidden", "linked-job"):
        assert absent not in response.text
    assert "sora-extend reindex" in response.text


@pytest.mark.parametrize("target", ["/job-1/", "/job-1"])
def test_job_folder_redirects_to_its_review_page(server: str, target: str) -> None:
    response = HTTP.get(f"{server}{target}")
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/job-1/review.html"
    page = HTTP.get(f"{server}{target}", follow_redirects=True)
    assert page.status_code == 200 and page.text == REVIEW


# S3: media redirect to presigned URLs; documents stream through so their relative links come back here.


def test_s3_media_redirect_to_presigned_urls(s3_storage: str, s3_server: str, clip: Path) -> None:
    store = JobStore(s3_storage, "job-1")
    store.put_file(clip, "final.mp4")
    store.write_bytes("review.html", REVIEW.encode())
    data = clip.read_bytes()
    with live_server(build_app(s3_storage)) as base:
        response = HTTP.get(f"{base}/job-1/final.mp4")
        assert response.status_code in (302, 307)
        location = response.headers["location"]
        assert location.startswith(s3_server)
        query = parse_qs(urlparse(location).query)
        assert "X-Amz-Signature" in query or "Signature" in query
        assert HTTP.get(location).content == data
        ranged = HTTP.get(location, headers={"Range": "bytes=100-199"})  # the store serves ranges itself
        assert ranged.status_code == 206 and ranged.content == data[100:200]

        head = HTTP.head(f"{base}/job-1/final.mp4")  # answered here: a presigned GET URL refuses HEAD
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
        assert head.headers["content-type"] == "video/mp4"

        page = HTTP.get(f"{base}/job-1/review.html")
        assert page.status_code == 200 and page.text == REVIEW
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        part = HTTP.get(f"{base}/job-1/review.html", headers={"Range": "bytes=-6"})
        assert part.status_code == 206 and part.text == REVIEW[-6:]

        assert HTTP.get(f"{base}/job-1/").headers["location"] == "/job-1/review.html"
        assert "<h1>Library</h1>" in HTTP.get(f"{base}/").text  # (the library over S3: tests/test_library.py)
        assert HTTP.get(f"{base}/job-1/missing.mp4").status_code == 404
        assert HTTP.get(f"{base}/no-such-job/").status_code == 404
        assert raw_request(base, "GET", "/job-1/%2e%2e/%2e%2e/x")[0] == 400


# The stream's Range parser.


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(start=0, end=1)),
        ("bytes=0-", ByteRange(start=0, end=100)),
        ("bytes=10-19", ByteRange(start=10, end=20)),
        ("Bytes = 10 - 19", ByteRange(start=10, end=20)),
        ("bytes=90-500", ByteRange(start=90, end=100)),
        ("bytes=-10", ByteRange(start=90, end=100)),
        ("bytes=-500", ByteRange(start=0, end=100)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file (allowed by RFC 9110)
        ("bytes=5-3", None),  # invalid: ignored
        ("bytes=-", None),
        ("items=0-1", None),
        ("bytes=abc", None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=-5", 0)]
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)
