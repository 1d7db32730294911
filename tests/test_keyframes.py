"""Keyframes mode for real: the Prefect flow through the real `fal_client` against the fal emulator
(validating every request against fal's published schemas), stills from Nano Banana 2, clips rendered
at once between them, never paid twice, resumed by request id after a kill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prefect.client.orchestration import get_client

from flows.extend import extend_video
from sora_extend import layout
from sora_extend.hashing import sha256_bytes
from sora_extend.media.frames import iter_frames
from sora_extend.media.images import decode_png, psnr
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings
from sora_extend.storage.store import JobStore
from tests.run_flow import kill_when, spawn

pytestmark = pytest.mark.slow
TINY_I2V = "fal-ai/tiny-video/image-to-video"


def keyframes_request(prompt: str, segments: int = 6, **fields: Any) -> ExtendRequest:
    return ExtendRequest(
        prompt=prompt,
        provider="fal",
        model="tiny-fal",
        segments=segments,
        seconds=1,
        continuity="keyframes",
        **fields,
    )


def frame_at(video: Path, at: float) -> np.ndarray:
    """The frame on screen at `at` seconds."""
    shown = None
    for frame in iter_frames(video):
        if frame.time > at + 1e-6:
            break
        shown = frame.rgb
    assert shown is not None
    return shown


def test_keyframes_flow_renders_stills_then_every_clip_at_once(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    fal_emulator.progress_seconds = 1.0  # long enough for the clips to be seen in flight together
    request = keyframes_request("A kite drifts over a paddy field")
    result = extend_video(request=request)
    store = JobStore(storage_url, result.job_id)

    submitted = fal_emulator.submissions_for(request.prompt)
    stills = [s for s in submitted if s.endpoint.startswith("fal-ai/nano-banana-2")]
    clips = [s for s in submitted if s.endpoint == TINY_I2V]
    assert len(stills) == 7 and len(clips) == 6 and len(submitted) == 13  # each piece exactly once
    assert [s.endpoint for s in stills].count("fal-ai/nano-banana-2") == 1  # keyframe 0 from the text
    keyframes = [store.read_bytes(layout.keyframe(k)) for k in range(7)]
    base = f"sha256:{sha256_bytes(keyframes[0])}"
    assert all(s.payload["image_urls"] == [base] for s in stills if s.endpoint.endswith("/edit"))
    by_shot = {int(s.payload["prompt"].split("Shot ")[1].split("/")[0]): s for s in clips}
    for index, clip in by_shot.items():  # every clip starts and ends on its two keyframes
        assert clip.payload["image_url"] == f"sha256:{sha256_bytes(keyframes[index - 1])}"
        assert clip.payload["end_image_url"] == f"sha256:{sha256_bytes(keyframes[index])}"
    assert fal_emulator.max_in_progress >= 6  # the six clips were in progress at the same time

    final = store.read_json(layout.FINAL_RECORD)
    video = Path(store.path(layout.FINAL))
    for boundary, at in enumerate(final["joins_at"], start=1):
        assert psnr(frame_at(video, at), decode_png(keyframes[boundary])) >= 35, boundary
    first = store.read_json(layout.keyframe_record(1))
    assert (first["width"], first["height"]) == request.size  # cover-cropped from the model's 1K still
    assert (first["returned_width"], first["returned_height"]) != request.size
    seams = store.read_json(layout.SEAMS)
    assert all(seam["shared"] == "keyframe" and seam["end_psnr"] >= 35 for seam in seams)

    before = len(fal_emulator.submissions)
    extend_video(request=request)
    assert len(fal_emulator.submissions) == before  # a rerun pays nothing

    extend_video(request=request.model_copy(update={"rerender": [3]}))
    again = fal_emulator.submissions[before:]
    assert [s.endpoint for s in again] == [TINY_I2V] and "Shot 3/6" in again[0].payload["prompt"]


def test_keyframes_respect_the_provider_concurrency_limit(
    prefect_harness: None, fal_emulator: Any, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployments.bootstrap import ensure_limits

    ensure_limits({"fal": 2})
    monkeypatch.setenv("SORA_EXTEND_CONCURRENCY_LIMITS", "true")
    reload_settings()
    fal_emulator.progress_seconds = 0.5
    try:
        extend_video(request=keyframes_request("Lanterns rise over a lake", segments=4))
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name("sora-extend-fal")
    assert fal_emulator.max_in_progress == 2


def test_a_run_killed_with_clips_in_flight_resumes_each_by_request_id(
    api_url: str, fal_emulator: Any, storage_url: str, tmp_path: Path
) -> None:
    fal_emulator.progress_seconds = 6.0  # the worker is killed while every clip is rendering
    request = keyframes_request("Paper boats race down a gutter", segments=4)
    worker = spawn(request.model_dump_json(), api_url)

    def all_clips_submitted() -> bool:
        return sum(s.endpoint == TINY_I2V for s in fal_emulator.submissions_for(request.prompt)) == 4

    kill_when(worker, all_clips_submitted, settle_s=0.5)  # inside the clips' 6 s: the worker polls all four
    in_flight = {s.request_id for s in fal_emulator.submissions_for(request.prompt) if s.endpoint == TINY_I2V}

    fal_emulator.progress_seconds = 0.2
    result = extend_video(request=request)
    assert len(fal_emulator.submissions_for(request.prompt)) == 5 + 4  # nothing submitted twice
    ledger = JobStore(storage_url, result.job_id).read_json(layout.MANIFEST)["ledger"]
    assert {entry["request_id"] for entry in ledger if entry["kind"] == "segment"} == in_flight
