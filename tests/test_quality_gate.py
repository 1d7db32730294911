"""The quality gate for real: the Prefect flow through the real `fal_client` against the fal emulator,
which sends back clips with flaws injected server-side (a hard cut, a stretch of black frames). Flawed
clips are retaken as new paid requests and never reach the video; without the gate they do; a rerun of
either pays for nothing."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.extend import extend_video
from sora_extend import layout
from sora_extend.media.frames import iter_frames
from sora_extend.pipeline.budget import Work
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.records import SegmentRecord
from sora_extend.pipeline.run import pending_work, run_job
from sora_extend.pipeline.takes import takes_records
from sora_extend.plan import ShotPlan
from sora_extend.request import ExtendRequest
from sora_extend.storage.store import JobStore
from tests.browser import axe_violations
from tests.emulators.faults import Fault
from tests.terminal import plain, run_in_terminal

pytestmark = pytest.mark.slow
CLIP = "fal-ai/tiny-video/image-to-video"


def gated_request(prompt: str, **fields: Any) -> ExtendRequest:
    options: dict[str, Any] = {"provider": "fal", "model": "tiny-fal", "segments": 4, "seconds": 1}
    options |= {"continuity": "keyframes"}
    return ExtendRequest(prompt=prompt, **(options | fields))


def black_frames(video: Path) -> list[float]:
    """When the video shows a black frame (mean level under 20 of 255)."""
    return [frame.time for frame in iter_frames(video) if float(np.mean(frame.rgb)) < 20]


def test_flawed_clips_are_retaken_and_never_reach_the_video(
    prefect_harness: None, fal_emulator: Any, storage_url: str, browser: Any
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

    # The review page says so where a person reads it: the verdict of every take, the one in the video, and
    # the command that puts the other one in instead.
    page = browser.new_page()
    page.goto(Path(store.path(layout.REVIEW_PAGE)).as_uri())
    for piece in gated:
        card = page.locator(f"section#segment-{piece['index']:02d}")
        assert card.locator(".judged.passed").inner_text().startswith("passed: take 2 is clean")
        takes = card.locator("ol.takes li")
        assert takes.count() == 2 and "in the video" in takes.nth(1).inner_text()
        assert "flawed" in takes.nth(0).inner_text()
        card.get_by_text("use take 1 instead").click()
        assert f"--use-take {piece['index']}=1" in card.locator("pre").first.inner_text()
    facts = page.locator("ul.facts").inner_text()
    assert "quality gate retake, 2 piece(s) retaken, 0 kept flawed" in facts
    assert axe_violations(page) == []
    page.close()


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


def _run(request: ExtendRequest) -> Job:
    job = Job(job_ref(request))
    _, outcome = run_job(job)
    assert outcome.ok, outcome.error
    return job


def test_the_chat_model_judge_sees_the_stills_and_frames_and_its_no_is_a_retake(
    openai_emulator: Any, storage_url: str
) -> None:
    clean = {"same_subject": True, "same_setting": True, "artefacts": False, "morphing": False}
    clean |= {"follows_prompt": True, "score": 4, "reasons": ["the lantern and the alley stay the same"]}
    morphs = clean | {"morphing": True, "score": 2, "reasons": ["the lantern turns into a bird halfway"]}
    openai_emulator.vision_answers.extend([clean, morphs, clean, clean])  # chain: one piece after another
    request = ExtendRequest(
        prompt="A paper lantern in a narrow alley", segments=3, seconds=1, resolution="360p", judge="vlm"
    )
    job = _run(request)

    asked = openai_emulator.vision_requests
    assert len(asked) == 4 and {body["model"] for body in asked} == {"gpt-4.1-mini"}
    for body in asked:  # the stills it was made from, then four of its frames, as image parts
        parts = [part for message in body["messages"] for part in message["content"] if isinstance(part, dict)]
        images = [part for part in parts if part["type"] == "image_url"]
        assert len(images) >= 3 and all(
            part["image_url"]["url"].startswith("data:image/jpeg;base64,") for part in images
        )
        assert body["response_format"]["type"] == "json_schema"
    first = [part for part in asked[0]["messages"][1]["content"] if part["type"] == "image_url"]
    second = [part for part in asked[1]["messages"][1]["content"] if part["type"] == "image_url"]
    assert len(second) == len(first) + 1  # segment 2 also shows the hand-off image it had to start on

    takes = job.store.read_json(layout.segment_takes(2))
    flawed, kept = takes["takes"]
    assert takes["used"] == 2 and not flawed["verdict"]["passed"] and kept["verdict"]["passed"]
    assert flawed["verdict"]["model_answer"]["morphing"] is True
    assert (
        "morphing" in flawed["verdict"]["flaws"][0]["words"] and "into a bird" in flawed["verdict"]["flaws"][0]["words"]
    )
    judged = [entry for entry in job.ledger.entries() if entry.kind == "judge"]
    assert len(judged) == 4 and all(entry.billed and entry.state == "completed" for entry in judged)
    spent = sum(entry.cost_usd for entry in judged)
    expected = sum(
        piece.verdict.cost_usd
        for record in takes_records(job, job.store.read_model(layout.PLAN, ShotPlan))
        for piece in record.takes
    )
    assert spent == pytest.approx(expected) and 0 < spent < 0.02
    assert openai_emulator.key not in "".join(
        job.store.read_bytes(path).decode("utf-8", "replace") for path in _json_files(job)
    )


def _json_files(job: Job) -> list[str]:
    root = Path(job.store.path(""))
    return [str(path.relative_to(root)) for path in root.rglob("*.json")]


def test_a_retake_that_would_pass_the_budget_is_not_submitted(fal_emulator: Any, storage_url: str) -> None:
    fal_emulator.inject("clip", Fault.flawed("black"))
    request = gated_request("A lighthouse beam in fog", segments=2, continuity="chain", budget_usd=0.40)
    job = _run(request)  # two clips at $0.15 fit; a third (the retake) would not

    clips = [s for s in fal_emulator.submissions_for(request.prompt) if s.endpoint.startswith("fal-ai/tiny-video")]
    assert len(clips) == 2
    takes = job.store.read_json(layout.segment_takes(1))
    assert takes["used"] == 1 and len(takes["takes"]) == 1 and not takes["takes"][0]["verdict"]["passed"]
    assert "take 2 was not rendered" in takes["note"] and "budget" in takes["note"]


def test_a_take_picked_by_hand_is_merged_without_rendering(fal_emulator: Any, storage_url: str) -> None:
    fal_emulator.inject("clip", Fault.flawed("black"))
    request = gated_request("A swing under a plane tree", segments=2)
    job = _run(request)
    flawed = next(index for index in (1, 2) if len(job.store.read_json(layout.segment_takes(index))["takes"]) == 2)
    assert black_frames(Path(job.store.path(layout.FINAL))) == []

    before = len(fal_emulator.submissions)
    picked = _run(request.model_copy(update={"use_takes": [f"{flawed}=1"]}))
    assert len(fal_emulator.submissions) == before  # nothing rendered: the stored take went in
    takes = picked.store.read_json(layout.segment_takes(flawed))
    assert takes["used"] == 1 and takes["note"] == "picked by hand" and len(takes["takes"]) == 2
    assert black_frames(Path(picked.store.path(layout.FINAL)))  # the flawed take, by the person's choice


def test_the_terminal_shows_what_the_judge_found_and_the_retake(
    api_url: str, fal_emulator: Any, storage_url: str
) -> None:
    fal_emulator.inject("clip", Fault.flawed("cut"))
    cli = str(Path(sys.executable).with_name("sora-extend"))
    args = [cli, "run", "A kite over a harbour", "--provider", "fal", "--model", "tiny-fal", "--segments", "2"]
    screen, stderr, returncode = run_in_terminal([*args, "--seconds", "1"], {**os.environ, "PREFECT_API_URL": api_url})
    text = plain(screen)
    assert returncode == 0, text[-3000:] + stderr[-3000:]
    last_frame = text[text.rindex("A kite over a harbour ·") :]
    rows = {line.split()[1]: line for line in last_frame.splitlines() if line.startswith("segment")}
    assert re.search(r" done .* \$0\.30 .*retaken: hard cut at \d\.\d s → take 2", rows["01"]), rows["01"]
    assert " done " in rows["02"] and "$0.15" in rows["02"]
    assert "total cost $0.45" in last_frame


def test_in_chain_mode_a_picked_take_renders_the_clips_after_it_again_and_the_budget_counts_them(
    storage_url: str,
) -> None:
    request = ExtendRequest(prompt="A heron on a weir", segments=3, seconds=1, resolution="360p")
    job = _run(request)
    job.apply_rerender([1], [], token="test")  # take 2 of segment 1 (and so of what follows it)
    _run(request)
    assert job.store.read_model(layout.segment_record(1), SegmentRecord).take == 2  # type: ignore[union-attr]

    picked = Job(job_ref(request.model_copy(update={"use_takes": ["1=1"]})))
    assert pending_work(picked) == Work(segments=2)  # segment 1 is stored; 2 and 3 start from another frame
    _run(picked.request)
    assert job.store.read_model(layout.segment_record(1), SegmentRecord).take == 1  # type: ignore[union-attr]
