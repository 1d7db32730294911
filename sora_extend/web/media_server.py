"""Read-only HTTP media server over job storage: the library, videos, frames and review pages for a browser.

Local storage is served by Starlette's FileResponse (Range, HEAD, ETag). On an object store that can
sign URLs (S3), a GET for a video or image is redirected to a presigned URL, so the bytes never pass
through this process and the store answers Range requests itself. Everything else (review pages and
JSON on S3, every file on stores that cannot sign) is streamed through fsspec with a small Range parser.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import AsyncIterator
from typing import Literal
from urllib.parse import quote, unquote

import anyio
import anyio.to_thread
import fsspec
import uvicorn
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from sora_extend import layout
from sora_extend.library.index import LibraryIndex
from sora_extend.library.remake import PrefectApi
from sora_extend.settings import Settings, get_settings
from sora_extend.storage.store import open_filesystem
from sora_extend.web.library_html import AGAIN_PATH, FONT_PATH
from sora_extend.web.library_routes import Library
from sora_extend.web.signin import REALM, SignIn, Viewer
from sora_extend.web.users import User

CONTENT_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Only media go to presigned URLs: a review page fetched from the store would resolve its relative
# links against the store (unsigned, refused), and pipe_file uploads carry no Content-Type there.
REDIRECTED_TYPES = ("video/", "image/")
CHUNK_BYTES = 256 * 1024
# Job files are replaced in place (a re-render rewrites final.mp4), so browsers must revalidate.
FILE_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
_FORBIDDEN_IN_SEGMENT = ("/", "\\", "\x00")
LIBRARY_FONT = tuple(FONT_PATH.strip("/").split("/"))
_RANGE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)", re.IGNORECASE)


class PathRefused(ValueError):
    """A request path that could name something outside the storage root (answered 400)."""


class RangeNotSatisfiable(ValueError):
    """A Range header that asks only for bytes past the end of the file (answered 416)."""


class ByteRange(BaseModel):
    """One satisfiable byte range of a file: `start` inclusive, `end` exclusive."""

    model_config = ConfigDict(frozen=True)

    start: int
    end: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


class Entry(BaseModel):
    """What a request path names in storage."""

    kind: Literal["file", "directory"]
    path: str
    size: int = 0


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(name)[1].lower(), DEFAULT_CONTENT_TYPE)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a Range header asks for, or None to send the whole file. RFC 9110 lets a
    server ignore a Range it does not support, so malformed and multi-range headers get the whole file."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        return _suffix_range(last, size)
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range is ignored, not refused
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = min(int(last) + 1, size) if last else size
    return ByteRange(start=start, end=end)


def _suffix_range(last: str, size: int) -> ByteRange | None:
    """`bytes=-N`: the last N bytes."""
    if not last:
        return None
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(size)
    return ByteRange(start=max(size - suffix, 0), end=size)


def segment_allowed(segment: str) -> bool:
    """Dot names are refused as a whole: that covers `.` and `..` and keeps hidden files private."""
    return bool(segment) and not segment.startswith(".") and not any(c in segment for c in _FORBIDDEN_IN_SEGMENT)


def request_parts(raw_path: bytes) -> tuple[str, ...]:
    """The storage path segments a request names. Segments are split on the raw path and decoded one by
    one, so an encoded slash (%2f) cannot create a segment and %2e%2e is seen as `..`."""
    text = raw_path.decode("latin-1")
    if not text.startswith("/"):
        raise PathRefused(text)
    segments = text[1:].split("/")
    if segments[-1] == "":
        segments.pop()  # "/" and "/job/": the trailing slash names no segment
    try:
        parts = tuple(unquote(segment, errors="strict") for segment in segments)
    except UnicodeDecodeError as error:
        raise PathRefused(text) from error
    if not all(segment_allowed(part) for part in parts):
        raise PathRefused(text)
    return parts


class MediaStore:
    """The storage the server reads: finds what a request names and never anything outside the root."""

    def __init__(self, storage_url: str, settings: Settings) -> None:
        self.fs, self.root = open_filesystem(storage_url, settings)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.link_ttl_s = settings.link_ttl_s

    def locate(self, parts: tuple[str, ...]) -> Entry | None:
        return self._locate_local(parts) if self.is_local else self._locate_remote(parts)

    def _locate_local(self, parts: tuple[str, ...]) -> Entry | None:
        # realpath resolves symlinks, so a link that points outside the root is caught here as well.
        root = os.path.realpath(self.root)
        target = os.path.realpath(os.path.join(root, *parts))
        if os.path.commonpath([root, target]) != root:
            return None
        try:
            info = os.stat(target)
        except OSError:
            return None
        if stat.S_ISDIR(info.st_mode):
            return Entry(kind="directory", path=target)
        if stat.S_ISREG(info.st_mode):
            return Entry(kind="file", path=target, size=info.st_size)
        return None  # devices, sockets, fifos

    def _locate_remote(self, parts: tuple[str, ...]) -> Entry | None:
        path = posixpath.join(self.root, *parts)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        kind: Literal["file", "directory"] = "directory" if info.get("type") == "directory" else "file"
        return Entry(kind=kind, path=path, size=int(info.get("size") or 0))

    def signed_url(self, path: str) -> str | None:
        """A presigned GET URL, or None when this filesystem cannot sign (same rule as JobStore.link)."""
        try:
            return str(self.fs.sign(path, expiration=self.link_ttl_s))
        except NotImplementedError:
            return None


async def _read_range(fs: fsspec.AbstractFileSystem, path: str, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes [start, end) of a file, read in worker threads: fsspec calls block (and s3fs refuses to
    run its sync API inside a running event loop)."""
    # A small block size: buffered remote files otherwise read ahead tens of MiB for one small range.
    handle = await anyio.to_thread.run_sync(lambda: fs.open(path, "rb", block_size=CHUNK_BYTES))
    try:
        await anyio.to_thread.run_sync(handle.seek, start)
        remaining = end - start
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(handle.read, min(CHUNK_BYTES, remaining))
            if not chunk:
                break  # the file shrank meanwhile; the server closes the short response
            remaining -= len(chunk)
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):  # close even when the client went away mid-stream
            await anyio.to_thread.run_sync(handle.close)


def stream_response(fs: fsspec.AbstractFileSystem, entry: Entry, media_type: str, request: Request) -> Response:
    """A file streamed through fsspec, with single-range support."""
    # If-Range would need a validator this path does not keep; sending the whole file is always correct.
    header = None if "if-range" in request.headers else request.headers.get("range")
    try:
        wanted = parse_range(header, entry.size)
    except RangeNotSatisfiable:
        return PlainTextResponse(
            "range not satisfiable", status_code=416, headers={"content-range": f"bytes */{entry.size}"}
        )
    byte_range = wanted or ByteRange(start=0, end=entry.size)
    headers = {**FILE_HEADERS, "accept-ranges": "bytes", "content-length": str(byte_range.end - byte_range.start)}
    if wanted is not None:
        headers["content-range"] = wanted.content_range(entry.size)
    status = 200 if wanted is None else 206
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = _read_range(fs, entry.path, byte_range.start, byte_range.end)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


def not_found() -> Response:
    return PlainTextResponse("not found", status_code=404)


class MediaServer:
    """The request handler: sign-in, the library, job redirects and files."""

    def __init__(self, store: MediaStore, library: Library, sign_in: SignIn | None) -> None:
        self.store = store
        self.library = library
        self.sign_in = sign_in

    def viewer(self, request: Request) -> Viewer | Response:
        """Who asks: everyone (sign-in off), a signed-in user, or the refusal to send back."""
        if self.sign_in is None:
            return Viewer(name=None, admin=True)
        client = request.client.host if request.client else "unknown"
        answer = self.sign_in.check(request.headers.get("authorization"), client)
        if isinstance(answer, Viewer):
            return answer
        headers = {"www-authenticate": REALM} if answer.status == 401 else {"retry-after": str(answer.retry_after_s)}
        return PlainTextResponse(answer.message, status_code=answer.status, headers=headers)

    def handle(self, request: Request) -> Response:
        # A sync endpoint: Starlette runs it in a worker thread, where blocking fsspec calls belong.
        viewer = self.viewer(request)
        if isinstance(viewer, Response):
            return viewer
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        try:
            parts = request_parts(raw_path)
        except PathRefused:
            return PlainTextResponse("bad path", status_code=400)
        if not parts:
            return self.library.page(request, viewer)
        if parts == LIBRARY_FONT:
            return self.library.font(request)
        if not self.library.may_open(viewer, parts[0]):
            return not_found()  # another person's job is answered like one that does not exist
        entry = self.store.locate(parts)
        if entry is None:
            return not_found()
        if entry.kind == "directory":
            # Only a job folder has a page; folders inside a job are not listed.
            if len(parts) > 1:
                return not_found()
            return RedirectResponse(f"/{quote(parts[0], safe='')}/{layout.REVIEW_PAGE}")
        if len(parts) == 1:
            return not_found()  # a file at the storage root belongs to no job
        return self.file_response(entry, content_type(parts[-1]), request)

    async def again(self, request: Request) -> Response:
        viewer = await anyio.to_thread.run_sync(self.viewer, request)  # bcrypt takes a while: not on the loop
        if isinstance(viewer, Response):
            return viewer
        return await self.library.again(request, viewer)

    def file_response(self, entry: Entry, media_type: str, request: Request) -> Response:
        if self.store.is_local:
            return FileResponse(entry.path, media_type=media_type, headers=FILE_HEADERS)
        # HEAD is answered here: a presigned URL is signed for GET, and a HEAD sent to it is refused.
        if request.method == "GET" and media_type.startswith(REDIRECTED_TYPES):
            url = self.store.signed_url(entry.path)
            if url is not None:
                return RedirectResponse(url, headers={"cache-control": "no-store"})
        return stream_response(self.store.fs, entry, media_type, request)


def build_app(
    storage_url: str,
    settings: Settings | None = None,
    *,
    users: dict[str, User] | None = None,
    prefect: PrefectApi | None = None,
) -> Starlette:
    """The ASGI app serving `storage_url` read-only (GET and HEAD; any other method is answered 405), with
    sign-in when `users` are given, and a 'make again' button (the one POST) when `prefect` is."""
    settings = settings or get_settings()
    library = Library(LibraryIndex(storage_url, settings), signed_in=users is not None, prefect=prefect)
    server = MediaServer(MediaStore(storage_url, settings), library, SignIn(users) if users is not None else None)
    routes = [Route("/{path:path}", server.handle, methods=["GET", "HEAD"])]
    if prefect is not None:
        routes.insert(0, Route(f"{AGAIN_PATH}/{{job}}", server.again, methods=["POST"]))
    return Starlette(routes=routes)


def serve(
    storage_url: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    users: dict[str, User] | None = None,
    prefect: PrefectApi | None = None,
) -> None:
    """Serve `storage_url` until interrupted."""
    app = build_app(storage_url, users=users, prefect=prefect)
    print(f"serving {storage_url} on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
