"""Smoke tests of the provider emulators, driven through the real `fal_client` and `openai` SDKs.

Each test renders at most a couple of short clips: the point is that the SDKs' real requests and
parsers work against the emulated wire protocols, faults included.
"""

from __future__ import annotations

import gc
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import fal_client
import fal_client.client
import httpx
import numpy as np
import openai
import pytest
from openai.types import Video
from pydantic import BaseModel

from sora_extend.media.frames import first_frame
from sora_extend.media.images import decode_png, encode_png, psnr
from sora_extend.media.probe import probe
from tests.emulators import FalEmulator, Fault, OpenAIEmulator

WAN_I2V = "fal-ai/wan/v2.7/image-to-video"
WAN_T2V = "fal-ai/wan/v2.7/text-to-video"


def picture(width: int, height: int) -> np.ndarray:
    """A smooth picture with a few shapes: compresses well, so a decoded first frame keeps a high PSNR."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rgb = np.stack([60 + 150 * x + 0 * y, 40 + 120 * y + 0 * x, 180 - 90 * x * y], axis=-1).astype(np.uint8)
    cv2.circle(rgb, (width // 3, height // 2), height // 5, (230, 200, 40), -1)
    cv2.rectangle(rgb, (width // 2, height // 4), (width // 2 + width // 6, height // 2), (30, 60, 200), -1)
    return rgb


# ---------------------------------------------------------------------- fal


@pytest.fixture
def fal() -> Iterator[FalEmulator]:
    # A queue time longer than the SDK's first poll takes, so a client always sees IN_QUEUE first.
    with FalEmulator(queue_seconds=0.25) as emulator:
        yield emulator
        assert emulator.server_errors == []


@pytest.fixture
def fal_sdk(fal: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[fal_client.SyncClient]:
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", fal.url)
    monkeypatch.setattr(fal_client.client, "REST_URL", fal.rest_url)
    monkeypatch.setattr(fal_client.client, "CDN_URL", fal.rest_url)
    monkeypatch.setattr(fal_client.client, "BASE_DELAY", 0.01)  # fal_client's own retry backoff
    client = fal_client.SyncClient(key=fal.key)
    yield client
    client._client.close()  # SyncClient has no close() of its own


def _download(url: str, path: Path) -> Path:
    response = httpx.get(url, timeout=30)
    response.raise_for_status()
    path.write_bytes(response.content)
    return path


def test_fal_image_to_video_round_trip(fal: FalEmulator, fal_sdk: fal_client.SyncClient, tmp_path: Path) -> None:
    image = picture(1280, 720)
    arguments = {
        "prompt": "a lighthouse at dusk",
        "image_url": fal_client.encode(encode_png(image), "image/png"),
        "duration": 2,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "seed": 7,
    }
    handle = fal_sdk.submit(WAN_I2V, arguments)
    # The queue URLs drop the endpoint's sub-path, like fal's.
    assert handle.status_url == f"{fal.url}fal-ai/wan/requests/{handle.request_id}/status"
    events = list(handle.iter_events(with_logs=True, interval=0.05))
    assert isinstance(events[0], fal_client.Queued)
    assert any(isinstance(event, fal_client.InProgress) and event.logs for event in events)
    assert isinstance(events[-1], fal_client.Completed) and events[-1].error is None
    result = handle.get()
    assert result["seed"] == 7 and result["video"]["content_type"] == "video/mp4"

    clip = _download(result["video"]["url"], tmp_path / "clip.mp4")
    info = probe(clip)
    assert info.video is not None and (info.video.width, info.video.height) == (1280, 720)
    assert abs(info.video.duration - 2) < 0.1
    assert psnr(first_frame(clip), image) >= 35

    # A handle rebuilt from the request id alone works, and each result fetch mints a fresh URL.
    rebuilt = fal_sdk.get_handle(WAN_I2V, handle.request_id)
    assert isinstance(rebuilt.status(), fal_client.Completed)
    again = fal_sdk.result(WAN_I2V, handle.request_id)
    assert again["video"]["url"] != result["video"]["url"]

    [submission] = fal.submissions
    assert submission.payload["image_url"].startswith("sha256:") and submission.endpoint == WAN_I2V
    assert fal.submission_counts()[submission.content_key] == 1
    assert fal.count_prompt("lighthouse") == 1 and fal.max_in_progress == 1


def test_fal_rejects_what_the_models_reject(fal: FalEmulator, fal_sdk: fal_client.SyncClient) -> None:
    png = fal_client.encode(encode_png(picture(64, 36)), "image/png")
    cases = [
        (WAN_I2V, {"prompt": "p", "image_url": png, "duration": "2"}, 422, "duration"),  # wan wants an integer
        ("fal-ai/veo3.1/fast/image-to-video", {"prompt": "p", "image_url": png, "duration": "8"}, 422, "duration"),
        ("bytedance/seedance-2.0/image-to-video", {"prompt": "p", "image_url": png, "duration": 5}, 422, "duration"),
        (
            "fal-ai/veo3.1/fast/first-last-frame-to-video",
            {"prompt": "p", "first_frame_url": png},
            422,
            "last_frame_url",
        ),
        (WAN_T2V, {"duration": 2}, 422, "prompt"),
        (WAN_T2V, {"prompt": "p", "resolution": "4k"}, 422, "resolution"),
        (WAN_T2V, {"prompt": "p", "aspect_ratio": "21:9"}, 422, "aspect_ratio"),
        (WAN_T2V, {"prompt": "p", "seed": "7"}, 422, "seed"),
        ("fal-ai/sora-2/image-to-video", {"prompt": "p", "image_url": png}, 404, None),  # retired
        ("fal-ai/no-such/model", {"prompt": "p"}, 404, None),
    ]
    for endpoint, arguments, status, field in cases:
        with pytest.raises(fal_client.FalClientHTTPError) as caught:
            fal_sdk.submit(endpoint, arguments)
        assert caught.value.status_code == status, endpoint
        if field is not None:
            assert caught.value.message[0]["loc"] == ["body", field]
    stranger = fal_client.SyncClient(key="wrong")
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        stranger.submit(WAN_T2V, {"prompt": "p"})
    stranger._client.close()
    assert caught.value.status_code == 401
    assert fal.submissions == [] and len(fal.rejections) == 8


def test_fal_failed_generations(fal: FalEmulator, fal_sdk: fal_client.SyncClient) -> None:
    fal.inject("generation", Fault.failed(422, "content_policy_violation", "flagged by the safety checker"))
    fal.inject("generation", Fault.failed(500, "runner_disconnected", "the runner went away"))
    for status, error_type in ((422, "content_policy_violation"), (500, "runner_disconnected")):
        handle = fal_sdk.submit(WAN_T2V, {"prompt": "a storm", "duration": 2})
        final = list(handle.iter_events(interval=0.05))[-1]
        assert isinstance(final, fal_client.Completed) and final.error_type == error_type
        with pytest.raises(fal_client.FalClientHTTPError) as caught:
            handle.get()
        assert caught.value.status_code == status
        if status == 422:
            assert caught.value.message[0]["type"] == error_type
        else:
            assert caught.value.error_type == error_type


def test_fal_stuck_request_and_cancel(fal: FalEmulator, fal_sdk: fal_client.SyncClient) -> None:
    fal.inject("submit", Fault.stuck(5))
    handle = fal_sdk.submit(WAN_T2V, {"prompt": "waiting", "duration": 2})
    time.sleep(0.4)  # past the normal queue + progress time
    assert isinstance(handle.status(), fal_client.Queued)
    handle.cancel()
    final = handle.status()
    assert isinstance(final, fal_client.Completed) and final.error is not None


def test_fal_transport_faults_on_submit_count_one_submission(fal: FalEmulator, fal_sdk: fal_client.SyncClient) -> None:
    fal.inject("submit", Fault.reset())
    fal.inject("submit", Fault.status(429, retry_after=1), times=2)
    fal.inject("submit", Fault.stuck(5))  # the attempt that gets through stays queued: no render needed
    fal.inject("status", Fault.status(503))  # a bare 503 is fal's nginx page: fal_client retries it
    handle = fal_sdk.submit(WAN_T2V, {"prompt": "retry me", "duration": 2})
    assert isinstance(handle.status(), fal_client.Queued)
    assert len(fal.submissions) == 1 and [route for route, _ in fal.fault_log] == ["submit"] * 4 + ["status"]
    handle.cancel()
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        handle.cancel()
    assert caught.value.status_code == 400


def test_fal_download_faults(fal: FalEmulator, fal_sdk: fal_client.SyncClient) -> None:
    handle = fal_sdk.submit(WAN_T2V, {"prompt": "a quiet harbour", "duration": 2, "aspect_ratio": "9:16"})
    result = handle.get(interval=0.05)
    url, size = result["video"]["url"], result["video"]["file_size"]

    fal.inject("download", Fault.truncate(0.5))
    truncated = httpx.get(url)
    assert truncated.status_code == 200 and len(truncated.content) == size // 2
    assert int(truncated.headers["content-length"]) == size // 2

    fal.inject("download", Fault.expire())
    assert httpx.get(url).status_code == 404
    assert httpx.get(url).status_code == 404  # an expired link stays expired
    fresh = handle.get()["video"]["url"]
    full = httpx.get(fresh)
    assert full.status_code == 200 and len(full.content) == size
    assert Path(fal.requests[handle.request_id].video or "").stat().st_size == size


def test_fal_uploads(fal: FalEmulator, fal_sdk: fal_client.SyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    png = encode_png(picture(96, 160))
    with warnings.catch_warnings():  # fal_client 1.0.3 never closes the httpx client each CDN upload opens
        warnings.simplefilter("ignore", ResourceWarning)
        url = fal_sdk.upload(png, "image/png", file_name="frame.png")
        fallback = fal_sdk.upload(png, "image/png", repository="fal")  # the storage fallback path
        monkeypatch.setattr(fal_client.client, "MULTIPART_THRESHOLD", 1000)  # force the multipart path
        monkeypatch.setattr(fal_client.client, "MULTIPART_CHUNK_SIZE", 1024)
        multipart = fal_sdk.upload(png, "image/png", file_name="big.png")
        gc.collect()
    assert len(png) > 2048 and url.startswith(f"{fal.url}files/")
    assert [httpx.get(u).content for u in (url, fallback, multipart)] == [png] * 3

    # An uploaded file works as an image URL; a portrait image gives a portrait clip size.
    handle = fal_sdk.submit(WAN_I2V, {"prompt": "p", "image_url": url, "duration": 2, "resolution": "720p"})
    plan = fal.requests[handle.request_id].plan
    assert plan is not None and (plan.clip.width, plan.clip.height) == (720, 1280)
    handle.cancel()


def test_fal_random_faults_are_seeded(fal: FalEmulator, fal_sdk: fal_client.SyncClient) -> None:
    fal.random_faults(0.5, [("submit", Fault.reset()), ("submit", Fault.status(429))], seed=3)
    for index in range(6):
        fal_sdk.submit(WAN_T2V, {"prompt": f"soak {index}", "duration": 2}).cancel()
    first = [fault.kind for _, fault in fal.fault_log]
    assert len(fal.submissions) == 6 and first
    fal.clear_faults()
    fal.random_faults(0.5, [("submit", Fault.reset()), ("submit", Fault.status(429))], seed=3)
    fal.fault_log.clear()
    for index in range(6):
        fal_sdk.submit(WAN_T2V, {"prompt": f"soak {index}", "duration": 2}).cancel()
    assert [fault.kind for _, fault in fal.fault_log] == first


# ---------------------------------------------------------------------- OpenAI


@pytest.fixture
def oai() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(fps=12) as emulator:  # a low frame rate keeps the renders cheap
        yield emulator
        assert emulator.server_errors == []


@pytest.fixture
def oai_sdk(oai: OpenAIEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=oai.base_url, api_key=oai.key, max_retries=0) as client:
        yield client


def test_openai_video_lifecycle(oai: OpenAIEmulator, oai_sdk: openai.OpenAI, tmp_path: Path) -> None:
    image = picture(1280, 720)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        video = oai_sdk.videos.create(
            model="seedance-1-0-pro",
            prompt="a paper boat on a stream",
            seconds="4",
            size="1280x720",
            input_reference=("frame.png", encode_png(image), "image/png"),
        )
        assert video.status == "queued" and video.seconds == "4" and video.progress == 0
        done = oai_sdk.videos.poll(video.id)
        assert done.status == "completed" and done.expires_at is not None and done.progress == 100
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(oai_sdk.videos.download_content(video.id, variant="video").content)
        thumbnail = decode_png(oai_sdk.videos.download_content(video.id, variant="thumbnail").content)

        oai.inject("content", Fault.truncate(0.25))
        partial = oai_sdk.videos.download_content(video.id).content
        assert len(partial) == clip.stat().st_size // 4

        extended = oai_sdk.videos.extend(
            prompt="the boat drifts on", seconds="4", video=("clip.mp4", clip.read_bytes())
        )
        assert extended.seconds == "8" and extended.size == "1280x720"
        extended = oai_sdk.videos.poll(extended.id)
        stitched = tmp_path / "stitched.mp4"
        stitched.write_bytes(oai_sdk.videos.download_content(extended.id).content)
        # The id form (the SDK's extend() refuses a dict, so post it directly).
        by_id = oai_sdk.post(
            "/videos/extensions",
            body={"prompt": "and on", "seconds": "8", "video": {"id": video.id}},
            cast_to=Video,
        )
        assert by_id.seconds == "12" and by_id.status == "queued"
        assert oai_sdk.videos.delete(by_id.id).deleted

    info = probe(clip)
    assert info.video is not None and (info.video.width, info.video.height) == (1280, 720)
    assert abs(info.video.duration - 4) < 0.1 and info.audio is not None
    assert psnr(first_frame(clip), image) >= 35 and thumbnail.shape == (720, 1280, 3)
    assert abs(probe(stitched).duration - 8) < 0.15
    assert psnr(first_frame(stitched), image) >= 35  # the stitched result starts with the source clip
    kinds = [submission.kind for submission in oai.submissions]
    assert kinds == ["create", "extend", "extend"] and oai.count_prompt("paper boat") == 1
    assert oai.submissions[0].reference_sha256 is not None and oai.max_in_progress >= 1


def test_openai_rejections_and_faults(oai: OpenAIEmulator, oai_sdk: openai.OpenAI) -> None:
    wrong_size = encode_png(picture(720, 1280))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(openai.BadRequestError, match="1280x720"):
            oai_sdk.videos.create(prompt="p", model="m", seconds="4", size="1280x720", input_reference=wrong_size)
        with pytest.raises(openai.NotFoundError) as retired:
            oai_sdk.videos.create(prompt="p", model="sora-2", seconds="4", size="1280x720")
        assert retired.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as integer:
            oai_sdk.post("/videos", body={"prompt": "p", "model": "m", "seconds": 4}, cast_to=Video)
        assert integer.value.param == "seconds"
        with (
            openai.OpenAI(base_url=oai.base_url, api_key="sk-wrong", max_retries=0) as stranger,
            pytest.raises(openai.AuthenticationError),
        ):
            stranger.videos.retrieve("video_x")

        oai.inject("create", Fault.status(429, retry_after=1))
        with pytest.raises(openai.RateLimitError) as limited:
            oai_sdk.videos.create(prompt="p", model="m", seconds="4", size="1280x720")
        assert limited.value.response.headers["retry-after"] == "1" and limited.value.code == "rate_limit_exceeded"
        oai.inject("create", Fault.reset())
        with pytest.raises(openai.APIConnectionError):
            oai_sdk.videos.create(prompt="p", model="m", seconds="4", size="1280x720")
        assert oai.submissions == []

        oai.inject("generation", Fault.failed(400, "moderation_blocked", "Your request was blocked."))
        video = oai_sdk.videos.create(prompt="p", model="m", seconds="4", size="1280x720")
        failed = oai_sdk.videos.poll(video.id)
        assert failed.status == "failed" and failed.error is not None and failed.error.code == "moderation_blocked"
        with pytest.raises(openai.NotFoundError):
            oai_sdk.videos.download_content(video.id)

        oai.inject("create", Fault.stuck(5))
        stuck = oai_sdk.videos.create(prompt="slow", model="m", seconds="4", size="720x1280")
        time.sleep(0.35)
        raw = oai_sdk.videos.with_raw_response.retrieve(stuck.id)
        assert raw.parse().status == "queued" and raw.headers["openai-poll-after-ms"] == "50"
        oai_sdk.videos.delete(stuck.id)
        with pytest.raises(openai.NotFoundError):
            oai_sdk.videos.retrieve(stuck.id)


class PlanBible(BaseModel):
    subject: str
    characters: list[str]
    setting: str
    style: str
    light: str


class PlanShot(BaseModel):
    action: str
    camera: str
    transition: str


class Plan(BaseModel):
    title: str
    bible: PlanBible
    shots: list[PlanShot]


def test_openai_planner(oai: OpenAIEmulator, oai_sdk: openai.OpenAI) -> None:
    brief = {"prompt": "고양이가 지붕 위를 걷는다", "segments": 3, "seconds": 8, "language": "ko", "transition": "auto"}
    messages = [{"role": "system", "content": "Plan the video."}, {"role": "user", "content": json.dumps(brief)}]
    chat = oai_sdk.chat.completions.parse(model="gpt-test", messages=messages, response_format=Plan)
    plan = chat.choices[0].message.parsed
    assert plan is not None and len(plan.shots) == 3 and plan.bible.subject == brief["prompt"]
    assert all("장면" in shot.action for shot in plan.shots) and chat.choices[0].finish_reason == "stop"

    english = dict(brief, prompt="a cat walks on a roof", language="en", segments=2)
    response = oai_sdk.responses.parse(
        model="gpt-test",
        instructions="Plan the video.",
        input=[{"role": "user", "content": json.dumps(english)}],
        text_format=Plan,
    )
    assert response.output_parsed is not None and len(response.output_parsed.shots) == 2
    assert response.output_parsed.bible.subject == "a cat walks on a roof"

    oai.inject("chat", Fault.bad_plan(-1))
    short = oai_sdk.chat.completions.parse(model="gpt-test", messages=messages, response_format=Plan)
    assert short.choices[0].message.parsed is not None and len(short.choices[0].message.parsed.shots) == 2
    # A correction turn after the brief still plans from the brief.
    retry = [*messages, {"role": "assistant", "content": "{}"}, {"role": "user", "content": "Use exactly 3 shots."}]
    fixed = oai_sdk.chat.completions.parse(model="gpt-test", messages=retry, response_format=Plan)
    assert fixed.choices[0].message.parsed is not None and len(fixed.choices[0].message.parsed.shots) == 3

    oai.inject("responses", Fault.status(503))
    with pytest.raises(openai.InternalServerError):
        oai_sdk.responses.parse(model="gpt-test", input=json.dumps(english), text_format=Plan)

    assert len(oai.chat_requests) == 4  # the faulted call never reached the planner
    assert oai.chat_requests[0]["response_format"]["type"] == "json_schema"
    assert oai.chat_requests[1]["text"]["format"]["type"] == "json_schema"
