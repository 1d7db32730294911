"""Extend mode and reference images for real: the Prefect flow through the real `fal_client` against the
fal emulator, which serves fal's extend and reference-to-video endpoints under their published schemas
and answers an extension with the whole extended video, as the real service does."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from flows.extend import extend_video
from sora_extend import layout
from sora_extend.media.frames import iter_frames
from sora_extend.media.images import encode_png, psnr
from sora_extend.media.probe import probe
from sora_extend.request import ExtendRequest
from sora_extend.storage.store import JobStore
from tests.run_flow import kill_when, spawn

pytestmark = pytest.mark.slow
VEO_EXTEND = "fal-ai/veo3.1/fast/extend-video"


def no_frame_twice_at_the_joins(video: Path, joins_at: list[float]) -> None:
    frames = [(frame.time, frame.rgb) for frame in iter_frames(video)]
    for at in joins_at:
        before = max((f for f in frames if f[0] < at - 1e-6), key=lambda f: f[0])[1]
        after = min((f for f in frames if f[0] >= at - 1e-6), key=lambda f: f[0])[1]
        assert psnr(before, after) < 45, f"the frame at {at:.2f} s shows twice"


def test_veo_extend_chain_killed_mid_extension_resumes_and_keeps_no_repeated_footage(
    api_url: str, fal_emulator: Any, storage_url: str
) -> None:
    request = ExtendRequest(
        prompt="A paper lantern drifts down a canal", provider="fal", model="veo31-fast", segments=3, seconds=8,
        continuity="extend", audio=False,
    )  # fmt: skip
    fal_emulator.progress_by_endpoint = {VEO_EXTEND: 6.0}  # the worker is killed while extension 1 renders
    worker = spawn(request.model_dump_json(), api_url)

    def extending() -> bool:
        return any(s.endpoint == VEO_EXTEND for s in fal_emulator.submissions_for(request.prompt))

    kill_when(worker, extending, settle_s=1.0)
    [in_flight] = [s.request_id for s in fal_emulator.submissions_for(request.prompt) if s.endpoint == VEO_EXTEND]

    fal_emulator.progress_by_endpoint = {}
    result = extend_video(request=request)
    submitted = fal_emulator.submissions_for(request.prompt)
    assert [s.endpoint for s in submitted] == ["fal-ai/veo3.1/fast", VEO_EXTEND, VEO_EXTEND]  # nothing twice
    assert submitted[1].request_id == in_flight
    assert all(
        s.payload["duration"] == "7s" and s.payload["video_url"].startswith(fal_emulator.url) for s in submitted[1:]
    )

    store = JobStore(storage_url, result.job_id)
    final = store.read_json(layout.FINAL_RECORD)
    assert final["duration"] == pytest.approx(8 + 7 + 7, abs=1 / 24)  # 8 s, then 7 s per extension
    for index in (2, 3):  # fal answered with the whole extended clip; only the new 7 s is kept
        assert probe(Path(store.path(layout.segment(index)))).duration == pytest.approx(7, abs=1 / 24)
    no_frame_twice_at_the_joins(Path(store.path(layout.FINAL)), final["joins_at"])
    assert len(store.read_json(layout.SEAMS)) == 2

    before = len(fal_emulator.submissions)
    extend_video(request=request)
    assert len(fal_emulator.submissions) == before  # a rerun pays nothing


def test_ltx_extend_chain(prefect_harness: None, fal_emulator: Any, storage_url: str) -> None:
    """LTX-2.3's extend endpoint (its published schema: integer duration, no resolution), on the test model
    tiny-ltx (LTX's fields at 360p) so it renders quickly."""
    request = ExtendRequest(
        prompt="Fog rolls over a pine ridge",
        provider="fal",
        model="tiny-ltx",
        segments=3,
        seconds=2,
        continuity="extend",
    )
    result = extend_video(request=request)
    submitted = fal_emulator.submissions_for(request.prompt)
    assert [s.endpoint for s in submitted] == ["fal-ai/tiny-ltx/text-to-video", *["fal-ai/tiny-ltx/extend-video"] * 2]
    assert all(s.payload["duration"] == 2 and "resolution" not in s.payload for s in submitted[1:])
    assert result.duration == pytest.approx(6, abs=1 / 25)
    store = JobStore(storage_url, result.job_id)
    no_frame_twice_at_the_joins(Path(store.path(layout.FINAL)), store.read_json(layout.FINAL_RECORD)["joins_at"])


def _sheet(path: Path) -> str:
    sheet = np.full((300, 200, 3), 30, np.uint8)
    cv2.circle(sheet, (100, 150), 70, (220, 60, 40), -1)
    path.write_bytes(encode_png(sheet))
    return str(path)


def test_references_reach_every_keyframe_edit(
    prefect_harness: None, fal_emulator: Any, storage_url: str, tmp_path: Path
) -> None:
    reference = _sheet(tmp_path / "fox-sheet.png")
    request = ExtendRequest(
        prompt="A fox in a red scarf crosses a snowfield", provider="fal", model="tiny-fal", segments=3, seconds=1,
        continuity="keyframes", references=[reference],
    )  # fmt: skip
    result = extend_video(request=request)
    ref = f"sha256:{hashlib.sha256(Path(reference).read_bytes()).hexdigest()}"
    stills = [s for s in fal_emulator.submissions_for(request.prompt) if s.endpoint.startswith("fal-ai/nano-banana-2")]
    assert {s.endpoint for s in stills} == {"fal-ai/nano-banana-2/edit"}  # keyframe 0 too: from the reference
    store = JobStore(storage_url, result.job_id)
    opening = f"sha256:{hashlib.sha256(store.read_bytes(layout.keyframe(0))).hexdigest()}"
    assert sorted(s.payload["image_urls"] for s in stills) == sorted([[ref]] + [[opening, ref]] * 3)
    manifest = store.read_json(layout.MANIFEST)
    assert [r["sha256"] for r in manifest["references"]] == [ref.removeprefix("sha256:")]


def test_a_reference_url_goes_to_veos_reference_to_video(
    prefect_harness: None, fal_emulator: Any, storage_url: str, tmp_path: Path
) -> None:
    url = fal_emulator.add_file(Path(_sheet(tmp_path / "sheet.png")).read_bytes(), "image/png", "sheet.png")
    assert httpx.get(url).status_code == 200
    request = ExtendRequest(
        prompt="A brass robot waters a garden", provider="fal", model="veo31", segments=2, seconds=8,
        references=[url],
    )  # fmt: skip
    extend_video(request=request)
    first, second = fal_emulator.submissions_for(request.prompt)
    assert first.endpoint == "fal-ai/veo3.1/reference-to-video" and len(first.payload["image_urls"]) == 1
    assert "seed" not in first.payload and first.payload["duration"] == "8s"
    assert second.endpoint == "fal-ai/veo3.1/image-to-video" and "image_urls" not in second.payload
