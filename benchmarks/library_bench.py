"""Library benchmark: `make bench` (or `.venv/bin/python -m benchmarks.library_bench [--jobs N]`).

The library page over 5 000 synthetic jobs, on local storage and on S3 (moto's server on loopback, the
same endpoint the tests use): server time (the app's handling of one request, in process, without a
network hop) for the first page and for a prompt search, cold (a server that just started: it reads the
index's snapshot and the notices written since) and warm (the next requests: two small listings and the
entries they name). The index is laid out as a storage in use, at its worst for a cold reader: every
job's entry, a snapshot of all but the latest changes, and as many notices as a reader leaves unfolded.

Baseline, measured in the same run: reading every job's entry one by one (what a listing without the
snapshot would do). On S3 only the listing of those entries is timed: reading 5 000 objects from moto
takes about a minute.

Targets (issue): <= 300 ms local, <= 1.5 s S3 cold, <= 300 ms S3 warm.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from sora_extend.library.index import READER_COMPACTS_AT

PENDING = READER_COMPACTS_AT - 1  # changes since the last snapshot: the most a cold reader finds
SEARCH = "고양이"
SUBJECTS = [
    "한 마리 고양이가",
    "A red fox",
    "두 아이가",
    "An old lighthouse keeper",
    "A paper boat",
    "강아지 한 마리가",
]
PLACES = [
    "서울의 밤거리를 걷는다",
    "walks through the snow at dawn",
    "한강 다리 위를 달린다",
    "sails down a rainy street",
]
STYLES = ["", " in the style of a watercolour", ", 35 mm film, golden hour", ", 느린 카메라 이동"]
MODELS = [("preview", "preview", 0.0), ("fal", "veo31-fast", 0.15), ("fal", "kling-o3-standard", 0.112)]


def synthetic_entries(count: int, storage: str) -> list[object]:
    from sora_extend.library.entry import LibraryEntry, compact_request
    from sora_extend.request import ExtendRequest

    rng = random.Random(20)
    now = datetime.now(UTC)
    sample = ExtendRequest(prompt="x", segments=4, seconds=4).model_dump(mode="json")
    entries = []
    for n in range(count):
        provider, model, price = rng.choice(MODELS)
        prompt = f"{rng.choice(SUBJECTS)} {rng.choice(PLACES)}{rng.choice(STYLES)} #{n}"
        status = rng.choices(["completed", "failed", "running"], weights=[85, 12, 3])[0]
        segments, seconds = rng.choice([(3, 4), (4, 8), (6, 8), (8, 6)])
        created = now - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        done = status != "running"
        entries.append(
            LibraryEntry(
                job_id=f"job-{n:05d}-{rng.getrandbits(48):012x}",
                storage=storage,
                prompt=prompt,
                status=status,
                failed_step=f"segment-{rng.randrange(1, segments + 1):02d}" if status == "failed" else None,
                error="TerminalProviderError: content policy" if status == "failed" else None,
                created_at=created,
                updated_at=created,
                finished_at=created + timedelta(minutes=4) if done else None,
                length_s=float(segments * seconds) if status == "completed" else None,
                rendered_s=float(segments * seconds),
                segments=segments,
                seconds=seconds,
                provider=provider,
                model=model,
                continuity=rng.choice(["chain", "keyframes", "extend"]),
                cost_usd=round(price * segments * seconds, 2),
                wall_s=rng.uniform(60, 600) if done else None,
                poster="poster.jpg",
                video=status == "completed",
                owners=[rng.choice(["alice", "bob", "carol"])],
                request=compact_request({**sample, "prompt": prompt, "provider": provider, "model": model}),
            )
        )
    return entries


def lay_out(storage: str, entries: list[object]) -> None:
    """The index as workers and a reader leave it: entries, a snapshot, and the latest changes as notices."""
    from sora_extend import layout
    from sora_extend.library.index import LibraryIndex

    index = LibraryIndex(storage)
    records = {index.store.path(layout.library_entry(e.job_id)): e.model_dump_json().encode() for e in entries}  # type: ignore[attr-defined]
    index.store.fs.makedirs(index.store.path("jobs"), exist_ok=True)
    index.store.fs.pipe(records)
    settled = {e.job_id: e for e in entries[:-PENDING]}  # type: ignore[attr-defined]
    index.replace_all(settled, [])  # type: ignore[arg-type]
    for entry in entries[-PENDING:]:
        index.put(entry, entry.owners[0])  # type: ignore[arg-type,attr-defined]


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(storage: str, repeats: int) -> dict[str, float]:
    """Median server times in seconds: cold and warm, first page and search."""
    from starlette.testclient import TestClient

    from sora_extend.web.media_server import build_app

    search = f"/?q={quote(SEARCH)}"
    samples: dict[str, list[float]] = {"page cold": [], "page warm": [], "search cold": [], "search warm": []}
    for _ in range(repeats):
        for first, name in (("/", "page"), (search, "search")):
            with TestClient(build_app(storage)) as client:  # a server that just started

                def get(path: str, client: TestClient = client) -> None:
                    assert client.get(path).status_code == 200

                samples[f"{name} cold"].append(timed(lambda path=first: get(path)))
                samples["page warm"].append(timed(lambda: get("/")))
                samples["search warm"].append(timed(lambda: get(search)))
    return {name: statistics.median(values) for name, values in samples.items()}


def baseline(storage: str, local: bool) -> float:
    """Listing every entry and (locally) reading each one: what the snapshot saves."""
    from sora_extend.library.index import LibraryIndex

    store = LibraryIndex(storage).store

    def read_all() -> None:
        for name in store.listdir("jobs"):
            if local:
                store.read_bytes(f"jobs/{name}")

    return timed(read_all)


def font_times(characters: str) -> tuple[float, float]:
    from sora_extend.web.fonts import font_file

    return timed(lambda: font_file(characters)), timed(lambda: font_file(characters))


def start_moto() -> tuple[object, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="library-bench-"))
    os.environ.update({"SORA_EXTEND_WORK_DIR": str(work / "work"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    moto, endpoint = start_moto()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SORA_EXTEND_S3_ENDPOINT_URL": endpoint,
        }
    )
    import boto3

    from sora_extend.settings import reload_settings

    reload_settings()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="library-bench")
    rows = []
    for name, storage in (("local", f"file://{work / 'storage'}"), ("S3 (moto)", "s3://library-bench/jobs")):
        entries = synthetic_entries(args.jobs, storage)
        started = time.perf_counter()
        lay_out(storage, entries)
        print(f"{name}: {args.jobs} synthetic jobs laid out in {time.perf_counter() - started:.1f} s", flush=True)
        times = measure(storage, args.repeats)
        rows.append((name, times, baseline(storage, local=name == "local")))
    moto.stop()  # type: ignore[attr-defined]
    prompts = "".join(str(e.prompt) for e in synthetic_entries(50, "x"))  # type: ignore[attr-defined]
    font_cold, font_warm = font_times("".join(sorted({c for c in prompts if ord(c) > 0x7F and not c.isspace()})))

    ms = lambda seconds: f"{1000 * seconds:.0f} ms"  # noqa: E731
    print(f"\nLibrary page over {args.jobs} jobs: server time, median of {args.repeats} (search: '{SEARCH}')\n")
    print(
        "| storage | first page cold | first page warm | search cold | search warm | baseline: every entry | target |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, times, base in rows:
        target = "300 ms" if name == "local" else "1.5 s cold, 300 ms warm"
        kind = "read one by one" if name == "local" else "only listed"
        cells = [ms(times[key]) for key in ("page cold", "page warm", "search cold", "search warm")]
        ratio = f"{base / times['page cold']:.1f}x the cold page"
        print(f"| {name} | {' | '.join(cells)} | {ms(base)} ({kind}; {ratio}) | {target} |")
    print(f"\nThe page's font (its own request, cut to the page's characters): {ms(font_cold)}, then {ms(font_warm)}.")


if __name__ == "__main__":
    main()
