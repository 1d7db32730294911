"""The `sora-extend` command line, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from sora_extend.media.probe import probe
from tests.media_factory import read_index, write_clip

KOREAN = "한 마리 고양이가 서울의 밤거리를 걷는다"
CLI = shutil.which("sora-extend") or str(Path(sys.executable).with_name("sora-extend"))


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", ""], "error: prompt: must not be empty (allowed: 1-4000 characters)"),
        (
            ["run", KOREAN, "--segments", "0"],
            "error: segments: Input should be greater than or equal to 1 (allowed: 1-60)",
        ),
        (["run", KOREAN, "--seconds", "30"], "error: seconds: 30 is not allowed for preview (allowed: 1-20)"),
        (
            ["run", KOREAN, "--provider", "fal", "--model", "veo31", "--seconds", "5"],
            "error: seconds: 5 is not allowed for veo31 (allowed: 4, 6, 8)",
        ),
        (
            ["run", KOREAN, "--provider", "openai", "--model", "sora2"],
            "error: model: model 'sora2' is retired",
        ),
        (["run", KOREAN, "--provider", "fal", "--budget", "0.5"], "error: budget_usd: this run needs $3.60"),
        (["run", KOREAN, "--storage", "s3://"], "error: storage: 's3://' names no bucket"),
    ],
)
def test_bad_input_exits_2_naming_the_field(args: list[str], message: str) -> None:
    done = cli(*args, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


@pytest.mark.slow
def test_run_offline_twice(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "SORA_EXTEND_STORAGE": f"file://{tmp_path / 'out'}",
        "SORA_EXTEND_WORK_DIR": str(tmp_path / "work"),
    }
    env.pop("PREFECT_API_URL", None)
    first = cli("run", KOREAN, "--segments", "3", "--seconds", "4", "--resolution", "360p", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    video = Path(first.stdout.strip().splitlines()[-1])
    info = probe(video)
    assert info.duration == pytest.approx(12.0, abs=1 / 24) and info.audio is not None
    segments = sorted(video.parent.glob("segments/*.mp4"))
    stamps = [path.stat().st_mtime_ns for path in segments]

    second = cli("run", KOREAN, "--segments", "3", "--seconds", "4", "--resolution", "360p", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.strip().splitlines()[-1] == str(video)
    assert [path.stat().st_mtime_ns for path in segments] == stamps
    assert "submitted" not in second.stderr


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", KOREAN, "--segments", "4", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["shots"]) == 4 and plan["language"] == "ko"


def test_models_and_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "veo31-fast" in listing and "sora2" not in listing
    assert main(["models", "--all"]) == 0
    assert "sora2 (retired)" in capsys.readouterr().out
    assert (
        main(
            [
                "estimate",
                KOREAN,
                "--provider",
                "fal",
                "--model",
                "kling-v3-pro",
                "--segments",
                "6",
                "--seconds",
                "10",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "6 x 10 s = 60 s" in out and "$0.168 per second" in out and "$10.08" in out


def test_frame_and_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_clip(tmp_path / "a.mp4", 30)
    b = write_clip(tmp_path / "b.mp4", 30, start_index=30)
    assert main(["frame", str(a), "-o", str(tmp_path / "last.png"), "--size", "160x90"]) == 0
    assert "160x90" in capsys.readouterr().out
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "ab.mp4")]) == 0
    assert "stream-copy" in capsys.readouterr().out
    assert probe(tmp_path / "ab.mp4").video.frames == 60
    from sora_extend.media.frames import last_frame

    assert read_index(last_frame(tmp_path / "ab.mp4")) == 59
    assert main(["frame", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "x.png")]) == 2


@pytest.mark.slow
def test_purge_dry_run_then_real(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sora_extend.pipeline.job import JobState
    from sora_extend.storage.store import JobStore

    storage = f"file://{tmp_path / 'out'}"
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    JobStore(storage, "old-job").write_json(
        "job.json",
        {
            **JobState(job_id="old-job", status="completed").model_dump(mode="json"),
            "updated_at": old,
            "finished_at": old,
        },
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    dry = cli("purge", "--storage", storage, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "would delete 1 job folder(s)" in dry.stdout and (tmp_path / "out" / "old-job").exists()
    real = cli("purge", "--storage", storage, env=env)
    assert real.returncode == 0 and "deleted 1 job folder(s)" in real.stdout
    assert not (tmp_path / "out" / "old-job").exists()
