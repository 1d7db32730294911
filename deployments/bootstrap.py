"""Idempotent setup of a Prefect server for Sora Extend: work pool, per-provider concurrency limits,
optional Secret blocks from the environment, and a shared result-storage block for S3 storage.

    sora-extend bootstrap [--pool sora-extend] [--limit fal=4 ...] [--secrets-from-env] [--results-block]

Run it against the server your workers use (PREFECT_API_URL); running it again changes nothing that
is already as asked, and reports what it did.
"""

from __future__ import annotations

import json
import os

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.filesystems import RemoteFileSystem
from prefect.workers.process import ProcessWorker

from sora_extend.request import normalise_storage_url
from sora_extend.settings import get_settings
from tasks.render import provider_limit_name

DEFAULT_LIMITS = {"preview": 2, "fal": 4, "openai": 2}
RESULTS_BLOCK = "sora-extend-results"
# environment variable -> Prefect Secret block it is saved to
SECRET_BLOCKS = {"FAL_KEY": "fal-key", "OPENAI_API_KEY": "openai-api-key"}


def ensure_work_pool(name: str) -> str:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return f"work pool '{name}' exists"
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
            return f"work pool '{name}' created (type process)"


def ensure_limits(limits: dict[str, int]) -> list[str]:
    done = []
    with get_client(sync_client=True) as client:
        for provider, limit in sorted(limits.items()):
            name = provider_limit_name(provider)
            client.upsert_global_concurrency_limit_by_name(name, limit)
            done.append(f"concurrency limit '{name}' = {limit}")
    return done


def save_secrets_from_env() -> list[str]:
    done = []
    for env_var, block in SECRET_BLOCKS.items():
        value = os.environ.get(env_var)
        if value:
            Secret(value=value).save(block, overwrite=True)
            done.append(f"Secret block '{block}' saved from {env_var}")
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        payload = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        if os.environ.get("AWS_SESSION_TOKEN"):
            payload["aws_session_token"] = os.environ["AWS_SESSION_TOKEN"]
        Secret(value=json.dumps(payload)).save("aws-credentials", overwrite=True)
        done.append(
            "Secret block 'aws-credentials' saved from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(set SORA_EXTEND_AWS_CREDENTIALS_BLOCK=aws-credentials on workers to use it)"
        )
    return done


def save_results_block() -> str:
    """A RemoteFileSystem block beside the job folders, so cached task results are shared by workers.
    Only non-secret settings go into it: s3fs finds credentials itself on each worker."""
    settings = get_settings()
    storage = normalise_storage_url(settings.storage)
    if storage.startswith("file://"):
        return "results block skipped: storage is local (Prefect's local result storage is used)"
    options = {"client_kwargs": {"endpoint_url": settings.s3_endpoint_url}} if settings.s3_endpoint_url else {}
    RemoteFileSystem(basepath=f"{storage}/_prefect-results", settings=options).save(RESULTS_BLOCK, overwrite=True)
    return (
        f"RemoteFileSystem block '{RESULTS_BLOCK}' -> {storage}/_prefect-results; set "
        f"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK=remote-file-system/{RESULTS_BLOCK} on every worker"
    )


def bootstrap(
    pool: str = "sora-extend",
    limits: dict[str, int] | None = None,
    secrets_from_env: bool = False,
    results_block: bool = False,
) -> list[str]:
    done = [ensure_work_pool(pool), *ensure_limits({**DEFAULT_LIMITS, **(limits or {})})]
    if secrets_from_env:
        done += save_secrets_from_env()
    if results_block:
        done.append(save_results_block())
    return done
