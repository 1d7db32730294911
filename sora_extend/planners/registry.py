"""Which planner a request names: the one place that knows every planner class."""

from __future__ import annotations

from sora_extend.planners.base import Planner
from sora_extend.planners.template import TemplatePlanner
from sora_extend.settings import Settings, get_settings


def get_planner(name: str, settings: Settings | None = None) -> Planner:
    if name == "template":
        return TemplatePlanner()
    if name == "openai":
        from sora_extend.planners.openai_planner import OpenAIPlanner  # imports the openai SDK: only when used

        return OpenAIPlanner(settings or get_settings())
    raise ValueError(f"unknown planner {name!r}")
