"""Status polls: soon after a submission, then further and further apart up to the configured interval."""

from __future__ import annotations

from itertools import pairwise

import pytest

from sora_extend.providers.fal import FalProvider
from sora_extend.providers.polling import GROWTH, PollPacer
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings
from tests.test_providers import _tiny_generation


def test_waits_grow_from_a_tenth_of_a_second_to_the_interval_and_start_over_when_asked() -> None:
    pacer = PollPacer(2.0)
    waits = [pacer.next_wait_s() for _ in range(20)]
    assert waits[0] == 0.1 and waits[-1] == 2.0
    assert all(later == min(earlier * GROWTH, 2.0) for earlier, later in pairwise(waits))
    assert sum(waits[:3]) < 0.4  # polls at 0, 0.1, 0.225, 0.38 s: a 0.3 s piece is seen done by the 4th
    assert pacer.next_wait_s(asked_s=5.0) == 5.0  # the provider's Retry-After is never undercut
    pacer.restart()
    assert pacer.next_wait_s() == 0.1
    assert PollPacer(0.05).next_wait_s() == 0.05  # never longer than the interval, even the first wait


def test_fal_polls_on_the_pacers_schedule_and_starts_over_when_the_render_starts(
    fal_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SORA_EXTEND_POLL_INTERVAL_S", "2")
    seen: list[tuple[str, object]] = []  # the wait loop's state changes and sleeps, in order
    planned = PollPacer.next_wait_s

    def spy(pacer: PollPacer, asked_s: float | None = None) -> float:
        seen.append(("wait", planned(pacer, asked_s)))
        return float(seen[-1][1])  # type: ignore[arg-type]

    monkeypatch.setattr(PollPacer, "next_wait_s", spy)
    provider = FalProvider(ExtendRequest(prompt="x", provider="fal", model="tiny-fal").spec, reload_settings())
    submission = provider.submit(_tiny_generation(1))
    outcome = provider.wait(submission, lambda state, detail: seen.append(("state", state)), timeout_s=60)
    provider.close()
    assert outcome.media_url and seen[-1] == ("state", "COMPLETED") and ("state", "IN_PROGRESS") in seen
    last_wait = None
    for number, (kind, value) in enumerate(seen):
        if kind == "wait":
            restarted = last_wait is None or seen[number - 1] == ("state", "IN_PROGRESS")
            assert value == (0.1 if restarted else min(last_wait * GROWTH, 2.0)), seen
            last_wait = value
