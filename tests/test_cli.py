"""The `sora-extend` command line, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.main import main
from sora_extend.media.probe import probe
from sora_extend.settings import get_settings
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


def _states(stdout: str) -> dict[str, list[str]]:
    """Per piece, the states the plain (not a terminal) progress output went through, in order."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(r"\[\d+:\d\d\] (segment \d\d|merge)\s+(done \(stored\)|in progress|\S+)", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


@pytest.mark.slow
def test_run_offline_twice_on_the_local_prefect_server_the_first_run_starts(tmp_path: Path) -> None:
    """`make demo` twice on a fresh machine: the first run starts the local Prefect server in the background,
    the second finds it and pays for nothing; both runs stay in the server's history (what its UI shows),
    and `sora-extend prefect stop` stops it."""
    port, home = _closed_port(), tmp_path / "prefect"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "SORA_EXTEND_PREFECT_SERVER": "background",
        "SORA_EXTEND_PREFECT_PORT": str(port),
        "SORA_EXTEND_STORAGE": f"file://{tmp_path / 'out'}",
        "SORA_EXTEND_WORK_DIR": str(tmp_path / "work"),
    }
    env.pop("PREFECT_API_URL", None)
    api, ui = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    try:
        first = cli("run", KOREAN, "--segments", "3", "--seconds", "4", "--resolution", "360p", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert first.stdout.startswith(
            f"prefect: started a local Prefect server in the background (UI {ui}); it stays for the next runs, "
            "`sora-extend prefect stop` stops it\n"
        )
        pid = int((home / "server.pid").read_text())
        video = Path(first.stdout.strip().splitlines()[-1])
        info = probe(video)
        assert info.duration == pytest.approx(12.0, abs=1 / 24) and info.audio is not None
        segments = sorted(video.parent.glob("segments/*.mp4"))
        stamps = [path.stat().st_mtime_ns for path in segments]
        # Not a terminal: one plain line per state change of each piece, and no Prefect log lines at all.
        rendered = ["starting", "submitted", "downloading", "judging", "done"]
        assert _states(first.stdout) == {
            **{f"segment 0{k}": rendered for k in (1, 2, 3)},
            "merge": ["starting", "done"],
        }
        assert first.stderr == ""
        assert f"review: {video.parent / 'review.html'}" in first.stdout and "total cost $0.00" in first.stdout

        second = cli("run", KOREAN, "--segments", "3", "--seconds", "4", "--resolution", "360p", env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert second.stdout.strip().splitlines()[-1] == str(video)
        assert "prefect:" not in second.stdout and second.stderr == ""
        assert int((home / "server.pid").read_text()) == pid  # the same server
        assert [path.stat().st_mtime_ns for path in segments] == stamps
        assert {piece: states for piece, states in _states(second.stdout).items() if piece != "merge"} == {
            f"segment 0{k}": ["starting", "done (stored)"] for k in (1, 2, 3)
        }

        runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
        assert [(run["name"], run["state_type"]) for run in runs] == [
            ("한-마리-고양이가-서울의-밤거리를-걷는다 · 3x4s", "COMPLETED")
        ] * 2
        tasks = _task_names(api, runs=2)  # each run's steps, as its page in the UI lists them
        assert tasks.count("render-segment-01") == 2 and sum(name.startswith("merge-segments-") for name in tasks) == 2
        # The UI calls this server's API whatever the port (not 127.0.0.1:4200, Prefect's default).
        assert httpx.get(f"{ui}/ui-settings").json()["api_url"] == api
        status = cli("prefect", "status", env=env)
        assert status.returncode == 0
        assert (
            status.stdout == f"running: UI {ui}, API {api} (pid {pid}, output in {home / 'sora-extend-server.log'})\n"
        )
    finally:
        stop = cli("prefect", "stop", env=env)
    assert stop.returncode == 0 and stop.stdout == f"stopped the Prefect server on {ui} (pid {pid})\n"
    assert not (home / "server.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api}/health")
    assert cli("prefect", "status", env=env).returncode == 1


def _task_names(api: str, runs: int) -> list[str]:
    """The task runs the server has recorded (from the runs' events, which it records a moment later)."""
    deadline = time.monotonic() + 60
    while True:
        names = [task["name"] for task in httpx.post(f"{api}/task_runs/filter", json={}).json()]
        if sum(name.startswith("merge-segments-") for name in names) == runs or time.monotonic() > deadline:
            return sorted(names)
        time.sleep(0.5)


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


# ---------------------------------------------------------------- fail fast: one line, exit 2, nothing started


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["run", KOREAN, "--provider", "fal", "--model", "veo31-fast", "--seconds", "4"],
            {},
            "error: FAL_KEY: provider 'fal' (model veo31-fast) needs an API key and none was found.",
        ),
        (["run", KOREAN], {"SORA_EXTEND_STORAGE": "foo://x"}, "error: storage: unsupported storage protocol 'foo://'"),
        (["purge", "--older-than-days", "-3"], {}, "error: argument --older-than-days: -3 is out of range"),
        (
            ["purge"],
            {"SORA_EXTEND_RETENTION_DAYS": "-3"},
            "error: SORA_EXTEND_RETENTION_DAYS: Input should be greater than 0 (allowed: more than 0 and at most",
        ),
        (
            ["run", KOREAN, "--continuity", "keyframes", "--reference", "README.md"],
            {},
            "error: references: README.md is not a readable image (allowed: PNG, JPEG or WebP files)",
        ),
        (
            ["run", KOREAN, "--max-takes", "0"],
            {},
            "error: max_takes: Input should be greater than or equal to 1 (allowed: 1-5)",
        ),
        (
            ["run", KOREAN, "--max-takes", "9"],
            {},
            "error: max_takes: Input should be less than or equal to 5 (allowed: 1-5)",
        ),
        (
            ["run", KOREAN, "--quality-gate", "maybe"],
            {},
            "error: quality_gate: Input should be 'off', 'report' or 'retake' (allowed: off, report, retake)",
        ),
        (
            ["run", KOREAN, "--judge", "vlm"],
            {},
            "error: OPENAI_API_KEY: judge 'vlm' (model gpt-4.1-mini) needs an API key and none was found.",
        ),
        (
            ["run", KOREAN, "--judge", "vlm", "--judge-model", "gpt-2"],
            {"OPENAI_API_KEY": "unused"},
            "error: judge_model: unknown judge model 'gpt-2' (allowed: gpt-4.1-mini, gpt-5-mini)",
        ),
        (
            ["run", KOREAN, "--use-take", "2=3"],
            {},
            "error: use_takes: segment 2 has no stored take 3 (allowed: none rendered yet)",
        ),
        (
            ["run", KOREAN, "--provider", "fal", "--model", "hailuo23", "--continuity", "extend"],
            {"FAL_KEY": "unused"},
            "error: model: hailuo23 has no extend endpoint (continuity 'extend') (allowed: veo31, veo31-fast, ltx23)",
        ),
    ],
)
def test_mistakes_are_refused_before_prefect_starts(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    home = tmp_path / "prefect"
    done = cli(*args, env={**os.environ, "PREFECT_HOME": str(home), **env}, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1, done.stderr
    assert not list(home.glob("*.db"))  # Prefect's embedded server never started


def _main(*args: str) -> int:
    try:
        return main(list(args))
    except SystemExit as exit_:  # argparse refusals
        return int(exit_.code or 0)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set environment variables that settings are read from (read again by the command under test)."""
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["purge", "--older-than-days", "nan"], {}, "nan is out of range (allowed: more than 0 and at most 36500)"),
        (["purge", "--older-than-days", "1e400"], {}, "1e400 is out of range"),
        (["purge", "--older-than-days", "abc"], {}, "'abc' is not a number"),
        (
            ["purge"],
            {"SORA_EXTEND_RETENTION_DAYS": "soon"},
            "SORA_EXTEND_RETENTION_DAYS: Input should be a valid number",
        ),
        (
            ["models"],
            {"SORA_EXTEND_PUBLIC_URL": "ftp://host"},
            "SORA_EXTEND_PUBLIC_URL: 'ftp://host' is not an http(s)",
        ),
        (
            ["run", KOREAN, "--seconds", "0"],
            {},
            "seconds: Input should be greater than or equal to 1 (allowed: 1 or more)",
        ),
        (["run", KOREAN, "--crossfade-seconds", "3"], {}, "(allowed: more than 0 and at most 2.0)"),
        (
            ["run", KOREAN, "--rerender", "0"],
            {},
            "rerender.0: Input should be greater than or equal to 1 (allowed: 1 or",
        ),
        (
            ["run", KOREAN, "--storage", "file:///etc/hostname/jobs"],
            {},
            "storage: /etc/hostname is a file, not a folder",
        ),
        (["run", KOREAN, "--out", "/tmp"], {}, "argument --out: '/tmp' is a folder"),
        (
            ["frame", "a.mp4", "-o", "x.png", "--guard", "-1"],
            {},
            "argument --guard: -1 is out of range (allowed: 0-240)",
        ),
        (["frame", "a.mp4", "-o", "x.png", "--size", "0x720"], {}, "'0x720' is out of range"),
        (["merge", "a.mp4", "-o", "x.mp4", "--crossfade", "0"], {}, "0 is out of range (allowed: more than 0 and at"),
        (["serve", "--port", "70000"], {}, "argument --port: 70000 is out of range (allowed: 1-65535)"),
        (["bootstrap", "--limit", "fal=0"], {}, "'fal=0' is not PROVIDER=N"),
        (["bootstrap", "--crash-after", "-5"], {}, "argument --crash-after: -5 is out of range"),
        (["bootstrap", "--pool", " "], {}, "argument --pool: must not be empty"),
    ],
)
def test_every_command_refuses_bad_values_in_one_line(
    args: list[str],
    env: dict[str, str],
    message: str,
    settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        settings_env.setenv(name, value)
    get_settings.cache_clear()
    assert _main(*args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err and len(captured.err.splitlines()) == 1, (
        captured.err
    )
    assert captured.out == ""


def test_unreachable_storage_server_and_taken_port(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = _closed_port()
    assert _main("run", KOREAN, "--storage", f"ftp://127.0.0.1:{closed}/jobs") == 2
    assert (
        f"storage: 'ftp://127.0.0.1:{closed}/jobs' cannot be reached: ConnectionRefusedError" in capsys.readouterr().err
    )
    settings_env.setenv("PREFECT_API_URL", f"http://127.0.0.1:{closed}/api")
    assert _main("run", KOREAN, "--segments", "1") == 2
    assert f"error: PREFECT_API_URL: http://127.0.0.1:{closed}/api does not answer" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert _main("serve", "--port", str(port)) == 2
        assert "error: port: cannot listen on 127.0.0.1:" in capsys.readouterr().err
        # The local Prefect server's port, taken by something that is not a Prefect server: named, nothing started.
        settings_env.setenv("SORA_EXTEND_PREFECT_PORT", str(port))
        get_settings.cache_clear()
        assert _main("prefect", "start") == 1
    assert capsys.readouterr().err == (
        f"error: port {port} is taken by a program that is not a Prefect server (set SORA_EXTEND_PREFECT_PORT to "
        "another port, or PREFECT_API_URL to a Prefect server)\n"
    )


def test_a_missing_bucket_is_named_before_anything_starts(s3_storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sora_extend.storage.store import check_storage

    assert check_storage(s3_storage) == s3_storage  # the bucket exists: accepted as it is
    assert _main("run", KOREAN, "--storage", "s3://no-such-bucket-3f1d/jobs") == 2
    assert (
        capsys.readouterr().err
        == "error: storage: bucket 'no-such-bucket-3f1d' does not exist (or these credentials cannot see it)\n"
    )
