"""The Prefect flow end to end, offline, on a temporary Prefect server."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.extend import extend_video
from sora_extend.errors import MissingKeyError
from sora_extend.media.frames import first_frame
from sora_extend.media.images import decode_png, psnr
from sora_extend.media.probe import probe
from sora_extend.providers.preview import PreviewProvider
from sora_extend.request import ExtendRequest
from sora_extend.storage.store import JobStore
from tests.media_factory import decode_audio

pytestmark = pytest.mark.slow
KOREAN = "한 마리 고양이가 서울의 밤거리를 걷는다"


@pytest.fixture
def submissions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every submission the real preview provider receives, in order."""
    seen: list[str] = []
    original = PreviewProvider.submit

    def counting(self, request):  # type: ignore[no-untyped-def]
        seen.append(request.content_key)
        return original(self, request)

    monkeypatch.setattr(PreviewProvider, "submit", counting)
    return seen


def _artifact_keys(prefix: str) -> set[str]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)))
    return {artifact.key for artifact in artifacts if artifact.key}


def test_offline_flow_renders_chains_merges_and_reruns_for_free(
    prefect_harness: None, storage_url: str, submissions: list[str]
) -> None:
    request = ExtendRequest(prompt=KOREAN, segments=3, seconds=4, resolution="360p")
    result = extend_video(request=request)
    assert len(submissions) == 3

    store = JobStore(storage_url, result.job_id)
    final = Path(store.path("final.mp4"))
    info = probe(final)
    assert info.duration == pytest.approx(12.0, abs=1 / 24)
    assert info.audio is not None
    samples, rate = decode_audio(final)
    assert len(samples) / rate == pytest.approx(12.0, abs=0.05) and abs(samples).max() > 0.01
    for k in (1, 2):
        handoff = decode_png(store.read_bytes(f"frames/{k:02d}.png"))
        assert psnr(first_frame(Path(store.path(f"segments/{k + 1:02d}.mp4"))), handoff) >= 35

    manifest = store.read_json("manifest.json")
    assert [s["request_id"] for s in manifest["segments"]] == [e["request_id"] for e in manifest["ledger"]]
    assert all(len(s["sha256"]) == 64 for s in manifest["segments"])
    assert manifest["final"]["method"] == "stream-copy"
    assert {
        f"progress-{result.job_id}",
        f"shots-{result.job_id}",
        f"summary-{result.job_id}",
    } <= _artifact_keys(f"%{result.job_id}")

    again = extend_video(request=request)
    assert len(submissions) == 3  # a new run with the same inputs renders nothing
    assert again.video_url == result.video_url


def test_missing_key_fails_before_planning(prefect_harness: None, storage_url: str, submissions: list[str]) -> None:
    request = ExtendRequest(prompt="x", provider="fal", model="veo31-fast", segments=2)
    with pytest.raises(MissingKeyError, match="FAL_KEY") as caught:
        extend_video(request=request)
    assert "Prefect Secret block named 'fal-key'" in str(caught.value)
    assert not JobStore(storage_url, request.job_id()).exists("plan.json")
    assert submissions == []
