"""The library's index: one small record per job beside the job folders, readable without opening them.

    .library/jobs/<job-id>.json             the job's entry, replaced whole and atomically at every write
    .library/changes/<job-id>+<uuid>+<who>  a notice per write: which job changed, and for whom (never rewritten)
    .library/snapshots/<seq>.json.gz        every entry as of a compaction (created exclusively, numbered)

Why this shape. Listing thousands of objects on S3 costs seconds, so a reader must not list the records. It
reads the newest snapshot once, then lists only the changes (a few dozen at most) and re-reads the entries
they name. Safe with two workers:

1. A writer replaces the job's entry (one PUT, or write-and-rename locally), then creates a notice with a
   unique name. Nobody rewrites a notice, so two writers never lose each other's notice; a reader that sees
   a notice re-reads an entry at least as new as the write it announces.
2. Owners only accumulate: the notice's name carries the owner of the run that wrote it, and a reader adds
   it to the job's owners. Two people starting the same video at once both stay owners, whatever order
   their entry writes land in.
3. A compaction (by a reader, or a writer once notices pile up) writes snapshot seq+1 with an exclusive
   create, so of two compactions at once only one succeeds; only the winner deletes the notices it read,
   and only after the snapshot exists. Notices that arrived meanwhile stay for the next one.
4. A reader lists the notices before the snapshots. A compaction creates its snapshot before deleting
   notices, so a reader that missed a deleted notice sees the snapshot that holds it.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from sora_extend import layout
from sora_extend.ledger import utcnow
from sora_extend.library.entry import LibraryEntry
from sora_extend.owners import OWNER_NAME
from sora_extend.settings import Settings
from sora_extend.storage.store import JobStore

logger = logging.getLogger(__name__)

READER_COMPACTS_AT = 24  # notices; a cold reader re-reads fewer entries than this (each a GET on S3)
WRITER_COMPACTS_AT = 512  # a storage nobody serves still stays compact


class Snapshot(BaseModel):
    seq: int
    written_at: datetime = Field(default_factory=utcnow)
    entries: dict[str, LibraryEntry]


class Notice(BaseModel):
    name: str
    job_id: str
    owner: str | None


# Exact names only: a local exclusive create passes through `<name>.<uuid>.tmp` in the same folder.
_NOTICE = re.compile(rf"(?P<job>[^+/]+)\+(?P<token>[0-9a-f]{{32}})\+(?P<owner>{OWNER_NAME.pattern})?")
_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.tmp")
_SNAPSHOT = re.compile(r"(?P<seq>[0-9]{10})\.json\.gz")


def _notice(name: str) -> Notice | None:
    found = _NOTICE.fullmatch(name)
    if found is None or _TEMPORARY.search(name):
        return None
    return Notice(name=name, job_id=found["job"], owner=found["owner"])


class LibraryIndex:
    """The index of one storage. A long-lived reader (the media server) keeps the entries in memory and
    refreshes them with two small listings per read."""

    def __init__(self, storage_url: str, settings: Settings | None = None) -> None:
        self.store = JobStore(storage_url, layout.LIBRARY_DIR, settings)  # the same atomic writes as a job's
        self._lock = threading.Lock()
        self._seq = -1
        self._entries: dict[str, LibraryEntry] = {}
        self._applied: set[str] = set()

    # ------------------------------------------------------------------ writing (workers, purge, reindex)

    def get(self, job_id: str) -> LibraryEntry | None:
        return self.store.read_model(layout.library_entry(job_id), LibraryEntry)

    def put(self, entry: LibraryEntry, owner: str | None) -> None:
        """Replace the job's entry, then announce it (in this order: see the module's step 1)."""
        self.store.write_json(layout.library_entry(entry.job_id), entry)
        self._announce(entry.job_id, owner)
        self.compact(WRITER_COMPACTS_AT)

    def forget(self, job_id: str) -> None:
        """Drop a deleted job from the library."""
        self.store.delete_files([layout.library_entry(job_id)])
        self._announce(job_id, None)

    def _announce(self, job_id: str, owner: str | None) -> None:
        self.store.create_exclusive(layout.library_change(job_id, uuid.uuid4().hex, owner), b"")

    # ------------------------------------------------------------------ reading

    def entries(self) -> dict[str, LibraryEntry]:
        """Every job's entry, by job id, as of now (folding the notices into a snapshot once they pile up)."""
        with self._lock:
            self._refresh()
            if len(self._applied) >= READER_COMPACTS_AT:
                self._write_snapshot(self._seq + 1, self._entries, sorted(self._applied))
            return dict(self._entries)

    def _refresh(self) -> None:
        for _ in range(5):
            notices = self._notices()  # before the snapshots: see the module's step 4
            seq = self._latest_snapshot()
            try:
                if seq != self._seq:
                    self._load_snapshot(seq)
                self._apply([notice for notice in notices if notice.name not in self._applied])
            except FileNotFoundError:  # a compaction removed the snapshot we were about to read
                self._seq = -2
                continue
            self._applied &= {notice.name for notice in notices}  # forget notices a compaction absorbed
            return
        raise RuntimeError(f"the library index at {self.store.url()} kept changing while being read")

    def _notices(self) -> list[Notice]:
        names = self.store.listdir(layout.LIBRARY_CHANGES_DIR)
        return [notice for notice in map(_notice, names) if notice is not None]

    def _latest_snapshot(self) -> int:
        return max(self._snapshot_numbers(), default=-1)

    def _load_snapshot(self, seq: int) -> None:
        if seq < 0:
            self._entries = {}
        else:
            data = gzip.decompress(self.store.read_bytes(layout.library_snapshot(seq)))
            self._entries = Snapshot.model_validate_json(data).entries
        self._seq = seq
        self._applied = set()

    def _apply(self, notices: list[Notice]) -> None:
        if not notices:
            return
        changed = sorted({notice.job_id for notice in notices})
        found = self.store.read_many([layout.library_entry(job_id) for job_id in changed])
        for job_id in changed:
            data = found.get(layout.library_entry(job_id))
            if data is None:
                self._entries.pop(job_id, None)  # deleted (purged)
                continue
            entry = LibraryEntry.model_validate_json(data)
            owners = set(entry.owners) | {
                notice.owner for notice in notices if notice.job_id == job_id and notice.owner
            }
            previous = self._entries.get(job_id)
            if previous is not None:
                owners |= set(previous.owners)
            self._entries[job_id] = entry.model_copy(update={"owners": sorted(owners)})
        self._applied |= {notice.name for notice in notices}

    # ------------------------------------------------------------------ compaction

    def compact(self, at_least: int = 1) -> bool:
        """Fold the notices into a new snapshot once there are `at_least` of them; False when there were fewer
        or another compaction won the race (see the module's step 3)."""
        if len(self.store.listdir(layout.LIBRARY_CHANGES_DIR)) < at_least:  # one small listing, no reading
            return False
        with self._lock:
            self._refresh()
            return bool(self._applied) and self._write_snapshot(self._seq + 1, self._entries, sorted(self._applied))

    def replace_all(self, entries: dict[str, LibraryEntry], absorbed: list[str]) -> None:
        """Make `entries` the whole index (a reindex), absorbing the notices named in `absorbed`."""
        with self._lock:
            while not self._write_snapshot(max(self._latest_snapshot(), self._seq) + 1, entries, absorbed):
                pass  # another compaction took that number: take the next

    def notice_names(self) -> list[str]:
        return [notice.name for notice in self._notices()]

    def _write_snapshot(self, seq: int, entries: dict[str, LibraryEntry], absorbed: list[str]) -> bool:
        snapshot = Snapshot(seq=seq, entries=entries)
        if not self.store.create_exclusive(
            layout.library_snapshot(seq), gzip.compress(snapshot.model_dump_json().encode())
        ):
            return False
        stale = [f"{layout.LIBRARY_CHANGES_DIR}/{name}" for name in absorbed]
        stale += [layout.library_snapshot(old) for old in self._snapshot_numbers() if old < seq - 1]
        self.store.delete_files(stale)  # readers tolerate both the notices and an older snapshot vanishing
        self._seq, self._entries = seq, dict(entries)
        self._applied -= set(absorbed)
        logger.info("library index: snapshot %d with %d jobs, %d notices folded in", seq, len(entries), len(absorbed))
        return True

    def _snapshot_numbers(self) -> list[int]:
        found = (_SNAPSHOT.fullmatch(name) for name in self.store.listdir(layout.LIBRARY_SNAPSHOTS_DIR))
        return [int(match["seq"]) for match in found if match]
