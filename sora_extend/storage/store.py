"""One folder per job, read and written through fsspec so every worker can share it.

What goes where is `sora_extend.layout`'s business. Files are streamed (fs.put/fs.get), never read
whole into memory for copies; JSON documents are replaced atomically (local: write then rename; object
stores: a single PUT is atomic).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import uuid
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel

from sora_extend.errors import InputError
from sora_extend.request import normalise_storage_url
from sora_extend.settings import Settings, get_settings

ModelT = TypeVar("ModelT", bound=BaseModel)


def storage_options(url: str, settings: Settings | None = None) -> dict[str, Any]:
    """fsspec options for a URL: endpoint, region, profile, and keys only when they came from a Prefect
    Secret block at run time. Otherwise credentials stay where AWS tools read them (environment, ~/.aws,
    instance roles). These options are never logged, stored or passed as parameters."""
    settings = settings or get_settings()
    protocol = fsspec.core.split_protocol(url)[0]
    if protocol not in {"s3", "s3a"}:
        return {}
    # Listings are read fresh: another worker may have added ledger entries or segments meanwhile.
    options: dict[str, Any] = {"use_listings_cache": False}
    client_kwargs: dict[str, Any] = {}
    if settings.s3_endpoint_url:
        options["endpoint_url"] = settings.s3_endpoint_url
    if settings.s3_region:
        client_kwargs["region_name"] = settings.s3_region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    if settings.aws_profile:
        options["profile"] = settings.aws_profile
    if settings.s3_key and settings.s3_secret:
        options["key"] = settings.s3_key.get_secret_value()
        options["secret"] = settings.s3_secret.get_secret_value()
        if settings.s3_token:
            options["token"] = settings.s3_token.get_secret_value()
    return options


def open_filesystem(url: str, settings: Settings | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the root path (without protocol) for a storage URL."""
    fs, root = fsspec.core.url_to_fs(url, **storage_options(url, settings))
    return fs, root.rstrip("/")


def check_storage(url: str, settings: Settings | None = None) -> str:
    """The normalised storage URL, once it is known to be usable: a local folder that exists or can be
    created and is writable; on an object store, a bucket that exists and answers. InputError otherwise,
    before anything starts."""
    url = normalise_storage_url(url)
    try:
        fs, root = open_filesystem(url, settings)
        if isinstance(fs, LocalFileSystem):
            problem = unwritable(Path(root))
            if problem:
                raise InputError("storage", problem)
        else:
            # Object stores (s3fs, gcsfs, adlfs) split paths into bucket and key; a missing bucket is no error
            # to them, only an empty listing.
            bucket = fs.split_path(root)[0] if hasattr(fs, "split_path") else ""
            if bucket and not fs.exists(bucket):
                raise InputError("storage", f"bucket '{bucket}' does not exist (or these credentials cannot see it)")
            fs.exists(root)  # a round trip: endpoint, credentials and permissions answer here
    except InputError:
        raise
    except Exception as exc:  # every filesystem has its own errors; the person needs the message
        raise InputError("storage", f"'{url}' cannot be reached: {type(exc).__name__}: {exc}") from exc
    return url


def unwritable(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (which need not exist yet: its nearest existing parent must be
    a writable folder), or None when they can."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


class JobStore:
    """The files of one job under `<storage>/<job_id>/`."""

    def __init__(self, storage_url: str, job_id: str, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self.storage_url = storage_url.rstrip("/")
        self.job_id = job_id
        self.public_url = settings.public_url
        self.fs, root = open_filesystem(storage_url, settings)
        self.root = posixpath.join(root, job_id)
        self._protocol = fsspec.core.split_protocol(storage_url)[0] or "file"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def url(self, rel: str = "") -> str:
        """A storage URL for a file of this job (what the manifest records)."""
        return f"{self._protocol}://{self.path(rel) if rel else self.root}"

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def size(self, rel: str) -> int | None:
        try:
            return int(self.fs.size(self.path(rel)))
        except FileNotFoundError:
            return None

    def listdir(self, rel: str) -> list[str]:
        """Names (not paths) of the files directly under `rel`; empty if it does not exist."""
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(str(entry).rstrip("/")) for entry in entries)

    def read_bytes(self, rel: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(rel)))

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        if self.is_local:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            temp = f"{target}.{uuid.uuid4().hex}.tmp"
            self.fs.pipe_file(temp, data)
            self.fs.mv(temp, target)
        else:
            self.fs.pipe_file(target, data)

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Write `rel` only if it does not exist yet, atomically. False if it already did.
        Object stores: a conditional PUT (If-None-Match: *). Local: a complete temp file hard-linked
        into place (fsspec's local "create" mode checks, then writes: not atomic)."""
        target = self.path(rel)
        if not self.is_local:
            try:
                self.fs.pipe_file(target, data, mode="create")
            except FileExistsError:
                return False
            return True
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        temp = f"{target}.{uuid.uuid4().hex}.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
        try:
            os.link(temp, target)
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)
        return True

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_json(self, rel: str, value: Any) -> None:
        if isinstance(value, BaseModel):
            text = value.model_dump_json(indent=2)
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        self.write_bytes(rel, text.encode("utf-8"))

    def read_model(self, rel: str, model: type[ModelT]) -> ModelT | None:
        """The document parsed as `model`, or None if it does not exist."""
        try:
            return model.model_validate_json(self.read_bytes(rel))
        except FileNotFoundError:
            return None

    def put_file(self, local: Path, rel: str) -> None:
        target = self.path(rel)
        if self.is_local:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            temp = f"{target}.{uuid.uuid4().hex}.tmp"
            self.fs.put_file(str(local), temp)
            self.fs.mv(temp, target)
        else:
            self.fs.put_file(str(local), target)

    def get_file(self, rel: str, local: Path) -> Path:
        local.parent.mkdir(parents=True, exist_ok=True)
        temp = local.with_name(f"{local.name}.{uuid.uuid4().hex}.part")
        self.fs.get_file(self.path(rel), str(temp))
        temp.replace(local)
        return local

    def move(self, rel: str, new_rel: str) -> None:
        if self.is_local:
            self.fs.makedirs(posixpath.dirname(self.path(new_rel)), exist_ok=True)
        self.fs.mv(self.path(rel), self.path(new_rel))

    def delete(self, rel: str) -> None:
        self.fs.rm(self.path(rel), recursive=True)

    def delete_files(self, rels: list[str]) -> None:
        """Delete these files (one request for all of them on S3); one that is already gone is no error."""
        paths = [self.path(rel) for rel in rels]
        if not paths:
            return
        if not self.is_local:
            self.fs.rm(paths)  # a bulk delete: missing keys are not reported
            return
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """The bytes of each of these files that exists, by `rel` (fetched concurrently from object stores)."""
        if not rels:
            return {}
        paths = {self.path(rel): rel for rel in rels}
        found = self.fs.cat(list(paths), on_error="omit")
        return {paths[posixpath.normpath(str(path))]: bytes(data) for path, data in found.items()}

    def public_link(self, rel: str) -> str | None:
        """The file's address on the media server over the storage root (SORA_EXTEND_PUBLIC_URL), if one
        is configured: `sora-extend serve` answers `/<job-id>/<rel>`."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/{quote(self.job_id, safe='')}/{quote(rel)}"

    def web_link(self, rel: str, ttl_s: int) -> str | None:
        """A link a browser anywhere can open (for artifacts in the Prefect UI): the media server's, else a
        presigned URL; None when there is neither (local storage and no SORA_EXTEND_PUBLIC_URL)."""
        if self.public_url is not None:
            return self.public_link(rel)
        if self.is_local:
            return None
        try:
            return str(self.fs.sign(self.path(rel), expiration=ttl_s))
        except NotImplementedError:
            return None

    def link(self, rel: str, ttl_s: int) -> str:
        """Something a person can open: a browser link where there is one (see `web_link`), else the file's
        path (local storage) or its storage URL."""
        return self.web_link(rel, ttl_s) or (self.path(rel) if self.is_local else self.url(rel))
