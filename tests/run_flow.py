"""Run the extend-video flow in a separate process: `python -m tests.run_flow '<request JSON>'`.

Used by tests that need a real second worker (an empty disk, a killed process, concurrent runs).
Prints the result JSON on success; exits 1 with the error on failure.
"""

from __future__ import annotations

import sys

from flows.extend import extend_video
from sora_extend.request import ExtendRequest


def main() -> int:
    request = ExtendRequest.model_validate_json(sys.argv[1])
    try:
        result = extend_video(request=request)
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.model_dump_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
