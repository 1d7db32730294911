"""Planners turn an `ExtendRequest` into a `ShotPlan`."""

from __future__ import annotations

from sora_extend.planners.base import Planner
from sora_extend.planners.registry import get_planner

__all__ = ["Planner", "get_planner"]
