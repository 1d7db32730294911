"""Batches: many prompts, one video each, sharing a set of options.

Prompts come inline or from a file (local path or any storage URL): .txt (one prompt per line, '#'
comments), .csv (a `prompt` column; other columns are per-video options), or .jsonl (one object per
line with `prompt` and optional options). Every request is validated before any video starts, and
all bad lines are reported at once.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import fsspec
from pydantic import BaseModel, Field, ValidationError, model_validator

from sora_extend.errors import InputError
from sora_extend.request import ExtendRequest, explain
from sora_extend.settings import Settings, get_settings
from sora_extend.storage.store import storage_options


class BatchRequest(BaseModel):
    """A batch of videos: the prompts, the options they share, and how to start them."""

    prompts: list[str] = Field(
        default_factory=list,
        title="Prompts",
        description="One video per prompt.",
        json_schema_extra={"position": 0},
    )
    prompts_file: str | None = Field(
        None,
        title="Prompts file",
        description=".txt (one per line), .csv (a 'prompt' column) or .jsonl ({'prompt': ...}); a path or "
        "storage URL. Extra CSV columns / JSON keys override the shared options for that video.",
        json_schema_extra={"position": 1},
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        title="Shared options",
        description='ExtendRequest fields for every video, e.g. {"segments": 4, "seconds": 4, "provider": "preview"}.',
        json_schema_extra={"position": 2},
    )
    deployment: str = Field(
        "extend-video/extend-video",
        title="Deployment",
        description="The deployment each video runs through, so runs spread over every worker of its pool.",
        json_schema_extra={"position": 3},
    )
    max_in_flight: int = Field(
        4,
        ge=1,
        le=200,
        title="Videos at once",
        description="How many child runs may be in progress at once.",
        json_schema_extra={"position": 4},
    )

    @model_validator(mode="after")
    def _has_prompts(self) -> BatchRequest:
        if not self.prompts and not self.prompts_file:
            raise InputError("prompts", "give at least one prompt, or a prompts_file")
        if "prompt" in self.options:
            raise InputError("options", "'prompt' belongs in prompts or prompts_file, not in the shared options")
        return self


def parse_prompts(text: str, name: str) -> list[dict[str, Any]]:
    lowered = name.lower()
    if lowered.endswith(".jsonl"):
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError("prompts_file", f"line {number} is not JSON ({exc.msg})") from None
                items.append(item if isinstance(item, dict) else {"prompt": item})
        return items
    if lowered.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise InputError("prompts_file", "the CSV needs a 'prompt' column", reader.fieldnames or [])
        return [{key: value for key, value in row.items() if value not in (None, "")} for row in reader]
    return [
        {"prompt": line.strip()} for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def read_prompts_file(url: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    try:
        with fsspec.open(url, "rt", encoding="utf-8", **storage_options(url, settings or get_settings())) as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InputError("prompts_file", f"{url} does not exist") from None
    return parse_prompts(text, url)


def build_requests(batch: BatchRequest, settings: Settings | None = None) -> list[ExtendRequest]:
    """Every video's validated request, or one InputError listing every bad entry."""
    items: list[tuple[str, dict[str, Any]]] = [(f"prompts[{i}]", {"prompt": p}) for i, p in enumerate(batch.prompts)]
    if batch.prompts_file:
        items += [
            (f"prompts_file line {i}", item)
            for i, item in enumerate(read_prompts_file(batch.prompts_file, settings), start=1)
        ]
    requests, problems = [], []
    for where, item in items:
        try:
            requests.append(ExtendRequest(**{**batch.options, **item}))
        except (ValidationError, InputError) as exc:
            problems += [f"{where}: {line}" for line in explain(exc)]
    if problems:
        raise InputError("prompts", "; ".join(problems))
    if not requests:
        raise InputError("prompts", "the batch holds no prompt")
    return requests
