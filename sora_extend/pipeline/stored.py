"""Results already in the job folder: finding a finished one, reading a still back, keeping earlier takes."""

from __future__ import annotations

import logging
from typing import TypeVar

from sora_extend import layout
from sora_extend.errors import MediaError
from sora_extend.hashing import sha256_bytes
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.records import ImageRecord, PaidResult

logger = logging.getLogger(__name__)
ResultT = TypeVar("ResultT", bound=PaidResult)


def finished(job: Job, record_rel: str, key: str, model: type[ResultT], label: str) -> ResultT | None:
    """The stored record if it was produced from exactly this content key and its file is whole."""
    record = job.store.read_model(record_rel, model)
    if record is None or record.key != key:
        return None
    expected = getattr(record, "bytes", None)
    size = job.store.size(record.path)
    if size is None or (expected is not None and size != expected):
        return None
    logger.info("%s: already rendered (%s), nothing to pay", label, record.request_id)
    return record


def read_image(job: Job, record: ImageRecord) -> bytes:
    """A stored still's bytes, refusing one that changed since it was recorded."""
    data = job.store.read_bytes(record.path)
    if sha256_bytes(data) != record.sha256:
        raise MediaError(f"{job.store.url(record.path)} changed since it was recorded; rerun to make it again")
    return data


def keep_earlier_take(job: Job, record_rel: str, model: type[ResultT], history: str) -> None:
    """Move the current take aside before a re-render replaces it: nothing paid for is deleted."""
    old = job.store.read_model(record_rel, model)
    if old is None or not job.store.exists(old.path):
        return
    suffix = old.path.rsplit(".", 1)[-1]
    target = layout.earlier_take(history, old.index, old.take, old.sha256, suffix)
    job.store.move(old.path, target)
    job.store.write_json(target.removesuffix(f".{suffix}") + ".json", old.model_copy(update={"path": target}))
