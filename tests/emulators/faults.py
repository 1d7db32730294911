"""Faults the provider emulators can inject, and the thread-safe book that hands them out per route.

A `Fault` only describes what goes wrong; each emulator decides how that looks on its own wire (fal's
`{"detail": ...}` bodies versus OpenAI's `{"error": {...}}`). Faults are consumed FIFO per route; a
random mode adds seeded, reproducible faults for soak tests.
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal[
    "status", "reset", "stuck", "failed", "truncate", "expire", "bad_plan", "lost_answer", "slow_answer", "flawed"
]


@dataclass(frozen=True)
class Fault:
    """An immutable description of one injected fault (build it with the static constructors)."""

    kind: FaultKind
    code: int = 0
    retry_after: float | None = None
    error_type: str | None = None
    code_name: str | None = None
    body_json: str | None = None  # JSON text, so the fault stays hashable and immutable
    seconds: float = 0.0
    message: str = ""
    fraction: float = 0.5
    shots_delta: int = 0
    flaw: str = ""

    @property
    def body(self) -> dict[str, Any] | None:
        return None if self.body_json is None else json.loads(self.body_json)

    @staticmethod
    def status(
        code: int,
        *,
        retry_after: float | None = None,
        error_type: str | None = None,
        code_name: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> Fault:
        """Answer with this HTTP error instead of serving the request (the request has no effect)."""
        if not 400 <= code <= 599:
            raise ValueError(f"a status fault needs an HTTP error code, got {code}")
        return Fault(
            "status",
            code=code,
            retry_after=retry_after,
            error_type=error_type,
            code_name=code_name,
            body_json=None if body is None else json.dumps(body),
        )

    @staticmethod
    def reset() -> Fault:
        """Close the TCP connection without any response, before the request has any effect."""
        return Fault("reset")

    @staticmethod
    def lost_answer() -> Fault:
        """(submit) The request is accepted and queued, then the connection is reset before the answer."""
        return Fault("lost_answer")

    @staticmethod
    def slow_answer(seconds: float) -> Fault:
        """(submit) The request is accepted and queued, but the answer comes `seconds` later (past a timeout)."""
        if seconds <= 0:
            raise ValueError("slow_answer seconds must be > 0")
        return Fault("slow_answer", seconds=seconds)

    @staticmethod
    def stuck(seconds: float) -> Fault:
        """(submit/create) The new request stays queued this much longer than normal."""
        if seconds < 0:
            raise ValueError("stuck seconds must be >= 0")
        return Fault("stuck", seconds=seconds)

    @staticmethod
    def failed(code: int, error_type: str, message: str = "The generation failed.") -> Fault:
        """(generation) The request ends failed with this error instead of producing a video."""
        if not 400 <= code <= 599:
            raise ValueError(f"a failed generation needs an HTTP error code, got {code}")
        return Fault("failed", code=code, error_type=error_type, message=message)

    @staticmethod
    def flawed(flaw: str) -> Fault:
        """(clip) The generation succeeds, but the clip has this flaw (tests/flaws_factory.FILE_FLAWS): what
        the quality gate must catch."""
        return Fault("flawed", flaw=flaw)

    @staticmethod
    def truncate(fraction: float = 0.5) -> Fault:
        """(download/content) Serve only the first `fraction` of the file, with a matching Content-Length."""
        if not 0 <= fraction < 1:
            raise ValueError("truncate fraction must be in [0, 1)")
        return Fault("truncate", fraction=fraction)

    @staticmethod
    def expire() -> Fault:
        """(download) The media URL answers like an expired CDN link; a later result fetch mints a fresh one."""
        return Fault("expire")

    @staticmethod
    def bad_plan(shots_delta: int = -1) -> Fault:
        """(chat/responses) The planner answers with `shots_delta` shots too many (or too few)."""
        if shots_delta == 0:
            raise ValueError("bad_plan needs a non-zero shots_delta")
        return Fault("bad_plan", shots_delta=shots_delta)


class FaultBook:
    """Per-route FIFO queues of injected faults plus an optional seeded random mode (thread-safe)."""

    def __init__(self, allowed: Mapping[str, frozenset[FaultKind]]) -> None:
        self._allowed = dict(allowed)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {}
        self._random: dict[str, list[Fault]] = {}
        self._rate = 0.0
        self._rng = random.Random(0)
        self.log: list[tuple[str, Fault]] = []  # every fault actually applied, in order

    def _check(self, route: str, fault: Fault) -> None:
        if route not in self._allowed:
            raise ValueError(f"unknown route {route!r}; routes: {sorted(self._allowed)}")
        if fault.kind not in self._allowed[route]:
            kinds = sorted(self._allowed[route])
            raise ValueError(f"a {fault.kind!r} fault cannot apply to route {route!r} (allowed: {kinds})")

    def inject(self, route: str, fault: Fault, times: int = 1) -> None:
        self._check(route, fault)
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._queues.setdefault(route, deque()).extend([fault] * times)

    def random_faults(self, rate: float, kinds: Sequence[tuple[str, Fault]], seed: int) -> None:
        if not 0 <= rate <= 1:
            raise ValueError("rate must be in [0, 1]")
        for route, fault in kinds:
            self._check(route, fault)
        with self._lock:
            self._rate = rate
            self._rng = random.Random(seed)
            self._random = {}
            for route, fault in kinds:
                self._random.setdefault(route, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
            self._random = {}
            self._rate = 0.0

    def pending(self, route: str) -> int:
        with self._lock:
            return len(self._queues.get(route, ()))

    def take(self, route: str) -> Fault | None:
        """The fault for this call on `route`, if any: injected ones first, then the random draw."""
        with self._lock:
            queue = self._queues.get(route)
            fault: Fault | None = queue.popleft() if queue else None
            if fault is None and route in self._random:
                # Draw for every call on a listed route, so a seed replays the same pattern.
                hit = self._rng.random() < self._rate
                choice = self._rng.choice(self._random[route])
                fault = choice if hit else None
            if fault is not None:
                self.log.append((route, fault))
            return fault
