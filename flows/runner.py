"""The executor's runner for Prefect: every step is a task run submitted to the flow's task runner."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.futures import PrefectFuture, as_completed

from sora_extend.pipeline.job import JobRef
from sora_extend.pipeline.steps import WorkStep
from tasks.handoff import extract_handoff_task
from tasks.merge import merge_segments_task
from tasks.render import render_keyframe_task, render_score_task, render_segment_task, with_retry_settings


class PrefectRunner:
    """Starts each step as its task (`render-keyframe-00`, `render-segment-03`, ...) with `.submit`."""

    def __init__(self, job: JobRef) -> None:
        self.job = job
        self.tasks: dict[str, Task[..., Any]] = {
            "keyframe": with_retry_settings(render_keyframe_task),
            "segment": with_retry_settings(render_segment_task),
            "score": with_retry_settings(render_score_task),
            "handoff": extract_handoff_task,
            "merge": merge_segments_task,
        }

    def start(self, step: WorkStep, inputs: dict[str, object]) -> PrefectFuture[Any]:
        return self.tasks[step.kind].submit(self.job, step, inputs)

    def wait_any(self, handles: list[PrefectFuture[Any]]) -> PrefectFuture[Any]:
        return next(as_completed(handles))

    def result(self, handle: PrefectFuture[Any]) -> object:
        return handle.result()
