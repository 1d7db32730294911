"""At most one paid submission per intent on fal, and prices that match the bill: through the real
flow and the fal emulator's queue and Platform API (validated against fal's documented parameters)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flows.extend import extend_video
from sora_extend import layout
from sora_extend.errors import TerminalProviderError
from sora_extend.pipeline.budget import estimate
from sora_extend.pricing import price_book_for
from sora_extend.request import ExtendRequest
from sora_extend.settings import get_settings, reload_settings
from sora_extend.storage.store import JobStore
from tests.emulators import Fault
from tests.test_faults import inject_after, per_segment, tiny

pytestmark = pytest.mark.slow
TINY_I2V = "fal-ai/tiny-video/image-to-video"


def _reconciled(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reconciled" in r.getMessage()]


def test_an_accepted_submit_whose_answer_was_lost_is_adopted_not_paid_again(
    prefect_harness: None, fal_emulator: Any, storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sora_extend")
    request = tiny("Lost answer on segment 2")
    inject_after(fal_emulator, 1, "submit", Fault.lost_answer())
    result = extend_video(request=request)
    assert [route for route, _ in fal_emulator.fault_log] == ["submit"]  # fal queued it, the answer was reset
    assert per_segment(fal_emulator, request) == [1, 1, 1]  # exactly one generation registered for it
    assert _reconciled(caplog) and "segment 2: reconciled" in _reconciled(caplog)[0]
    ledger = JobStore(storage_url, result.job_id).read_json(layout.MANIFEST)["ledger"]
    second = next(entry for entry in ledger if entry["segment"] == 2)
    assert second["request_id"] == fal_emulator.submissions[1].request_id and second["history"] == []


def test_an_answer_slower_than_the_client_timeout_is_adopted_too(
    prefect_harness: None,
    fal_emulator: Any,
    storage_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sora_extend")
    monkeypatch.setenv("SORA_EXTEND_HTTP_TIMEOUT_S", "1")
    reload_settings()
    request = tiny("Slow answer on segment 2", segments=2)
    inject_after(fal_emulator, 1, "submit", Fault.slow_answer(2.5))
    extend_video(request=request)
    assert per_segment(fal_emulator, request) == [1, 1]
    assert _reconciled(caplog)


def test_a_submit_that_never_arrived_is_sent_again_once_the_list_confirms_it(
    prefect_harness: None, fal_emulator: Any, storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sora_extend")
    request = tiny("Reset before fal saw it", segments=2)
    inject_after(fal_emulator, 1, "submit", Fault.reset())  # the connection drops before fal queues it
    extend_video(request=request)
    assert per_segment(fal_emulator, request) == [1, 1]
    assert any("never accepted; submitting again" in r.getMessage() for r in caplog.records)


def test_when_the_request_list_cannot_be_read_nothing_is_submitted_again(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    request = tiny("Lost answer, Platform API down", segments=2)
    inject_after(fal_emulator, 1, "submit", Fault.lost_answer())
    fal_emulator.inject("platform", Fault.status(503), times=20)
    with pytest.raises(TerminalProviderError, match=r"request id was never recorded.*Looking it up failed"):
        extend_video(request=request)
    assert per_segment(fal_emulator, request) == [1, 1]  # the lost one was accepted: never sent twice
    state = JobStore(storage_url, request.job_id()).read_json(layout.JOB_STATE)
    assert state["status"] == "failed"


def test_estimate_and_budget_use_fals_live_prices_and_say_so(fal_emulator: Any, storage_url: str) -> None:
    fal_emulator.prices = {TINY_I2V: (0.30, "second"), "fal-ai/tiny-video/text-to-video": (0.30, "second")}
    request = tiny("Priced live", segments=3)
    quote = estimate(request, price_book_for(request, get_settings()))
    assert quote.segment_usd == [0.30, 0.30, 0.30] and "fal live price 0.3 USD/second" in quote.price_source
    assert quote.total_usd == pytest.approx(0.90)


def test_with_the_pricing_api_down_the_estimate_falls_back_and_says_so(fal_emulator: Any, storage_url: str) -> None:
    fal_emulator.inject("platform", Fault.status(500))
    request = tiny("Priced offline", segments=3)
    quote = estimate(request, price_book_for(request, get_settings()))
    assert quote.total_usd == pytest.approx(0.45)  # the catalogue's $0.15 per 1 s clip
    assert quote.price_source.startswith("catalogue") and "live prices unavailable (HTTP 500)" in quote.price_source


def test_the_manifest_records_the_price_source_per_segment(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    fal_emulator.prices = {TINY_I2V: (0.20, "second"), "fal-ai/tiny-video/text-to-video": (0.25, "second")}
    request = ExtendRequest(prompt="Priced per segment", provider="fal", model="tiny-fal", segments=2, seconds=1)
    result = extend_video(request=request)
    manifest = JobStore(storage_url, result.job_id).read_json(layout.MANIFEST)
    assert [s["cost_usd"] for s in manifest["segments"]] == [0.25, 0.20]
    assert all("fal live price" in s["price_source"] for s in manifest["segments"])
    assert manifest["cost_usd"] == pytest.approx(0.45) and result.cost_usd == pytest.approx(0.45)
