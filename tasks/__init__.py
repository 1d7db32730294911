"""Prefect tasks: each wraps one step of `sora_extend.pipeline` and adds caching, retries and logs.

The domain package logs with the standard library under "sora_extend"; those records also go to the
Prefect API while a flow or task run is active, so planning, submissions, polls and merges show in
the run's logs in the UI. Outside a run (plain library use) they stay local.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler


class _InsideRun(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _route_domain_logs() -> None:
    domain = logging.getLogger("sora_extend")
    domain.setLevel(logging.INFO)
    if not any(isinstance(handler, APILogHandler) for handler in domain.handlers):
        handler = APILogHandler()
        handler.addFilter(_InsideRun())
        domain.addHandler(handler)


_route_domain_logs()
