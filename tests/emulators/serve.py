"""Run the fal emulator in a process of its own: `python -m tests.emulators.serve --progress 5`.

Prints one line, the base URL, then serves until killed. It renders on a pool of processes, off the
client's interpreter, as a real provider renders on its own machines: what benchmarks need. `GET
/_emulator/stats` answers with the submissions, the most generations in progress at once and the
longest render.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

from tests.emulators.fal import FalEmulator
from tests.emulators.fal_schemas import with_test_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--progress", type=float, default=5.0, help="seconds a clip stays in progress")
    parser.add_argument("--still", type=float, default=0.75, help="seconds a still stays in progress")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        ProcessPoolExecutor() as pool,
        FalEmulator(
            schemas=with_test_model(),
            queue_seconds=0.05,
            progress_seconds=args.progress,
            progress_by_endpoint={"fal-ai/nano-banana-2": args.still},
            render_pool=pool,
        ) as fal,
    ):
        print(fal.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
