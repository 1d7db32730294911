"""ComfyUI servers as a render farm, through the real pipeline and the emulated servers (ComfyUI's HTTP
API over loopback, every /prompt validated against a real server's node schemas): keyframes spread over
two servers, a lost /prompt answer found by its id, an outage resumed by id, a restart re-queued only
because the server's history shows the prompt never ran, an execution_error naming its node, and bad
input refused before anything is queued."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from flows.extend import extend_video
from sora_extend import layout
from sora_extend.comfyui.server import ComfyClient, output_file, parse_servers
from sora_extend.errors import TerminalProviderError, TransientProviderError
from sora_extend.media.frames import iter_frames
from sora_extend.media.images import decode_png, psnr
from sora_extend.media.probe import probe
from sora_extend.pipeline.execute import Outcome
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.run import run_job
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings
from sora_extend.storage.store import JobStore
from tests.emulators import Fault
from tests.emulators._common import max_overlap
from tests.emulators.comfyui import ComfyPrompt, ComfyUIEmulator
from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "comfyui"
HELD = FIXTURES / "held_frames.json"
HELD_MAP = FIXTURES / "held_frames.map.toml"
Farm = Callable[..., list[ComfyUIEmulator]]


@pytest.fixture
def farm(monkeypatch: pytest.MonkeyPatch, storage_url: str, tmp_path: Path) -> Iterator[Farm]:
    """Start emulated ComfyUI servers and point the project at them (credentials in the URL if asked)."""
    started: list[ComfyUIEmulator] = []

    def start(count: int = 1, **options: Any) -> list[ComfyUIEmulator]:
        servers = [ComfyUIEmulator(**options) for _ in range(count)]
        started.extend(servers)
        auth = options.get("basic_auth")
        credentials = f"{auth[0]}:{auth[1]}@" if auth else ""
        urls = ",".join(server.url.replace("http://", f"http://{credentials}") for server in servers)
        monkeypatch.setenv("SORA_EXTEND_COMFYUI_URLS", urls)
        reload_settings()
        return servers

    monkeypatch.setenv("SORA_EXTEND_CATALOGUE_FILE", str(TEST_MODEL_CATALOGUE))
    monkeypatch.setenv("SORA_EXTEND_POLL_INTERVAL_S", "0.05")
    monkeypatch.setenv("SORA_EXTEND_RETRY_DELAY_S", "0")
    monkeypatch.setenv("SORA_EXTEND_RECONCILE_GRACE_S", "1")
    monkeypatch.setenv("SORA_EXTEND_LOCK_DIR", str(tmp_path / "locks"))
    yield start
    for server in started:
        server.stop()
        assert server.server_errors == []
    monkeypatch.undo()
    reload_settings()


def comfy_request(prompt: str, **fields: Any) -> ExtendRequest:
    return ExtendRequest(
        **({"prompt": prompt, "provider": "comfyui", "model": "tiny-comfy", "segments": 1, "seconds": 1} | fields)
    )


def run(request: ExtendRequest) -> tuple[Job, Outcome]:
    settings = reload_settings()
    job = Job(job_ref(request, settings), settings)
    return job, run_job(job)[1]


def clips(*servers: ComfyUIEmulator) -> list[tuple[ComfyUIEmulator, ComfyPrompt]]:
    return [(server, prompt) for server in servers for prompt in server.submissions if prompt.makes_video]


def image_input(prompt: ComfyPrompt, node_class: str, name: str) -> str:
    """The uploaded file a node's image input reads (following its link to the LoadImage node)."""
    node = next(node for node in prompt.graph.values() if node["class_type"] == node_class)
    return str(prompt.graph[node["inputs"][name][0]]["inputs"]["image"])


def when(condition: Callable[[], bool], action: Callable[[], None]) -> threading.Thread:
    """Do `action` as soon as `condition` holds (within 20 s), on a thread."""

    def watch() -> None:
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_two_servers_render_keyframes_two_at_a_time_each_between_its_keyframes(
    prefect_harness: None, farm: Farm, storage_url: str
) -> None:
    first, second = farm(2, render_seconds=1.0)
    request = comfy_request("Lanterns drift down a canal", segments=4, continuity="keyframes")
    result = extend_video(request=request)
    store = JobStore(storage_url, result.job_id)

    rendered = clips(first, second)
    stills = [prompt for server in (first, second) for prompt in server.submissions if not prompt.makes_video]
    assert len(rendered) == 4 and len(stills) == 5  # one /prompt per clip and per keyframe still
    assert {server.label for server, _ in rendered} == {first.label, second.label}
    assert first.max_outstanding == 1 and second.max_outstanding == 1  # each server one prompt at a time
    assert max_overlap([prompt.interval(time.monotonic()) for _, prompt in rendered]) == 2  # two clips at once

    keyframes = [store.read_bytes(layout.keyframe(index)) for index in range(5)]
    ledger = {entry["request_id"].split("@")[0]: entry for entry in store.read_json(layout.MANIFEST)["ledger"]}
    for server, prompt in rendered:  # each clip starts on keyframe k-1, ends on keyframe k, both uploaded there
        index = ledger[prompt.prompt_id]["segment"]
        assert ledger[prompt.prompt_id]["request_id"] == f"{prompt.prompt_id}@{server.label}"
        assert server.uploaded(image_input(prompt, "WanFirstLastFrameToVideo", "start_image")) == keyframes[index - 1]
        assert server.uploaded(image_input(prompt, "WanFirstLastFrameToVideo", "end_image")) == keyframes[index]
        clip = Path(store.path(layout.segment(index)))
        frames = list(iter_frames(clip))
        assert psnr(frames[0].rgb, decode_png(keyframes[index - 1])) >= 35
        assert psnr(frames[-1].rgb, decode_png(keyframes[index])) >= 35

    final = Path(store.path(layout.FINAL))
    assert sum(1 for _ in iter_frames(final)) == probe(final).video.frames > 60  # the video plays to its end

    before = len(first.submissions) + len(second.submissions)
    extend_video(request=request)
    assert len(first.submissions) + len(second.submissions) == before  # a rerun queues nothing


def test_a_lost_prompt_answer_is_found_by_its_id_and_not_queued_twice(
    farm: Farm, storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (server,) = farm(1, basic_auth=("alice", "pw-4f9c1d"))
    server.inject("prompt", Fault.lost_answer())
    job, outcome = run(comfy_request("A heron waits in the reeds"))
    assert outcome.ok, outcome.error
    assert [route for route, _ in server.fault_log] == ["prompt"]  # queued, then the answer was reset
    assert len(server.submissions) == 1
    (entry,) = job.ledger.entries()
    assert entry.request_id == f"{server.submissions[0].prompt_id}@{server.label}" and entry.history == []
    assert any("reconciled" in record.getMessage() for record in caplog.records)
    assert server.unauthorised == 0  # basic auth from the URL reached the server on every call
    written = [path.read_bytes() for path in Path(job.store.path("")).rglob("*") if path.is_file()]
    assert "pw-4f9c1d" not in caplog.text and not any(b"pw-4f9c1d" in data for data in written)


def test_an_outage_is_resumed_by_id_and_a_restart_requeues_what_never_ran(farm: Farm, storage_url: str) -> None:
    (server,) = farm(1, render_seconds=1.5)
    watcher = when(lambda: server.running is not None, lambda: server.outage(1.0))
    _, outcome = run(comfy_request("A ferry crosses in fog"))
    watcher.join()
    assert outcome.ok and len(server.submissions) == 1  # waited through the outage, same prompt

    request = comfy_request("A tram climbs a hill")
    watcher = when(lambda: len(server.submissions) == 2 and server.running is not None, lambda: server.restart(0.5))
    job, outcome = run(request)
    watcher.join()
    assert isinstance(outcome.error, TransientProviderError) and "never ran" in str(outcome.error)
    lost = server.submissions[1].prompt_id
    job, outcome = run(request)  # what a task retry or a rerun does
    assert outcome.ok and len(server.submissions) == 3
    (entry,) = job.ledger.entries()
    assert [attempt.request_id for attempt in entry.history] == [f"{lost}@{server.label}"]
    assert entry.history[0].state == "failed" and lost not in server.history


def test_an_execution_error_names_the_node_and_allows_a_new_prompt(farm: Farm, storage_url: str) -> None:
    (server,) = farm(1)
    server.fail_next_at("KSamplerAdvanced", "Allocation on device failed")
    request = comfy_request("A kettle on a stove")
    job, outcome = run(request)
    assert isinstance(outcome.error, TerminalProviderError)
    assert "node 12 (KSamplerAdvanced)" in str(outcome.error) and "Allocation on device failed" in str(outcome.error)
    assert job.ledger.entries()[0].state == "failed"
    _, outcome = run(request)
    assert outcome.ok and len(server.submissions) == 2


def test_the_core_nodes_workflow_runs_as_the_users_own(farm: Farm, storage_url: str) -> None:
    (server,) = farm(1)
    request = comfy_request(
        "A paper lantern over a river",
        model="comfyui-workflow",
        comfy_workflow=str(HELD),
        comfy_mapping=str(HELD_MAP),
        continuity="keyframes",
        keyframe_model="preview-still",
        segments=2,
        seconds=2,
        quality_gate="report",  # holding two stills is a frozen clip with a cut: judged, not worth a retake here
    )
    job, outcome = run(request)
    assert outcome.ok, outcome.error
    assert len(server.submissions) == 2 and server.rejections == []
    verdicts = [job.store.read_json(layout.segment_takes(index))["takes"][0]["verdict"] for index in (1, 2)]
    assert all(not v["passed"] and "frozen" in {flaw["kind"] for flaw in v["flaws"]} for v in verdicts)
    for index in (1, 2):
        frames = [frame.rgb for frame in iter_frames(Path(job.store.path(layout.segment(index))))]
        assert len(frames) == 32  # 16 frames of each still at 16 fps: 2 s
        assert psnr(frames[0], decode_png(job.store.read_bytes(layout.keyframe(index - 1)))) >= 35
        assert psnr(frames[-1], decode_png(job.store.read_bytes(layout.keyframe(index)))) >= 35


def _cli(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str]:
    code = main(["run", *words])
    return code, capsys.readouterr().err


def test_bad_input_is_refused_before_anything_is_queued(
    farm: Farm, storage_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (server,) = farm(1, models={})  # a server without the model files
    code, err = _cli(capsys, "A cat", "--provider", "comfyui", "--model", "tiny-comfy", "--continuity", "keyframes")
    assert code == 2 and err.count("error:") == 1
    assert "UNETLoader" in err and "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors" in err and server.label in err

    vhs = json.loads(HELD.read_text())
    del vhs["6"]
    vhs["7"] = {"class_type": "VHS_VideoCombine", "inputs": {"images": ["5", 0], "frame_rate": 16}}
    (tmp_path / "vhs.json").write_text(json.dumps(vhs))
    (tmp_path / "vhs.toml").write_text('start_image = "1.image"\nend_image = "2.image"\nfps = "7.frame_rate"\n')
    own = ["--provider", "comfyui", "--model", "comfyui-workflow", "--continuity", "keyframes"]
    own += ["--keyframe-model", "preview-still"]
    code, err = _cli(
        capsys,
        "A cat",
        *own,
        "--comfy-workflow",
        str(tmp_path / "vhs.json"),
        "--comfy-mapping",
        str(tmp_path / "vhs.toml"),
    )
    assert code == 2 and "node VHS_VideoCombine (node 7 of vhs.json) is not installed" in err

    (tmp_path / "start.toml").write_text('start_image = "1.image"\n')
    code, err = _cli(
        capsys, "A cat", *own, "--comfy-workflow", str(HELD), "--comfy-mapping", str(tmp_path / "start.toml")
    )
    assert code == 2 and "error: comfy_workflow:" in err and "first_last_frame needs end_image" in err

    monkeypatch.setenv("SORA_EXTEND_COMFYUI_URLS", f"{server.url},http://bob:hunter2@127.0.0.1:9")
    reload_settings()
    code, err = _cli(capsys, "A cat", *own, "--comfy-workflow", str(HELD), "--comfy-mapping", str(HELD_MAP))
    assert code == 2 and "SORA_EXTEND_COMFYUI_URLS: ComfyUI server 127.0.0.1:9: does not answer" in err
    assert "hunter2" not in err
    assert server.submissions == [] and server.rejections == []  # nothing was queued


def test_a_refused_prompt_names_the_node(farm: Farm) -> None:
    (server,) = farm(1)
    graph = json.loads(HELD.read_text())
    client = ComfyClient(parse_servers(server.url)[0], 10)
    with pytest.raises(TerminalProviderError) as refused:
        client.queue_prompt(graph, "a1", "c1")  # its LoadImage files were never uploaded
    client.close()
    assert "node 1 (LoadImage)" in str(refused.value) and "Invalid image file: se/a.png" in str(refused.value)
    assert server.rejections[0]["error"]["type"] == "prompt_outputs_failed_validation"


def test_output_files_are_read_from_save_video_and_video_helper_suite() -> None:
    core = {
        "outputs": {
            "16": {"images": [{"filename": "clip_00001_.mp4", "subfolder": "se", "type": "output"}], "animated": [True]}
        }
    }
    vhs = {
        "outputs": {
            "9": {"gifs": [{"filename": "se_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}]}
        }
    }
    still = {"outputs": {"10": {"images": [{"filename": "still_00001_.png", "subfolder": "se", "type": "output"}]}}}
    assert output_file(core, video=True).view_url == "/view?filename=clip_00001_.mp4&subfolder=se&type=output"
    assert output_file(vhs, video=True).filename == "se_00001.mp4"
    assert output_file(still, video=False).filename == "still_00001_.png" and output_file(still, video=True) is None


def test_models_json_lists_the_comfyui_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"wan22", "ltx2", "comfyui-workflow"} <= {i for i, row in rows.items() if row["provider"] == "comfyui"}
    assert rows["wan22"]["fps"] == 16 and rows["wan22"]["frame_step"] == 4 and rows["wan22"]["last_frame_field"]
