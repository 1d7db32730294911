"""How long a provider's wait loop sleeps between status polls.

A fixed interval costs a fast piece most of an interval: a still that is done in 0.3 s was seen done 2 s
after it was submitted. So the first poll comes soon after the submission and each later wait is a quarter
longer than the one before, up to the configured interval (`poll_interval_s`): a long render is polled
about as often as before, a short one is seen done at most a fifth of its own time late. (fal_client's own
`subscribe` polls every 0.1 s.) A wait starts short again when
the request leaves the queue (its render may be short even after a long queue), and never undercuts what
the provider asked for (Retry-After).
"""

from __future__ import annotations

FIRST_WAIT_S = 0.1
GROWTH = 1.25  # each wait a quarter longer than the last: a piece is seen done at most a fifth of its time late


class PollPacer:
    """The waits of one request's wait loop, longest `longest_s`."""

    def __init__(self, longest_s: float, first_s: float = FIRST_WAIT_S) -> None:
        self.longest_s = longest_s
        self.first_s = min(first_s, longest_s)
        self._next = self.first_s

    def next_wait_s(self, asked_s: float | None = None) -> float:
        """Seconds to sleep before the next poll; `asked_s` is the provider's Retry-After, when it sent one."""
        wait = self._next
        self._next = min(self._next * GROWTH, self.longest_s)
        return max(wait, asked_s or 0.0)

    def restart(self) -> None:
        """Poll soon again: the request changed state (left the queue)."""
        self._next = self.first_s
