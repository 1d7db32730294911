"""The retry rule and the one cache policy every step task shares.

Retries: only `TransientProviderError` (and plain network/timeout errors) are retried; a terminal
provider error, a budget stop or bad input fails at once, so nothing is paid for twice by a retry.
Caching: a step's key is the domain's content key for it (`sora_extend.pipeline.keys.step_key`: a
version prefix + hashes of what determines the output, never run ids or task source), so a *new* run
with the same inputs hits, plus the job folder's generation, so a purged folder is not a stale hit.
"""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.cache_policies import CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from sora_extend.errors import TransientProviderError
from sora_extend.locks import LockTimeoutError
from sora_extend.pipeline.job import JobRef
from sora_extend.pipeline.keys import step_key

RETRYABLE = (TransientProviderError, LockTimeoutError, ConnectionError, TimeoutError)


def retry_only_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except RETRYABLE:
        return True
    except BaseException:
        return False
    return False


class ContentKey(CachePolicy):
    """For tasks called as `task(job: JobRef, step: Step, inputs: dict[str, record])`."""

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        job: JobRef = inputs["job"]
        return f"{step_key(job.request, job.job_id, inputs['step'], inputs.get('inputs') or {})}-{job.generation}"


CONTENT_KEY = ContentKey()
