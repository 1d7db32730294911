"""What the benchmarks that drive whole runs share: the settings of a run on this machine against an
emulated provider."""

from __future__ import annotations

from pathlib import Path

from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE


def run_environment(work: Path, poll_interval_s: float) -> dict[str, str]:
    """Environment for runs whose job folders, scratch and locks live under `work`, with the test models."""
    return {
        "SORA_EXTEND_CATALOGUE_FILE": str(TEST_MODEL_CATALOGUE),
        "SORA_EXTEND_POLL_INTERVAL_S": str(poll_interval_s),
        "SORA_EXTEND_WORK_DIR": str(work / "work"),
        "SORA_EXTEND_LOCK_DIR": str(work / "locks"),
    }
