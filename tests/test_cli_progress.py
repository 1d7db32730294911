"""`sora-extend run`'s progress: the state of each piece from the pipeline's events, as plain lines (not a
terminal) and as a live view (a terminal, here a pseudo-terminal)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from cli.progress import Tracker, plain_line
from sora_extend.events import Event
from sora_extend.request import ExtendRequest
from tests.terminal import plain, run_in_terminal

CLI = str(Path(sys.executable).with_name("sora-extend"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_state_change_with_cost_and_eta() -> None:
    clock = Clock()
    request = ExtendRequest(prompt="A kite", segments=2, seconds=4, resolution="360p")
    tracker = Tracker.for_request(request, clock)
    assert list(tracker.pieces) == ["segment-01", "segment-02", "merge"]
    events = [
        Event(step="segment-01", state="started"),
        Event(step="segment-01", state="submitted", request_id="req-1", cost_usd=0.4),
        Event(step="segment-01", state="in_progress", request_id="req-1"),
        Event(step="segment-01", state="in_progress", request_id="req-1"),  # a second poll: no new line
        Event(step="segment-01", state="downloading", request_id="req-1"),
        Event(step="handoff-01", state="started"),  # hand-offs are not shown unless they fail
        Event(step="segment-01", state="done", request_id="req-1", cost_usd=0.4),
        Event(step="segment-02", state="started"),
    ]
    lines = []
    for event in events:
        clock.now += 10
        piece = tracker.update(event)
        if piece is not None:
            lines.append(plain_line(tracker, piece))
    assert [line.split()[1:4] for line in lines] == [
        ["segment", "01", "starting"],
        ["segment", "01", "submitted"],
        ["segment", "01", "in"],
        ["segment", "01", "downloading"],
        ["segment", "01", "done"],
        ["segment", "02", "starting"],
    ]
    assert lines[1] == "[0:20] segment 01  submitted req-1 $0.40"
    assert lines[4].endswith("req-1 $0.40 in 60.0 s (cost so far $0.40, ETA 1:00)")
    assert tracker.cost() == pytest.approx(0.4)
    # segment 1 took 60 s; segment 2 started 0 s ago: about 60 s left.
    assert tracker.eta_s() == pytest.approx(60.0)

    cached = tracker.update(Event(step="segment-02", state="done", cost_usd=0.4))
    assert cached is not None and plain_line(tracker, cached).split()[3:5] == ["done", "(stored)"]
    failed = tracker.update(Event(step="handoff-02", state="failed", detail="disk full\ntraceback..."))
    assert failed is not None and plain_line(tracker, failed).endswith("failed - disk full")


def test_a_flawed_take_shows_what_the_judge_found_and_every_take_is_counted() -> None:
    clock = Clock()
    tracker = Tracker.for_request(ExtendRequest(prompt="A kite", segments=2, seconds=4, resolution="360p"), clock)
    events = [
        Event(step="segment-01", state="started"),
        Event(step="segment-01", state="submitted", request_id="req-1", cost_usd=0.4),
        Event(step="segment-01", state="judging", detail="take 1"),
        Event(step="segment-01", state="flawed", detail="hard cut at 2.1 s → take 2"),
        Event(step="segment-01", state="submitted", request_id="req-2", cost_usd=0.4),
        Event(step="segment-01", state="judging", detail="take 2"),
        Event(step="segment-01", state="done", request_id="req-2", cost_usd=0.4),
    ]
    lines = [plain_line(tracker, piece) for event in events if (piece := tracker.update(event)) is not None]
    assert [line.split(maxsplit=3)[3] for line in lines] == [
        "starting",
        "submitted req-1 $0.40",
        "judging req-1",
        "flawed: hard cut at 2.1 s → take 2",
        "submitted req-2 $0.80",
        "judging req-2",
        "done req-2 $0.80 in 0.0 s (cost so far $0.80)",
    ]
    assert tracker.cost() == pytest.approx(0.8)  # both takes were paid for


def test_keyframes_mode_lists_the_stills_first() -> None:
    request = ExtendRequest(prompt="A kite", segments=2, seconds=4, resolution="360p", continuity="keyframes")
    steps = list(Tracker.for_request(request).pieces)
    assert steps == ["keyframe-00", "keyframe-01", "keyframe-02", "segment-01", "segment-02", "merge"]


@pytest.mark.slow
def test_live_view_on_a_terminal(api_url: str, tmp_path: Path) -> None:
    """The real command in a pseudo-terminal, against the session's Prefect server: a redrawn table, no
    Prefect log lines, then the video, the review page and the cost."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "SORA_EXTEND_STORAGE": f"file://{tmp_path / 'out'}",
        "SORA_EXTEND_WORK_DIR": str(tmp_path / "work"),
    }
    args = [CLI, "run", "A kite over the Han river", "--segments", "2", "--seconds", "1", "--resolution", "360p"]
    screen, stderr, returncode = run_in_terminal(args, env)
    assert returncode == 0, screen[-3000:] + stderr[-3000:]

    assert "\x1b[1A" in screen and "\x1b[2K" in screen  # the view was redrawn in place, not appended
    text = plain(screen)
    last_frame = text[text.rindex("A kite over the Han river ·") :]
    rows = {line.split()[0] + line.split()[1]: line for line in last_frame.splitlines() if line.startswith("segment")}
    assert set(rows) == {"segment01", "segment02"} and all(" done " in row for row in rows.values())
    assert re.search(r"cost so far \$0\.00 · elapsed \d+:\d\d · ETA", last_frame)
    assert "| INFO" not in text and "Traceback" not in text + stderr and stderr.strip() == ""
    closing = last_frame.strip().splitlines()[-4:]
    assert closing[0].startswith("done: 2.00 s, 2 segments") and closing[0].endswith("total cost $0.00")
    assert closing[1].startswith("review: ") and closing[1].endswith("review.html")
    assert Path(closing[1].removeprefix("review: ")).is_file() and closing[-1].endswith("final.mp4")
