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


def _whole(job: Job, record: PaidResult) -> bool:
    expected = getattr(record, "bytes", None)
    size = job.store.size(record.path)
    return size is not None and (expected is None or size == expected)


def finished(
    job: Job, record_rel: str, key: str, model: type[ResultT], label: str, history: str | None = None
) -> ResultT | None:
    """The stored record produced from exactly this content key, with its file whole: the piece's record, or
    an earlier take of it kept in `history` (the quality gate keeps every take)."""
    candidates = [job.store.read_model(record_rel, model)]
    if history is not None and (candidates[0] is None or candidates[0].key != key):
        index = record_rel.rsplit("/", 1)[-1].split(".")[0]
        candidates = [
            job.store.read_model(f"{history}/{name}", model)
            for name in job.store.listdir(history)
            if name.startswith(f"{index}-take") and name.endswith(".json")
        ]
    for record in candidates:
        if record is not None and record.key == key and _whole(job, record):
            logger.info("%s: already rendered (%s), nothing to pay", label, record.request_id)
            return record
    return None


def all_takes(job: Job, record_rel: str, model: type[ResultT], history: str) -> list[ResultT]:
    """Every stored take of a piece whose file is whole: the one in use, then the earlier ones."""
    index = record_rel.rsplit("/", 1)[-1].split(".")[0]
    rels = [record_rel] + [
        f"{history}/{name}"
        for name in job.store.listdir(history)
        if name.startswith(f"{index}-take") and name.endswith(".json")
    ]
    found = [job.store.read_model(rel, model) for rel in rels]
    return [record for record in found if record is not None and _whole(job, record)]


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
