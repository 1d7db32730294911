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
small 360p clips, so its own CPU stays out of the way). The baseline row, in the same run, is the demo on
a temporary Prefect server of its own (`SORA_EXTEND_PREFECT_SERVER=embedded`, what every run did before).
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("sora-extend"))
QUEUE_S = 0.05  # the emulator's time in the queue, before a still or clip is in progress
PIECE = re.compile(r"^\[\d+:\d\d\] (keyframe \d\d|segment \d\d|merge)\s+(.*)$")


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


def critical_path_s(manifest: dict[str, object]) -> float:
    """The longest chain of recorded render times: chain and extend clips one after another; keyframes
    mode keyframe 0, then the edits of it, then each clip after the later of its two stills."""
    renders = {("segment", s["index"]): s["render_s"] for s in manifest["segments"]}  # type: ignore[attr-defined, index]
    stills = {k["index"]: k["render_s"] for k in manifest.get("keyframes") or []}  # type: ignore[attr-defined, union-attr, index]
    if not stills:
        return float(sum(renders.values()))
    ready = {index: stills[0] + (stills[index] if index else 0.0) for index in stills}
    return max(max(ready[k - 1], ready[k]) + seconds for (_, k), seconds in renders.items())


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 6 clips only")
    parser.add_argument("--still", type=float, default=1.0, help="seconds the emulator takes per keyframe still")
    parser.add_argument("--clip", type=float, default=3.0, help="seconds the emulator takes per clip")
    args = parser.parse_args()
    sizes = (1, 6) if args.quick else (1, 6, 16)
    from tests.emulators.fal import environment_for
    from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE

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
        emulator = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.serve", "--progress", str(args.clip), "--still", str(args.still)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert emulator.stdout is not None
            fal = {
                **base,
                **environment_for(emulator.stdout.readline().strip(), "fal-test-key"),
                "SORA_EXTEND_CATALOGUE_FILE": str(TEST_MODEL_CATALOGUE),
            }
            started = time.perf_counter()
            subprocess.run([CLI, "prefect", "start"], cwd=ROOT, env=base, check=False, capture_output=True)
            cold_s = time.perf_counter() - started
            demo = ["한 마리 고양이가 서울의 밤거리를 걷는다", "--segments", "3", "--seconds", "4"]
            _timed_run(demo, {**base, "SORA_EXTEND_STORAGE": f"file://{work / 'warm-up'}"})  # first-run costs
            embedded = {**base, "SORA_EXTEND_PREFECT_SERVER": "embedded"}
            rows = [Row("offline demo, embedded server (before)", demo, embedded), Row("offline demo", demo, base)]
            keyframes = ["--continuity", "keyframes", "--seconds", "4", "--segments"]
            rows += [
                Row(f"offline keyframes {n} x 4 s", [f"A lighthouse ({n})", *keyframes, str(n)], base) for n in sizes
            ]
            emulated = ["--provider", "fal", "--model", "tiny-fal", *keyframes]
            path_s = 3 * QUEUE_S + 2 * args.still + args.clip  # keyframe 0, an edit of it, a clip
            rows += [
                Row(f"fal emulator keyframes {n} x 4 s", [f"A night train ({n})", *emulated, str(n)], fal, path_s)
                for n in sizes
            ]
            table = [
                f"local Prefect server, cold start (new database): {cold_s:.1f} s; emulator: {args.still:g} s a "
                f"still, {args.clip:g} s a clip",
                "",
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
        finally:
            subprocess.run([CLI, "prefect", "stop"], cwd=ROOT, env=base, check=False, capture_output=True)
            emulator.terminate()
            emulator.wait()
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
