"""ComfyUI render farm benchmark: `make bench` (or `.venv/bin/python -m benchmarks.comfyui_bench [--quick]`).

Keyframes mode, 8 clips, on 1, 2 and 4 emulated ComfyUI servers, through the real pipeline (the
provider's HTTP calls, server slots, uploads, the ledger, downloads, merge). Each emulated server runs
one prompt at a time, as a GPU does, and every clip keeps it busy for a fixed T seconds (every still for
T_still): the ratio of wall times is what more servers buy. Baseline: the same run on one server, in
the same process, one after the other. The ideal wall time is the still for keyframe 0, then the 8 edits
and the 8 clips shared out over the servers: T_still + ceil(8 / n) x (T_still + T).

The emulated servers run in this process (their renders are small clips at 360p, a fraction of T), so
the pipeline's own work shows up in the difference between measured and ideal.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP_T = 4.0
STILL_T = 0.5
CLIPS = 8


def run_farm(servers: int, work: Path) -> dict[str, float]:
    from benchmarks._local import run_environment
    from sora_extend.pipeline.job import Job, job_ref
    from sora_extend.pipeline.run import run_job
    from sora_extend.request import ExtendRequest
    from sora_extend.settings import reload_settings
    from tests.emulators._common import max_overlap
    from tests.emulators.comfyui import ComfyUIEmulator, farm_environment

    farm = [ComfyUIEmulator(render_seconds=CLIP_T, still_seconds=STILL_T) for _ in range(servers)]
    try:
        os.environ.update(farm_environment(farm))
        os.environ.update(run_environment(work, 0.1))
        settings = reload_settings()
        request = ExtendRequest(
            prompt=f"Fireflies over a rice terrace ({servers} servers)",
            provider="comfyui",
            model="tiny-comfy",
            segments=CLIPS,
            seconds=1,
            continuity="keyframes",
            storage=f"file://{work}/jobs",
        )
        job = Job(job_ref(request, settings), settings)
        started = time.perf_counter()
        _, outcome = run_job(job, threads=32)
        wall = time.perf_counter() - started
        if not outcome.ok:
            raise SystemExit(f"{servers} server(s) failed: {outcome.error}")
        now = time.monotonic()
        clips = [prompt for server in farm for prompt in server.submissions if prompt.makes_video]
        return {
            "wall": wall,
            "clips_at_once": float(max_overlap([prompt.interval(now) for prompt in clips])),
            "most_queued_per_server": float(max(server.max_outstanding for server in farm)),
            "prompts": float(sum(len(server.submissions) for server in farm)),
        }
    finally:
        for server in farm:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 2 servers only")
    args = parser.parse_args()
    sizes = (1, 2) if args.quick else (1, 2, 4)
    results = {}
    for servers in sizes:
        with tempfile.TemporaryDirectory(prefix="sora-extend-comfy-bench-") as folder:
            print(f"keyframes x {CLIPS} on {servers} server(s) ...", file=sys.stderr)
            results[servers] = run_farm(servers, Path(folder))
    base = results[1]["wall"]
    rows = [
        f"keyframes mode, {CLIPS} clips; every clip keeps a server busy T = {CLIP_T:.1f} s, every still "
        f"{STILL_T:.1f} s; one prompt at a time per server",
        "",
        "| servers | wall time | ideal | speed-up vs 1 server | clips rendering at once | most prompts queued on "
        "one server | prompts sent |",
        "|---|---|---|---|---|---|---|",
    ]
    for servers, result in results.items():
        ideal = STILL_T + math.ceil(CLIPS / servers) * (STILL_T + CLIP_T)
        rows.append(
            f"| {servers} | {result['wall']:.1f} s | {ideal:.1f} s | {base / result['wall']:.2f}x | "
            f"{result['clips_at_once']:.0f} | {result['most_queued_per_server']:.0f} | {result['prompts']:.0f} |"
        )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
