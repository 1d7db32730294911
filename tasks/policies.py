"""Retry and cache policies shared by the tasks.

Retries: only `TransientProviderError` (and plain network/timeout errors) are retried; a terminal
provider error, a budget stop or bad input fails at once, so nothing is paid for twice by a retry.
Caching: keys are content keys computed by the domain package (version prefix + hashes of what
determines the output), never run ids or task source, so a *new* run with the same inputs hits.
"""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from sora_extend.errors import TransientProviderError
from sora_extend.locks import LockTimeoutError

RETRYABLE = (TransientProviderError, LockTimeoutError, ConnectionError, TimeoutError)


def retry_only_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except RETRYABLE:
        return True
    except BaseException:
        return False
    return False


def key_from(function: Any) -> Any:
    """Adapt a domain key function of the task's parameters into a Prefect cache_key_fn."""

    def cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        return str(function(**parameters))

    return cache_key
