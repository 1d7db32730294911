"""The first step of every resumable flow: count how often this run crashed and was put back in the queue
(its worker lost, its process killed), and stop it with a clear message past SORA_EXTEND_MAX_CRASH_RESTARTS.

The automations that `sora-extend bootstrap` creates mark a run whose heartbeats stopped Crashed and
reschedule it; they cannot count, so the run counts its own crashed attempts here, before anything is spent.
A job that kills whatever runs it (a poison job) then stops instead of looping through the pool forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, StateType
from prefect.runtime import flow_run

from sora_extend.settings import get_settings

# A run that reached one of these and was then started again by a person (Retry in the UI) gets a fresh
# budget: only the crashes since count.
ENDED = (StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED)


class TooManyRestartsError(RuntimeError):
    pass


def crashed_attempts(states: Iterable[State]) -> int:
    """Attempts that started (Running) and then crashed, since the run last ended. A Crashed state while
    the run waited to start again is not one more: a worker that outlives its flow's process reports the
    crash twice, the second time sometimes late; or a worker was lost before the flow started."""
    crashed, running = 0, False
    for state in sorted(states, key=lambda state: state.timestamp):
        if state.type in ENDED:
            crashed, running = 0, False
        elif state.type == StateType.RUNNING:
            running = True
        elif state.type == StateType.CRASHED and running:
            crashed, running = crashed + 1, False
    return crashed


@task(name="check-restarts", cache_policy=NO_CACHE)
def check_restarts() -> int:
    """How many times this run was resumed after a crash; raises once that is more than allowed."""
    run_id = flow_run.get_id()
    if run_id is None:  # called outside a flow run: nothing was restarted
        return 0
    with get_client(sync_client=True) as client:
        crashes = crashed_attempts(client.read_flow_run_states(UUID(run_id)))
    allowed = get_settings().max_crash_restarts
    if crashes > allowed:
        raise TooManyRestartsError(
            f"this run crashed {crashes} times (worker lost or process killed) and is not resumed again "
            f"(SORA_EXTEND_MAX_CRASH_RESTARTS={allowed}). Finished segments and paid requests are kept in the "
            "job's storage: read the crashed attempts' logs, fix the cause, then Retry the run."
        )
    if crashes:
        get_run_logger().warning(
            "resuming after crash %d of at most %d: finished segments come from storage, paid requests "
            "in flight are resumed by their request id",
            crashes,
            allowed,
        )
    return crashes
