"""The quality gate for real: the Prefect flow through the real `fal_client` against the fal emulator,
which sends back clips with flaws injected server-side (a hard cut, a stretch of black frames). Flawed
clips are retaken as new paid requests and never reach the video; without the gate they do; a rerun of
either pays for nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.extend import extend_video
from sora_extend import layout
from sora_extend.media.frames import iter_frames
from sora_extend.request import ExtendRequest
from sora_extend.storage.store import JobStore
from tests.emulators.faults import Fault

pytestmark = pytest.mark.slow
CLIP = "fal-ai/tiny-video/image-to-video"


def gated_request(prompt: str, **fields: Any) -> ExtendRequest:
    return ExtendRequest(
        prompt=prompt, provider="fal", model="tiny-fal", segments=4, seconds=1, continuity="keyframes", **fields
    )


def black_frames(video: Path) -> list[float]:
    """When the video shows a black frame (mean level under 20 of 255)."""
    return [frame.time for frame in iter_frames(video) if float(np.mean(frame.rgb)) < 20]


def test_flawed_clips_are_retaken_and_never_reach_the_video(
    prefect_harness: None, fal_emulator: Any, storage_url: str
) -> None:
    fal_emulator.inject("clip", Fault.flawed("cut"))
    fal_emulator.inject("clip", Fault.flawed("black"))
    request = gated_request("A red kite over a harbour at dawn", quality_gate="retake", max_takes=2)
    result = extend_video(request=request)

    clips = [s for s in fal_emulator.submissions_for(request.prompt) if s.endpoint == CLIP]
    assert len(clips) == 6  # four clips, two of them twice
    assert sorted(fal_emulator.flawed.values()) == ["black", "cut"]
    store = JobStore(storage_url, result.job_id)
    manifest = store.read_json(layout.MANIFEST)
    used = {segment["request_id"] for segment in manifest["segments"]}
    assert used.isdisjoint(fal_emulator.flawed), "a flawed clip went into the video"
    assert black_frames(Path(store.path(layout.FINAL))) == []
    gated = [piece for piece in manifest["takes"] if piece["kind"] == "segment" and len(piece["takes"]) == 2]
    assert len(gated) == 2
    for piece in gated:  # both takes kept, the flawed one with the judge's reason, the clean one in use
        flawed, clean = piece["takes"]
        assert not flawed["verdict"]["passed"] and clean["verdict"]["passed"] and piece["used"] == 2
        assert fal_emulator.flawed[flawed["request_id"]] in {"cut", "black"}
        assert store.exists(flawed["path"]) and flawed["path"].startswith(layout.SEGMENT_HISTORY_DIR)
    reasons = " ".join(flaw["words"] for piece in gated for flaw in piece["takes"][0]["verdict"]["flaws"])
    assert "hard cut at" in reasons and "black frames at" in reasons, reasons

    before = len(fal_emulator.submissions)
    again = extend_video(request=request)
    assert len(fal_emulator.submissions) == before and again.cost_usd == result.cost_usd


def test_without_the_gate_the_flawed_clips_are_kept(prefect_harness: None, fal_emulator: Any, storage_url: str) -> None:
    fal_emulator.inject("clip", Fault.flawed("black"))
    fal_emulator.inject("clip", Fault.flawed("cut"))
    request = gated_request("A paper boat on a rain gutter", quality_gate="off")
    result = extend_video(request=request)

    clips = [s for s in fal_emulator.submissions_for(request.prompt) if s.endpoint == CLIP]
    assert len(clips) == 4
    store = JobStore(storage_url, result.job_id)
    used = {segment["request_id"] for segment in store.read_json(layout.MANIFEST)["segments"]}
    assert set(fal_emulator.flawed) <= used
    assert black_frames(Path(store.path(layout.FINAL)))  # the black stretch is in the video

    before = len(fal_emulator.submissions)
    extend_video(request=request)
    assert len(fal_emulator.submissions) == before
