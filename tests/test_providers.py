"""Real providers through the real SDKs against loopback emulators: the fal queue for catalogue models
with every duration wire type, the OpenAI-compatible videos API with native extension, and the
OpenAI planner. Runs the whole Prefect flow."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import warnings
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows.extend import extend_video
from sora_extend.errors import TerminalProviderError
from sora_extend.media.probe import probe
from sora_extend.pipeline.budget import estimate
from sora_extend.planners import get_planner
from sora_extend.planners.openai_planner import PlannerError
from sora_extend.providers.base import GenerationRequest
from sora_extend.providers.fal import FalProvider
from sora_extend.request import ExtendRequest
from sora_extend.settings import get_settings
from sora_extend.storage.store import JobStore
from tests.emulators import Fault

pytestmark = pytest.mark.slow


def _data_uri_sha(value: str) -> str:
    return hashlib.sha256(base64.b64decode(value.split(",", 1)[1])).hexdigest()


@pytest.mark.parametrize(
    ("model", "seconds", "resolution", "wire"),
    [
        ("veo31-fast", 4, "720p", "4s"),  # "Ns" strings
        ("kling-v3-pro", 3, "1080p", "3"),  # numeric strings
        ("wan27", 2, "720p", 2),  # integers
        ("hailuo02", 6, "768p", "6"),  # numeric strings; hand-off frames uploaded to fal's CDN
    ],
)
def test_fal_models_end_to_end(
    prefect_harness: None, fal_emulator, storage_url: str, model: str, seconds: int, resolution: str, wire: object
) -> None:
    request = ExtendRequest(
        prompt=f"A glass lighthouse, rendered by {model}",
        provider="fal",
        model=model,
        segments=2,
        seconds=seconds,
        resolution=resolution,
        audio=True,
    )
    state = extend_video(request=request, return_state=True)
    result = state.result()
    store = JobStore(storage_url, result.job_id)
    info = probe(Path(store.path("final.mp4")))
    assert info.duration == pytest.approx(2 * seconds, abs=1 / 24)
    assert (info.video.width, info.video.height) == request.size

    submissions = fal_emulator.submissions
    spec = request.spec
    assert [s.endpoint for s in submissions] == [spec.endpoints.text_to_video, spec.endpoints.image_to_video]
    assert all(s.payload[spec.duration.field] == wire for s in submissions)
    assert all(type(s.payload[spec.duration.field]) is type(wire) for s in submissions)
    handoff_sha = hashlib.sha256(store.read_bytes("frames/01.png")).hexdigest()
    image = submissions[1].payload[spec.image_field]
    if spec.image_transport == "data_uri":
        assert image == f"sha256:{handoff_sha}"  # the emulator records data URIs by their content hash
    else:
        assert image.startswith(fal_emulator.url + "files/")

    manifest = store.read_json("manifest.json")
    assert [e["request_id"] for e in manifest["ledger"]] == [s.request_id for s in submissions]
    assert manifest["cost_usd"] == pytest.approx(estimate(request).total_usd)
    assert result.cost_usd == pytest.approx(estimate(request).total_usd)

    key = get_settings().fal_key.get_secret_value()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    assert any("submitted to" in log.message for log in logs)
    assert not [log for log in logs if key in log.message]
    assert key not in json.dumps(manifest)


def test_openai_compatible_videos_chain_from_handoff_frames(
    prefect_harness: None, openai_emulator, storage_url: str
) -> None:
    request = ExtendRequest(prompt="A tram crosses a snowy bridge", provider="openai", segments=3, seconds=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # our calls must not leak the SDK's Sora warning
        result = extend_video(request=request)
    created = openai_emulator.submissions
    assert [s.kind for s in created] == ["create", "create", "create"]
    assert created[0].model == "seedance-1-0-pro"
    assert [s.seconds for s in created] == ["4", "4", "4"] and created[0].size == "1280x720"
    store = JobStore(storage_url, result.job_id)
    info = probe(Path(store.path("final.mp4")))
    assert info.duration == pytest.approx(12.0, abs=0.1)


def test_openai_compatible_videos_with_native_extension(
    prefect_harness: None, openai_emulator, storage_url: str
) -> None:
    request = ExtendRequest(
        prompt="A tram crosses a snowy bridge", provider="openai", segments=3, seconds=4, continuity="extend"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # our calls must not leak the SDK's Sora warning
        result = extend_video(request=request)
    created = openai_emulator.submissions
    assert [s.kind for s in created] == ["create", "extend", "extend"]
    assert [s.seconds for s in created] == ["4", "4", "4"]
    store = JobStore(storage_url, result.job_id)
    ledger = store.read_json("manifest.json")["ledger"]
    assert [s.source for s in created[1:]] == [ledger[0]["request_id"], ledger[1]["request_id"]]
    assert probe(Path(store.path("final.mp4"))).duration == pytest.approx(12.0, abs=0.1)
    for index in (2, 3):  # each extension came back stitched; only its new part is kept
        assert probe(Path(store.path(f"segments/{index:02d}.mp4"))).duration == pytest.approx(4.0, abs=0.1)


def test_openai_planner_plans_korean_and_retries_once(openai_emulator) -> None:
    korean = "한 마리 고양이가 서울의 밤거리를 걷는다"
    request = ExtendRequest(prompt=korean, planner="openai", segments=4, seconds=4)
    openai_emulator.inject("chat", Fault.bad_plan(shots_delta=-1))
    plan = get_planner("openai", get_settings()).plan(request)
    assert len(plan.shots) == 4 and plan.language == "ko" and plan.planner.startswith("openai:")
    assert korean in plan.bible.subject
    assert all(korean in shot.prompt and plan.bible.style in shot.prompt for shot in plan.shots)
    assert "이전 장면의 마지막 프레임" in plan.shots[1].prompt
    assert len(openai_emulator.chat_requests) == 2
    correction = openai_emulator.chat_requests[1]["messages"][-1]["content"]
    assert "3 shots but 4 are needed" in correction


def test_openai_planner_gives_up_after_two_bad_plans_or_falls_back(
    prefect_harness: None, openai_emulator, storage_url: str
) -> None:
    request = ExtendRequest(prompt="A fox in the snow", planner="openai", segments=2, seconds=1, resolution="360p")
    openai_emulator.inject("chat", Fault.bad_plan(shots_delta=1), times=2)
    with pytest.raises(PlannerError, match="unusable plan twice"):
        extend_video(request=request)
    store = JobStore(storage_url, request.job_id())
    assert store.read_json("job.json")["status"] == "failed"  # a failed plan does not leave the job "running"
    assert store.read_json("manifest.json")["failed_step"] == "plan"

    openai_emulator.inject("chat", Fault.status(400, code_name="invalid_request_error"))
    fallback = request.model_copy(update={"planner_fallback": True})
    result = extend_video(request=fallback)
    plan = JobStore(storage_url, result.job_id).read_json("plan.json")
    assert plan["planner"] == "template"


def _tiny_generation(seconds: int) -> GenerationRequest:
    return GenerationRequest(
        label="segment 1",
        index=1,
        content_key="k",
        model="tiny-fal",
        prompt="x",
        seconds=seconds,
        aspect="16:9",
        resolution="360p",
        width=640,
        height=360,
        fps=24,
        seed=1,
        audio=True,
    )


def test_retired_and_unallowed_values_fail_before_any_call(fal_emulator) -> None:
    with pytest.raises(ValueError, match="retired"):
        ExtendRequest(prompt="x", provider="fal", model="sora2-fal")
    provider = FalProvider(ExtendRequest(prompt="x", provider="fal", model="tiny-fal").spec, get_settings())
    with pytest.raises(ValueError, match="seconds: 9 is not allowed for tiny-fal"):
        provider.submit(_tiny_generation(9))
    assert fal_emulator.submissions == []
    provider.close()


def test_fal_rejects_wrong_wire_values_and_the_error_is_terminal(fal_emulator) -> None:
    spec = ExtendRequest(prompt="x", provider="fal", model="tiny-fal").spec
    # A catalogue row that lies about the wire type (as a stale user override might): fal answers 422.
    lying = spec.model_copy(update={"duration": spec.duration.model_copy(update={"wire": "string"})})
    provider = FalProvider(lying, get_settings())
    with pytest.raises(TerminalProviderError, match="HTTP 422") as caught:
        provider.submit(_tiny_generation(1))
    assert caught.value.status_code == 422 and not caught.value.request_failed
    provider.close()


def test_rate_limit_retry_after_is_honoured_and_nothing_is_paid_twice(
    prefect_harness: None, openai_emulator, storage_url: str
) -> None:
    openai_emulator.inject("create", Fault.status(429, retry_after=1))
    request = ExtendRequest(prompt="A patient queue", provider="openai", segments=1, seconds=4)
    started = time.monotonic()
    extend_video(request=request)
    assert time.monotonic() - started >= 1.0  # waited as the provider asked before the retry
    assert [entry[0] for entry in openai_emulator.fault_log] == ["create"]
    assert len(openai_emulator.submissions) == 1
