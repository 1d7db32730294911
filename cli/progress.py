"""`sora-extend run`'s progress: one line per piece (keyframe, segment, merge) from the pipeline's progress
events, with the cost so far and an ETA.

On a terminal it is a live view (rich) that replaces Prefect's log lines; when stdout is not a terminal (CI,
pipes) it prints one plain line per state change instead; `-v` keeps Prefect's own logs and shows neither.
"""

from __future__ import annotations

import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from pydantic import BaseModel, Field
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sora_extend.events import Event
from sora_extend.events import logger as events_logger
from sora_extend.pipeline.steps import SCORE_ID, keyframe_id, segment_id
from sora_extend.request import ExtendRequest

# What a person reads for each state; "stored": done without a provider call in this run (cached).
LABELS = {
    "waiting": "waiting",
    "started": "starting",
    "submitted": "submitted",
    "resumed": "resumed",
    "queued": "queued",
    "in_progress": "in progress",
    "downloading": "downloading",
    "judging": "judging",
    "flawed": "flawed:",
    "done": "done",
    "stored": "done (stored)",
    "failed": "failed",
}
STYLES = {
    "done": "green",
    "stored": "green",
    "failed": "bold red",
    "waiting": "dim",
    "in_progress": "cyan",
    "flawed": "bold magenta",
}
RUNNING = {"started", "submitted", "resumed", "queued", "in_progress", "downloading", "judging", "flawed"}
SHOW_DETAIL = {"failed", "flawed"}  # states whose detail is part of what a person reads
FINISHED = {"done", "stored", "failed"}


class Piece(BaseModel):
    """What is known about one step of the run."""

    step: str
    state: str = "waiting"
    request_id: str | None = None
    cost_usd: float | None = None
    earlier_usd: float = Field(0.0, description="What the piece's earlier takes cost (the quality gate retook it).")
    note: str = Field("", description="What the quality gate found, kept on the row for the rest of the run.")
    called_provider: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    detail: str = ""

    @property
    def spent_usd(self) -> float | None:
        return None if self.cost_usd is None and not self.earlier_usd else self.earlier_usd + (self.cost_usd or 0.0)

    @property
    def status(self) -> str:
        """The state as a person reads it, with what the gate found when it found a flaw."""
        words = LABELS[self.state]
        return f"{words} {self.detail.splitlines()[0][:160]}" if self.state in SHOW_DETAIL and self.detail else words

    @property
    def label(self) -> str:
        kind, _, number = self.step.partition("-")
        return f"{kind} {number}".strip()

    @property
    def paid(self) -> bool:
        return self.step.startswith(("segment-", "keyframe-", SCORE_ID))


class Tracker:
    """The run's pieces, updated from events (from any thread)."""

    def __init__(self, steps: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.pieces = {step: Piece(step=step) for step in steps}
        self.peak_running = 1
        self.lock = threading.Lock()

    @classmethod
    def for_request(cls, request: ExtendRequest, clock: Callable[[], float] = time.monotonic) -> Tracker:
        steps = [keyframe_id(k) for k in range(request.segments + 1)] if request.mode == "keyframes" else []
        steps += [segment_id(k) for k in range(1, request.segments + 1)]
        steps += [SCORE_ID] if request.soundtrack != "clips" else []
        return cls([*steps, "merge"], clock)

    def update(self, event: Event) -> Piece | None:
        """Apply an event; the piece when its shown state changed (hand-offs only show when they fail)."""
        with self.lock:
            piece = self.pieces.get(event.step)
            if piece is None:
                if event.state != "failed":
                    return None
                piece = self.pieces.setdefault(event.step, Piece(step=event.step))
            now = self.clock()
            state = event.state
            if state in ("submitted", "resumed"):
                piece.called_provider = True
            if state == "done" and piece.paid and not piece.called_provider:
                state = "stored"
            if state == "started":
                piece.started_at = now
            if state in FINISHED:
                piece.finished_at = now
            if state == "flawed":
                retake = "→" in event.detail
                piece.note = f"{'retaken' if retake else 'kept flawed'}: {event.detail}"
                if retake and piece.cost_usd is not None:  # the next take is paid for on top
                    piece.earlier_usd += piece.cost_usd
                    piece.cost_usd = None
            piece.request_id = event.request_id or piece.request_id
            # "done" carries the kept take's cost: only news for a piece this run did not submit.
            if event.cost_usd is not None and not (state == "done" and piece.called_provider):
                piece.cost_usd = event.cost_usd
            piece.detail = event.detail or piece.detail
            changed = state != piece.state or state == "flawed"
            piece.state = state
            running = sum(p.paid and p.state in RUNNING for p in self.pieces.values())
            self.peak_running = max(self.peak_running, running)
            return piece.model_copy() if changed else None

    def cost(self) -> float:
        return sum(piece.spent_usd or 0.0 for piece in self.pieces.values())

    def eta_s(self) -> float | None:
        """Seconds left, from how long the pieces rendered in this run took; None before one finished."""
        now = self.clock()
        took = [
            p.finished_at - p.started_at
            for p in self.pieces.values()
            if p.paid and p.called_provider and p.state == "done" and p.started_at is not None and p.finished_at
        ]
        if not took:
            return None
        typical = statistics.mean(took)
        left = [
            max(0.0, typical - (now - p.started_at if p.started_at is not None else 0.0))
            for p in self.pieces.values()
            if p.paid and p.state not in FINISHED
        ]
        return sum(left) / self.peak_running

    def elapsed_s(self, piece: Piece | None = None) -> float:
        if piece is None:
            return self.clock() - self.started
        if piece.started_at is None:
            return 0.0
        return (piece.finished_at or self.clock()) - piece.started_at


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def plain_line(tracker: Tracker, piece: Piece) -> str:
    """One line of the non-terminal output: elapsed run time, piece, state, request id, cost; after a piece
    is done, the run's cost so far and the ETA."""
    parts = [f"[{clock_text(tracker.elapsed_s())}]", f"{piece.label:<11}", LABELS[piece.state]]
    if piece.state == "flawed":
        parts.append(piece.detail.splitlines()[0][:160])
    elif piece.request_id:
        parts.append(piece.request_id)
    if piece.spent_usd is not None and piece.state in ("submitted", "resumed", "done", "stored"):
        parts.append(f"${piece.spent_usd:.2f}")
    if piece.state in ("done", "stored", "failed") and piece.started_at is not None:
        parts.append(f"in {tracker.elapsed_s(piece):.1f} s")
    if piece.state == "failed" and piece.detail:
        parts.append(f"- {piece.detail.splitlines()[0][:160]}")
    if piece.paid and piece.state in ("done", "stored"):  # the totals, as often as the live view's footer matters
        eta = tracker.eta_s()
        parts.append(f"(cost so far ${tracker.cost():.2f}" + (f", ETA {clock_text(eta)})" if eta else ")"))
    return " ".join(parts)


def live_table(tracker: Tracker, title: str) -> Group:
    """The terminal view: a header, one row per piece, and the totals."""
    table = Table.grid(padding=(0, 2))
    for _ in range(6):
        table.add_column()
    with tracker.lock:
        pieces = [piece.model_copy() for piece in tracker.pieces.values()]
    for piece in pieces:
        timing = clock_text(tracker.elapsed_s(piece)) if piece.started_at is not None else ""
        cost = f"${piece.spent_usd:.2f}" if piece.spent_usd is not None else ""
        table.add_row(
            piece.label,
            Text(piece.status, style=STYLES.get(piece.state, "yellow")),
            piece.request_id or "",
            cost,
            timing,
            Text(piece.note, style="magenta"),
        )
    eta = tracker.eta_s()
    footer = Text(
        f"cost so far ${tracker.cost():.2f} · elapsed {clock_text(tracker.elapsed_s())} · "
        f"ETA {clock_text(eta) if eta is not None else '-'}",
        style="bold",
    )
    return Group(Text(title, style="bold"), table, footer)


class _EventHandler(logging.Handler):
    def __init__(self, on_event: Callable[[Event], None]) -> None:
        super().__init__(logging.INFO)
        self.on_event = on_event

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "sora_event", None)
        if isinstance(event, Event):
            self.on_event(event)


class _NoteHandler(logging.Handler):
    """Warnings from the pipeline, one line each (Prefect's own console lines are hidden meanwhile)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.write = write

    def emit(self, record: logging.LogRecord) -> None:
        self.write(f"warning: {record.getMessage().splitlines()[0][:300]}")


def _hide_console_logs() -> None:
    """Take every handler that prints to the terminal off the loggers (Prefect's console handler, its
    internal debug handler): the progress view speaks instead. Not put back: what Prefect prints while the
    process shuts down (its embedded server's event flush) is noise to a person running a command."""
    named = [value for value in logging.root.manager.loggerDict.values() if isinstance(value, logging.Logger)]
    terminal = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    for logger in [logging.getLogger(), *named]:
        printing = [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and h.stream in terminal]
        for handler in printing:
            logger.removeHandler(handler)
        if printing:  # else logging's last-resort handler would print their warnings after all
            logger.addHandler(logging.NullHandler())


def video_ready(event: Event) -> bool:
    """The merge is done: its event carries where the video is (printed at once; the review comes after)."""
    return event.step == "merge" and event.state == "done" and bool(event.detail)


@contextmanager
def progress_view(request: ExtendRequest, *, verbose: bool, out: TextIO | None = None) -> Iterator[Tracker]:
    """Show the run's progress while the block runs (see the module docstring for the three forms)."""
    out = out or sys.stdout
    tracker = Tracker.for_request(request)
    if verbose:
        yield tracker
        return
    _hide_console_logs()
    title = f"{request.prompt[:60]} · {request.segments} x {request.seconds} s · {request.provider}/{request.model}"
    if out.isatty():
        console = Console(file=out)
        live = Live(console=console, refresh_per_second=4, get_renderable=lambda: live_table(tracker, title))

        def draw(event: Event) -> None:
            tracker.update(event)
            if video_ready(event):
                live.console.print(f"video: {event.detail}", markup=False, highlight=False)

        with live, _attached(draw, lambda text: live.console.print(text, style="yellow", markup=False)):
            yield tracker
        return

    def show(event: Event) -> None:
        piece = tracker.update(event)
        if piece is not None:
            print(plain_line(tracker, piece), file=out, flush=True)
        if video_ready(event):
            print(f"video: {event.detail}", file=out, flush=True)

    print(title, file=out, flush=True)
    with _attached(show, lambda text: print(text, file=sys.stderr, flush=True)):
        yield tracker


@contextmanager
def _attached(on_event: Callable[[Event], object], note: Callable[[str], None]) -> Iterator[None]:
    events, notes = _EventHandler(on_event), _NoteHandler(note)
    domain = logging.getLogger("sora_extend")
    events_logger.addHandler(events)
    domain.addHandler(notes)
    try:
        yield
    finally:
        events_logger.removeHandler(events)
        domain.removeHandler(notes)
