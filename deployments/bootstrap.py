"""Idempotent setup of a Prefect server for Sora Extend: work pool, per-provider concurrency limits, the
automations that resume a run whose worker was lost, optional Secret blocks from the environment, and a
shared result-storage block for S3 storage.

    sora-extend bootstrap [--pool sora-extend] [--limit fal=4 ...] [--crash-after 90] [--secrets-from-env]
                          [--results-block]

Run it against the server your workers use (PREFECT_API_URL); running it again changes nothing that
is already as asked, and reports what it did.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

from prefect.automations import Automation
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound
from prefect.filesystems import RemoteFileSystem
from prefect.workers.process import ProcessWorker

from sora_extend.errors import InputError
from sora_extend.request import normalise_storage_url
from sora_extend.settings import get_settings
from tasks.render import provider_limit_name

DEFAULT_LIMITS = {"preview": 2, "fal": 4, "openai": 2}
RESULTS_BLOCK = "sora-extend-results"
# environment variable -> Prefect Secret block it is saved to
SECRET_BLOCKS = {"FAL_KEY": "fal-key", "OPENAI_API_KEY": "openai-api-key"}

# Lost-worker recovery. prefect.yaml gives every deployment on the pool the tag HEARTBEAT_TAG and a flow-run
# heartbeat every HEARTBEAT_S (PREFECT_FLOWS_HEARTBEAT_FREQUENCY in its job variables); deployments whose
# flow bounds its own restarts (tasks/restarts.py) also carry RESUME_TAG.
HEARTBEAT_TAG = "sora-extend"
RESUME_TAG = "resume-on-crash"
HEARTBEAT_S = 30
DEFAULT_CRASH_AFTER_S = 90  # three missed heartbeats, as Prefect's zombie-run guide suggests
# A process worker that outlives its flow's process reports the crash twice: the second report, usually 3.5 s
# later, is refused while the run is still Crashed; rescheduling at once would let it crash the new attempt.
# On a loaded machine it can come later than this delay (24 s seen): that costs one more reschedule, not an
# extra restart in the count (tasks/restarts.py counts attempts, not reports).
RESCHEDULE_DELAY_S = 10
# State events are named after the state's name, and several names share a type: these are Prefect 3.9's.
SCHEDULED = {"Scheduled", "Late", "AwaitingRetry", "AwaitingConcurrencySlot"}
PENDING = {"Pending", "Submitting", "InfrastructurePending"}
RUNNING = {"Running", "Retrying"}
ASIDE = {"Paused", "Suspended", "Cancelling"}
ENDED = {"Completed", "Failed", "TimedOut", "Cancelled", "Crashed"}


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


def _events(names: set[str]) -> set[str]:
    return {f"prefect.flow-run.{name}" for name in names}


def recovery_automations(pool: str, crash_after_s: int = DEFAULT_CRASH_AFTER_S) -> list[Automation]:
    """Mark a run whose worker is gone Crashed (its heartbeats stopped, or it never left Pending), then put
    it back in the queue, where any worker of the pool resumes the same run from the job's storage."""
    runs = ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"})
    on_pool = ResourceSpecification({"prefect.resource.role": "work-pool", "prefect.resource.name": pool})

    def tagged(tag: str) -> ResourceSpecification:
        return ResourceSpecification({"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"})

    def after(events: set[str], expect: set[str], scope: ResourceSpecification, seconds: int) -> EventTrigger:
        # Proactive: fires when `seconds` pass after one of `events` without any of `expect`, per flow run.
        return EventTrigger(
            after=_events(events),
            expect=_events(expect),
            match=runs,
            match_related=scope,
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=seconds),
        )

    return [
        Automation(
            name=f"{pool}: crash runs whose heartbeats stopped",
            description=f"Prefect's zombie-run pattern: a run of a '{HEARTBEAT_TAG}' deployment sends a heartbeat "
            f"every {HEARTBEAT_S} s; none for {crash_after_s} s since it started or last beat means its worker or "
            "machine is gone.",
            # Heartbeats carry the run's tags but not its work pool; only runs with the tag beat this often.
            # The watch starts at Running too: a machine lost before the run's first heartbeat reached the
            # server (it is sent asynchronously) would otherwise leave the run Running for ever.
            # Anything but Running ends the watch: the run ended, or left this attempt behind.
            trigger=after(
                {"heartbeat"} | RUNNING,
                {"heartbeat"} | SCHEDULED | PENDING | ASIDE | ENDED,
                tagged(HEARTBEAT_TAG),
                crash_after_s,
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"No heartbeat for {crash_after_s} s: the worker running this flow run was lost.",
                )
            ],
        ),
        Automation(
            name=f"{pool}: crash runs stuck in pending",
            description="A worker took the run but was lost before the flow started.",
            trigger=after(PENDING, RUNNING | SCHEDULED | ASIDE | ENDED, on_pool, crash_after_s),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"Pending for {crash_after_s} s without starting: the worker that took it was lost.",
                )
            ],
        ),
        Automation(
            name=f"{pool}: reschedule crashed runs",
            description=f"A run of a '{RESUME_TAG}' deployment still Crashed after {RESCHEDULE_DELAY_S} s goes "
            "back to Scheduled: another worker resumes it; its flow stops after SORA_EXTEND_MAX_CRASH_RESTARTS.",
            # Any sign of life or of a person's action in the delay (a heartbeat, a retry, a cancel) wins.
            trigger=after(
                {"Crashed"},
                {"heartbeat"} | SCHEDULED | PENDING | RUNNING | ASIDE | (ENDED - {"Crashed"}),
                tagged(RESUME_TAG),
                RESCHEDULE_DELAY_S,
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.SCHEDULED,
                    name="AwaitingRetry",
                    message="Rescheduled after a crash: a worker resumes the same job from its storage.",
                )
            ],
        ),
    ]


def _same(existing: Automation, wanted: Automation) -> bool:
    fields = {"description", "enabled", "trigger", "actions", "actions_on_trigger", "actions_on_resolve"}
    # The server gives each trigger an id of its own; everything else must match.
    return existing.model_dump(include=fields, exclude={"trigger": {"id"}}) == wanted.model_dump(
        include=fields, exclude={"trigger": {"id"}}
    )


def check_crash_after(crash_after_s: int) -> None:
    if crash_after_s < HEARTBEAT_S + 10:
        raise InputError(
            "crash_after",
            f"{crash_after_s} s would crash healthy runs (heartbeats come every {HEARTBEAT_S} s)",
            f">= {HEARTBEAT_S + 10}",
        )


def ensure_automations(pool: str, crash_after_s: int = DEFAULT_CRASH_AFTER_S) -> list[str]:
    check_crash_after(crash_after_s)
    done = []
    for wanted in recovery_automations(pool, crash_after_s):
        try:
            existing = Automation.read(name=wanted.name)
        except ValueError:
            wanted.create()
            done.append(f"automation '{wanted.name}' created")
            continue
        if _same(existing, wanted):
            done.append(f"automation '{wanted.name}' exists")
        else:
            wanted.id = existing.id
            wanted.update()
            done.append(f"automation '{wanted.name}' updated")
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
    crash_after_s: int = DEFAULT_CRASH_AFTER_S,
) -> list[str]:
    check_crash_after(crash_after_s)  # before anything is created
    done = [ensure_work_pool(pool), *ensure_limits({**DEFAULT_LIMITS, **(limits or {})})]
    done += ensure_automations(pool, crash_after_s)
    if secrets_from_env:
        done += save_secrets_from_env()
    if results_block:
        done.append(save_results_block())
    return done
