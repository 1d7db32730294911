"""What a run costs around the provider's own work: `make bench` (or `.venv/bin/python -m benchmarks.overhead_bench
[--quick]`).

Each row is one `sora-extend run` started as a person starts it (a new process, plain progress lines read
as they arrive), in a fresh job folder, after the local Prefect server is up (a warm machine; its cold
start is printed too). Per row:
  - first step: from the command to the first piece's first progress line (imports, checks, Prefect);
  - last piece to last line: from the last keyframe or clip done to the command's last line (the merge,
    the report and the review page);
  - total: from the command to the process's exit;
  - ideal: the provider's own time on the run's critical path. Against the fal emulator it is set by
    construction (every still `--still` s and every clip `--clip` s in progress after 0.05 s queued:
    keyframe 0, then an edit of it, then one clip); offline, the preview renderer is the provider, and
    the ideal is the critical path of the render times the run recorded (its manifest's `render_s`).
The emulated rows run the real `fal_client` against the emulator in a process of its own (it renders
small 360p clips; on 2 cores its renders still share the CPU with the run, so its longest render is
printed: a render longer than the clip's time holds the clip back). The baseline row, in the same run, is
the demo on a temporary Prefect server of its own (`SORA_EXTEND_PREFECT_SERVER=embedded`, what every run
did before). Last, pieces whose provider takes 0.3 s (keyframes 4 x 1 s against a second emulator): the
time their progress lines show, polling, download, checks and storing included.
Only the ratios carry to other machines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("sora-extend"))
QUEUE_S = 0.05  # the emulator's time in the queue, before a still or clip is in progress
QUICK_S = 0.3  # a provider this quick shows what polling and downloading add to every piece
PIECE = re.compile(r"^\[\d+:\d\d\] (keyframe \d\d|segment \d\d|merge)\s+(.*)$")
DONE_IN = re.compile(r"^\[\d+:\d\d\] (keyframe|segment) \d\d\s+done .* in ([0-9.]+) s")


@dataclass
class Row:
    name: str
    args: list[str]
    env: dict[str, str]
    ideal_s: float | None = None  # None: from the run's manifest


@dataclass
class Timing:
    first_step_s: float
    tail_s: float
    total_s: float
    ideal_s: float


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _timed_run(args: list[str], env: dict[str, str]) -> tuple[list[tuple[float, str]], float, int]:
    """The command's stdout lines with the second each arrived, its total time and exit code."""
    started = time.perf_counter()
    process = subprocess.Popen([CLI, "run", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in process.stdout]
    code = process.wait()
    return lines, time.perf_counter() - started, code


def critical_path_s(manifest: dict[str, Any]) -> float:
    """The longest chain of recorded render times: chain and extend clips one after another; keyframes
    mode keyframe 0, then the edits of it, then each clip after the later of its two stills."""
    clips = {segment["index"]: segment["render_s"] for segment in manifest["segments"]}
    stills = {keyframe["index"]: keyframe["render_s"] for keyframe in manifest.get("keyframes") or []}
    if not stills:
        return float(sum(clips.values()))
    ready = {index: stills[0] + (seconds if index else 0.0) for index, seconds in stills.items()}
    return float(max(max(ready[index - 1], ready[index]) + seconds for index, seconds in clips.items()))


def measure(row: Row, storage: Path) -> Timing:
    """One run of the row in its own job storage (a fresh folder: nothing is cached)."""
    lines, total, code = _timed_run(row.args, {**row.env, "SORA_EXTEND_STORAGE": f"file://{storage}"})
    if code != 0:
        raise SystemExit(f"{row.name} failed (exit {code}):\n" + "\n".join(text for _, text in lines[-20:]))
    pieces = [(at, match) for at, text in lines if (match := PIECE.match(text))]
    first_step = pieces[0][0]
    last_piece = max(at for at, match in pieces if match[1] != "merge" and match[2].startswith("done"))
    ideal = row.ideal_s
    if ideal is None:
        ideal = critical_path_s(json.loads((Path(lines[-1][1]).parent / "manifest.json").read_text()))
    return Timing(first_step, lines[-1][0] - last_piece, total, ideal)


@contextmanager
def emulator(still_s: float, clip_s: float) -> Iterator[tuple[dict[str, str], str]]:
    """The fal emulator in a process of its own: the settings that point a run at it, and its base URL."""
    from tests.emulators.fal import environment_for
    from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE

    command = [sys.executable, "-m", "tests.emulators.serve", "--progress", str(clip_s), "--still", str(still_s)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        yield {**environment_for(url, "fal-test-key"), "SORA_EXTEND_CATALOGUE_FILE": str(TEST_MODEL_CATALOGUE)}, url
    finally:
        process.terminate()
        process.wait()


def piece_times(args: list[str], env: dict[str, str]) -> dict[str, list[float]]:
    """What the progress lines show for each still and clip: `done ... in X s`."""
    lines, _, code = _timed_run(args, env)
    if code != 0:
        raise SystemExit("the quick-piece run failed:\n" + "\n".join(text for _, text in lines[-20:]))
    found: dict[str, list[float]] = {"keyframe": [], "segment": []}
    for _, text in lines:
        match = DONE_IN.match(text)
        if match:
            found[match[1]].append(float(match[2]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 6 clips only")
    parser.add_argument("--still", type=float, default=1.0, help="seconds the emulator takes per keyframe still")
    parser.add_argument("--clip", type=float, default=3.0, help="seconds the emulator takes per clip")
    args = parser.parse_args()
    sizes = (1, 6) if args.quick else (1, 6, 16)
    from tests.emulators.fal import STATS_PATH

    with tempfile.TemporaryDirectory(prefix="sora-extend-overhead-") as folder:
        work = Path(folder)
        base = {
            **os.environ,
            "PREFECT_HOME": str(work / "prefect"),
            "SORA_EXTEND_PREFECT_PORT": str(_free_port()),
            "SORA_EXTEND_WORK_DIR": str(work / "work"),
            "SORA_EXTEND_LOCK_DIR": str(work / "locks"),
        }
        base.pop("PREFECT_API_URL", None)
        started = time.perf_counter()
        subprocess.run([CLI, "prefect", "start"], cwd=ROOT, env=base, check=False, capture_output=True)
        cold_s = time.perf_counter() - started
        try:
            with emulator(args.still, args.clip) as (fal, url):
                table = overhead_table(work, base, {**base, **fal}, sizes, args.still, args.clip)
                longest = httpx.get(url.rstrip("/") + STATS_PATH).json()["render_s_max"]
            with emulator(QUICK_S - QUEUE_S, QUICK_S - QUEUE_S) as (fal, _):
                quick = ["A kite over the river", "--provider", "fal", "--model", "tiny-fal", "--continuity"]
                quick += ["keyframes", "--segments", "4", "--seconds", "1"]
                shown = piece_times(quick, {**base, **fal, "SORA_EXTEND_STORAGE": f"file://{work / 'quick'}"})
        finally:
            subprocess.run([CLI, "prefect", "stop"], cwd=ROOT, env=base, check=False, capture_output=True)
    print(f"local Prefect server, cold start (a new database): {cold_s:.1f} s")
    print(f"emulator: {args.still:g} s a still, {args.clip:g} s a clip; its longest render took {longest:.1f} s")
    print("\n".join(table))
    print(f"\npieces whose provider takes {QUICK_S:g} s (keyframes 4 x 1 s), as the progress lines show them:")
    for kind, seconds in shown.items():
        print(f"  {kind}: " + ", ".join(f"{value:.1f} s" for value in seconds) + f" (median {median(seconds):.1f} s)")
    return 0


def overhead_table(
    work: Path, base: dict[str, str], fal: dict[str, str], sizes: tuple[int, ...], still_s: float, clip_s: float
) -> list[str]:
    demo = ["한 마리 고양이가 서울의 밤거리를 걷는다", "--segments", "3", "--seconds", "4"]
    _timed_run(demo, {**base, "SORA_EXTEND_STORAGE": f"file://{work / 'warm-up'}"})  # a first run's own costs
    embedded = {**base, "SORA_EXTEND_PREFECT_SERVER": "embedded"}
    rows = [Row("offline demo, embedded server (before)", demo, embedded), Row("offline demo", demo, base)]
    keyframes = ["--continuity", "keyframes", "--seconds", "4", "--segments"]
    rows += [Row(f"offline keyframes {n} x 4 s", [f"A lighthouse ({n})", *keyframes, str(n)], base) for n in sizes]
    emulated = ["--provider", "fal", "--model", "tiny-fal", *keyframes]
    path_s = 3 * QUEUE_S + 2 * still_s + clip_s  # keyframe 0, an edit of it, a clip
    rows += [
        Row(f"fal emulator keyframes {n} x 4 s", [f"A night train ({n})", *emulated, str(n)], fal, path_s)
        for n in sizes
    ]
    table = [
        "| run | first step | last piece to last line | total | ideal | total / ideal |",
        "|---|---|---|---|---|---|",
    ]
    for number, row in enumerate(rows):
        print(f"{row.name} ...", file=sys.stderr)
        timing = measure(row, work / f"jobs-{number}")
        table.append(
            f"| {row.name} | {timing.first_step_s:.1f} s | {timing.tail_s:.1f} s | {timing.total_s:.1f} s "
            f"| {timing.ideal_s:.1f} s | {timing.total_s / timing.ideal_s:.2f}x |"
        )
    return table


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
