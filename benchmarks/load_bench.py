"""Load benchmark: `make bench-load` (or `.venv/bin/python -m benchmarks.load_bench [--clip S] [--sweep 1,5,8]
[--batch N]`); about 9 minutes with the defaults, and not part of `make test`.

How many videos one process worker renders at once on this machine, and how throughput grows from one
worker to two, through the production stack of tests/test_production.py: PostgreSQL, the Prefect server
with basic auth, `sora-extend bootstrap`, `prefect deploy --all`, S3 job storage (moto server) and the
storage lock, with runs started over the HTTP API as users' code would. The provider is the fal emulator
in a process of its own, every clip in progress --clip seconds (15): real video models take tens of seconds
to minutes per clip, scaled down here so the bench takes minutes. Each video is 2 clips of 1 s at 360p
(tiny-fal), so its floor is 2 x --clip plus this machine's own work (a flow-run process per video, the
hand-off frame, the merge, the report). Everything shares this machine's cores: the server, PostgreSQL,
S3, the emulator's rendering (a provider's GPUs, elsewhere in reality) and the workers.

Printed: N videos started at once on one worker (--limit N), the time until the last one finished against
one video alone, and the worker's CPU per video; a worker sustains N while the last one finishes within
1.25x of one alone. Then one batch through one worker and through two (each --limit 4), in videos/minute.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import boto3
import httpx
import psutil
from moto.server import ThreadedMotoServer

from tests.emulators.fal import STATS_PATH, environment_for
from tests.server_stack import S3_KEYS, ServerStack, free_port, kill_tree, shared_storage_env

ROOT = Path(__file__).resolve().parent.parent
SUSTAINED = 1.25  # the last of N videos finishes within this factor of one video alone
OPTIONS = {"provider": "fal", "model": "tiny-fal", "segments": 2, "seconds": 1, "resolution": "360p"}


class CpuSampler:
    """The machine's busy share while a measurement runs, sampled every second."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        psutil.cpu_percent()
        while not self._stop.wait(1.0):
            self.samples.append(psutil.cpu_percent())

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def worker_cpu_s(pid: int) -> float:
    """CPU seconds of a worker and every flow-run process it started, once they have all exited (a process's
    time is added to its parent's when the parent reaps it)."""
    worker = psutil.Process(pid)
    deadline = time.monotonic() + 60
    while worker.children() and time.monotonic() < deadline:
        time.sleep(0.5)
    times = worker.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def measure(stack: ServerStack, videos: int, workers: int, limit: int) -> dict[str, float]:
    """Start `videos` runs at once on `workers` fresh workers with --limit `limit`; wait for all."""
    tag = uuid.uuid4().hex[:6]
    started_workers = [stack.start_worker(f"bench-{tag}-{n}", limit) for n in range(workers)]
    stack.wait_online([worker.name for worker in started_workers])
    cpu_before = sum(worker_cpu_s(worker.process.pid) for worker in started_workers)
    prompts = [f"Bench {tag}: a paper boat {n} on a rainy street" for n in range(videos)]
    with CpuSampler() as cpu:
        submitted = time.time()
        ids = [stack.start_run("extend-video", {"request": {"prompt": prompt, **OPTIONS}}) for prompt in prompts]
        runs = stack.wait_final(ids, timeout=60 * 30)
    cpu_s = sum(worker_cpu_s(worker.process.pid) for worker in started_workers) - cpu_before
    for worker in started_workers:
        kill_tree(worker.process.pid)
    failed = [run["state"]["message"] for run in runs.values() if run["state_type"] != "COMPLETED"]
    if failed:
        raise SystemExit(f"{len(failed)} of {videos} videos failed: {failed[0]}")
    ends = [datetime.fromisoformat(run["end_time"]).timestamp() - submitted for run in runs.values()]
    return {
        "last_s": max(ends),
        "median_s": statistics.median(ends),
        "cpu_per_video_s": cpu_s / videos,
        "busy": statistics.mean(cpu.samples) if cpu.samples else 0.0,
    }


def one_worker(stack: ServerStack, sweep: tuple[int, ...], clip_s: float) -> list[str]:
    rows = [
        f"Each video: 2 clips x {clip_s:.0f} s of provider latency (scaled down). One worker, N videos at once:",
        "",
        "| videos at once | last finished | median | vs 1 video | worker CPU per video | machine busy | sustained |",
        "|---|---|---|---|---|---|---|",
    ]
    alone = 0.0
    for videos in sweep:
        print(f"{videos} at once on one worker ...", file=sys.stderr)
        result = measure(stack, videos, workers=1, limit=videos)
        alone = alone or result["last_s"]
        ratio = result["last_s"] / alone
        rows.append(
            f"| {videos} | {result['last_s']:.0f} s | {result['median_s']:.0f} s | {ratio:.2f}x | "
            f"{result['cpu_per_video_s']:.1f} s | {result['busy']:.0f}% | {'yes' if ratio <= SUSTAINED else 'no'} |"
        )
    return rows


def two_workers(stack: ServerStack, batch: int) -> list[str]:
    """The same batch through one worker and through two, each --limit 4 (so one worker needs two rounds)."""
    rows = [
        f"A batch of {batch} videos, each worker --limit 4 (both workers on this one machine):",
        "",
        "| workers | last finished | videos per minute | vs 1 worker |",
        "|---|---|---|---|",
    ]
    one = 0.0
    for workers in (1, 2):
        print(f"{batch} videos on {workers} worker(s) ...", file=sys.stderr)
        result = measure(stack, batch, workers=workers, limit=4)
        per_minute = batch / result["last_s"] * 60
        one = one or per_minute
        rows.append(f"| {workers} | {result['last_s']:.0f} s | {per_minute:.1f} | {per_minute / one:.2f}x |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=float, default=15.0, help="seconds the provider spends on a clip")
    parser.add_argument("--sweep", default="1,2,3,5", help="videos at once on one worker, e.g. 1,5,8")
    parser.add_argument("--batch", type=int, default=6, help="videos through 1 then 2 workers (0: skip)")
    args = parser.parse_args()
    sweep = tuple(int(videos) for videos in args.sweep.split(","))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS).create_bucket(Bucket="bench")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.serve", "--progress", str(args.clip)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    fal_url = emulator.stdout.readline().strip()
    with tempfile.TemporaryDirectory(prefix="sora-extend-load-") as folder:
        stack = ServerStack(
            Path(folder),
            {
                **shared_storage_env("s3://bench/jobs", endpoint),
                "SORA_EXTEND_POLL_INTERVAL_S": "1",
                **environment_for(fal_url, "fal-test-key"),
            },
        )
        try:
            stack.start_server()
            # Provider slots are not what is measured here: room for every video at once.
            stack.cli("sora-extend", "bootstrap", "--limit", "fal=64", "--results-block")
            stack.cli("prefect", "--no-prompt", "deploy", "--all")
            print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
            rows = one_worker(stack, sweep, args.clip)
            if args.batch:
                rows += ["", *two_workers(stack, args.batch)]
            provider = httpx.get(fal_url.rstrip("/") + STATS_PATH).json()
            rows.append(
                f"\nThe provider saw {provider['submissions']} submissions, at most {provider['max_in_progress']} "
                "clips in progress at once."
            )
        finally:
            stack.close()
            emulator.terminate()
            emulator.wait()
            s3.stop()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
