#!/usr/bin/env bash
# Start a process worker for the Sora Extend pool; run it on every machine that renders.
# Each flow run is a subprocess of this worker and inherits its environment (keys, storage, S3 endpoint).
#   PREFECT_API_URL=http://prefect-host:4200/api [PREFECT_API_AUTH_STRING=user:pass] deployments/worker.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
export SORA_EXTEND_CONCURRENCY_LIMITS="${SORA_EXTEND_CONCURRENCY_LIMITS:-true}"
# prefect.yaml sets it per deployment too: flow runs beat often enough for the lost-worker detector.
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-30}"
exec .venv/bin/prefect worker start --pool "${SORA_EXTEND_POOL:-sora-extend}" --limit "${SORA_EXTEND_WORKER_LIMIT:-4}"
