"""The job folder's layout: every path inside `<storage>/<job-id>/`, and nowhere else.

    job.json  plan.json  prices.json  references/NN.png  keyframes/NN.png (+ NN.json)  segments/NN.mp4 (+ NN.json)
    keyframes/NN-takes.json  segments/NN-takes.json  verdicts/<key>.json  …/history/NN-takeT-<sha>.*
    frames/NN.png (+ NN.json)  soundtrack/score.<ext> (+ score.json)  ledger/<key>.json  locks/<key>.json
    final.mp4  final.json
    seams.json  drift.json  contact_sheet.png  poster.jpg  review/…  review.html  manifest.json

Beside the job folders, the library's index (`sora_extend.library.index`), in a folder whose dot keeps it
out of every job listing and off the media server:

    .library/jobs/<job-id>.json  .library/changes/<job-id>+<uuid>+<owner>  .library/snapshots/<seq>.json.gz

`segments/NN.*` (`keyframes/NN.*`) is the take in use; every other take of the piece is kept in `history/`.

Keyframes are numbered from 0 (the boundary before segment 1); segments and hand-off frames from 1.
"""

from __future__ import annotations

JOB_STATE = "job.json"
PLAN = "plan.json"
PRICES = "prices.json"
FINAL = "final.mp4"
FINAL_RECORD = "final.json"
MANIFEST = "manifest.json"
SEAMS = "seams.json"
DRIFT = "drift.json"
CONTACT_SHEET = "contact_sheet.png"
POSTER = "poster.jpg"
REVIEW_PAGE = "review.html"
REVIEW_DIR = "review"
LEDGER_DIR = "ledger"
SEGMENT_HISTORY_DIR = "segments/history"
KEYFRAME_HISTORY_DIR = "keyframes/history"
SCORE_RECORD = "soundtrack/score.json"
SCORE_HISTORY_DIR = "soundtrack/history"


def segment(index: int) -> str:
    return f"segments/{index:02d}.mp4"


def segment_record(index: int) -> str:
    return f"segments/{index:02d}.json"


def score(suffix: str) -> str:
    """The music for the whole video, as the model delivered it (mp3, m4a, wav...)."""
    return f"soundtrack/score.{suffix}"


def keyframe(index: int) -> str:
    return f"keyframes/{index:02d}.png"


def keyframe_record(index: int) -> str:
    return f"keyframes/{index:02d}.json"


def segment_takes(index: int) -> str:
    """The quality gate's record of a segment: every take, its verdict, which one is used and why."""
    return f"segments/{index:02d}-takes.json"


def keyframe_takes(index: int) -> str:
    return f"keyframes/{index:02d}-takes.json"


def verdict(key: str) -> str:
    """A judge's verdict on one take, by its content key (the file judged and what it was asked to be)."""
    return f"verdicts/{key}.json"


def clip_review(sha256: str) -> str:
    """A clip's review material (its drift signature), by the clip's hash: computed once, whatever uses it."""
    return f"{REVIEW_DIR}/clips/{sha256[:16]}.json"


def handoff(index: int) -> str:
    return f"frames/{index:02d}.png"


def handoff_record(index: int) -> str:
    return f"frames/{index:02d}.json"


def earlier_take(history_dir: str, index: int, take: int, sha256: str, suffix: str) -> str:
    """Where an earlier take is kept when a re-render replaces it (nothing paid for is deleted)."""
    return f"{history_dir}/{index:02d}-take{take}-{sha256[:12]}.{suffix}"


def reference(index: int, suffix: str) -> str:
    """A copy of the subject's reference image `index` (1-based), as given (png, jpeg or webp)."""
    return f"references/{index:02d}.{suffix}"


def ledger_entry(key: str) -> str:
    return f"{LEDGER_DIR}/{key}.json"


def lock(key: str) -> str:
    return f"locks/{key}.json"


def review_image(name: str) -> str:
    return f"{REVIEW_DIR}/{name}"


# The library's index, relative to its folder LIBRARY_DIR at the storage root.
LIBRARY_DIR = ".library"
LIBRARY_CHANGES_DIR = "changes"
LIBRARY_SNAPSHOTS_DIR = "snapshots"


def library_entry(job_id: str) -> str:
    return f"jobs/{job_id}.json"


def library_change(job_id: str, token: str, owner: str | None) -> str:
    return f"{LIBRARY_CHANGES_DIR}/{job_id}+{token}+{owner or ''}"


def library_snapshot(seq: int) -> str:
    return f"{LIBRARY_SNAPSHOTS_DIR}/{seq:010d}.json.gz"
