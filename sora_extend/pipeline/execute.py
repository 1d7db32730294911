"""Run a graph of steps: each step starts as soon as the steps it needs are done, with at most
`max_parallel` paid steps in flight. The loop is the same for every runner; a runner only says how a
step is started and how to wait for one (Prefect tasks in the flow, threads here).

When a step fails, nothing new starts, the steps already running finish (they may be paid for: their
results must reach storage), and the outcome names the first failure. Every finished record is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sora_extend.events import emit
from sora_extend.pipeline.steps import RunGraph, WorkStep

HandleT = TypeVar("HandleT", bound=Hashable)


class Runner(Protocol[HandleT]):
    def start(self, step: WorkStep, inputs: dict[str, object]) -> HandleT:
        """Start the step in the background; `inputs` are the records of the steps it needs."""

    def wait_any(self, handles: list[HandleT]) -> HandleT:
        """Block until one of the handles has finished; return it."""

    def result(self, handle: HandleT) -> object:
        """The finished step's record, or raise its error."""


@dataclass
class Outcome:
    records: dict[str, object] = field(default_factory=dict)
    failed: WorkStep | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


StepCallback = Callable[[WorkStep, object | None, BaseException | None], None]


def execute(
    graph: RunGraph,
    runner: Runner[HandleT],
    *,
    max_parallel: int | None = None,
    done: Mapping[str, object] | None = None,
    on_step: StepCallback | None = None,
) -> Outcome:
    """Run every step of `graph` not already in `done`; return all records and the first failure."""
    outcome = Outcome(records=dict(done or {}))
    waiting = [step for step in graph.steps if step.id not in outcome.records]
    running: dict[HandleT, WorkStep] = {}
    while waiting or running:
        if outcome.error is None:
            paid_running = sum(step.paid for step in running.values())
            for step in list(waiting):
                if not all(need in outcome.records for need in step.needs):
                    continue
                if step.paid and max_parallel is not None and paid_running >= max_parallel:
                    continue
                waiting.remove(step)
                emit(step.id, "started")
                running[runner.start(step, {need: outcome.records[need] for need in step.needs})] = step
                paid_running += step.paid
        if not running:
            break  # a step failed: the rest cannot start
        handle = runner.wait_any(list(running))
        step = running.pop(handle)
        try:
            record = runner.result(handle)
        except BaseException as exc:  # kept for the caller to raise once the running steps have finished
            emit(step.id, "failed", detail=str(exc)[:300])
            if outcome.error is None:
                outcome.failed, outcome.error = step, exc
            if on_step:
                on_step(step, None, exc)
            continue
        outcome.records[step.id] = record
        # The merge's record links to the video: a person can open it before the review is written.
        emit(step.id, "done", cost_usd=getattr(record, "cost_usd", None), detail=getattr(record, "link", ""))
        if on_step:
            on_step(step, record, None)
    return outcome


StepFunction = Callable[[WorkStep, dict[str, object]], object]


class ThreadRunner:
    """Runs steps on a thread pool: the runner for scripts, tests and benchmarks (no Prefect)."""

    def __init__(self, run_step: StepFunction, threads: int = 8) -> None:
        self._run_step = run_step
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sora-extend-step")

    def start(self, step: WorkStep, inputs: dict[str, object]) -> Future[object]:
        return self._pool.submit(self._run_step, step, inputs)

    def wait_any(self, handles: list[Future[object]]) -> Future[object]:
        finished, _ = wait(handles, return_when=FIRST_COMPLETED)
        return next(iter(finished))

    def result(self, handle: Future[object]) -> object:
        return handle.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ThreadRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
