"""The subject's reference images: read from wherever the request points (a local path, an http(s) URL,
a storage URL), checked against what the model that gets them takes, and copied into the job folder,
so every worker sends exactly the same bytes and the content keys can hash them."""

from __future__ import annotations

import fsspec
import httpx

from sora_extend import layout
from sora_extend.errors import InputError
from sora_extend.hashing import sha256_bytes
from sora_extend.media.images import decode_png, image_type
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import ImageRecord
from sora_extend.request import ExtendRequest
from sora_extend.settings import Settings
from sora_extend.storage.store import storage_options

SUFFIX = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


def _read(source: str, settings: Settings) -> bytes:
    try:
        if source.startswith(("http://", "https://")):
            response = httpx.get(source, timeout=settings.http_timeout_s, follow_redirects=True)
            response.raise_for_status()
            return response.content
        with fsspec.open(source, "rb", **storage_options(source, settings)) as handle:
            return bytes(handle.read())
    except (OSError, httpx.HTTPError, ValueError) as exc:
        raise InputError("references", f"{source} cannot be read ({type(exc).__name__}: {exc})") from None


def _limits(request: ExtendRequest) -> tuple[tuple[str, ...], int | None, str]:
    """Formats and file size the images' consumer takes, and its name."""
    if request.mode == "keyframes" and request.keyframe_spec is not None:
        return ("png", "jpeg", "webp"), None, request.keyframe_spec.id
    reference = request.spec.reference
    if reference is None:
        return ("png", "jpeg", "webp"), None, request.spec.id
    return reference.formats, reference.max_bytes, request.spec.id


def checked_references(request: ExtendRequest, settings: Settings) -> list[tuple[bytes, str, int, int]]:
    """Every reference image's bytes, MIME type and size, or an InputError naming `references`."""
    formats, max_bytes, consumer = _limits(request)
    found = []
    for source in request.references:
        data = _read(source, settings)
        try:
            kind = image_type(data)
            height, width = decode_png(data).shape[:2]
        except ValueError:
            raise InputError("references", f"{source} is not a readable image", "PNG, JPEG or WebP files") from None
        if SUFFIX[kind] not in formats:
            raise InputError(
                "references", f"{source} is {SUFFIX[kind].upper()}, which {consumer} does not take", formats
            )
        if max_bytes is not None and len(data) > max_bytes:
            raise InputError(
                "references",
                f"{source} is {len(data) / 2**20:.1f} MB, more than {consumer} takes",
                f"files up to {max_bytes / 2**20:.0f} MB",
            )
        found.append((data, kind, width, height))
    return found


def store_references(job: Job) -> list[ImageRecord]:
    """The request's reference images, checked and copied into the job folder."""
    records = []
    for index, (data, kind, width, height) in enumerate(checked_references(job.request, job.settings), start=1):
        rel = layout.reference(index, SUFFIX[kind])
        job.store.write_bytes(rel, data)
        records.append(ImageRecord(path=rel, sha256=sha256_bytes(data), width=width, height=height))
    return records
