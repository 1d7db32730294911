"""Refresh the snapshot of OpenAI's published chat completions request schema
(tests/fixtures/openai/create_chat_completion_request.json), which the OpenAI emulator validates every
chat request against:

    .venv/bin/python -m tests.emulators.refresh_openai_schema [PATH_OR_URL_OF_openapi.yaml [SOURCE_LABEL]]

The source is OpenAI's own OpenAPI document (github.com/openai/openai-openapi, openapi.yaml). It keeps the
`CreateChatCompletionRequest` schema and every component it refers to, directly or not, as `$defs` (JSON
Schema 2020-12, which OpenAPI 3.1 schemas are), and records where and when it was read.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

SOURCE = "https://raw.githubusercontent.com/openai/openai-openapi/master/openapi.yaml"
ROOT = "CreateChatCompletionRequest"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "openai" / "create_chat_completion_request.json"
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].removeprefix(PREFIX)} if str(node.get("$ref", "")).startswith(PREFIX) else set()
    return found.union(*(_refs(value) for value in node.values()))


def _rewrite(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: (value.replace(PREFIX, "#/$defs/") if key == "$ref" and isinstance(value, str) else _rewrite(value))
        for key, value in node.items()
        if not key.startswith("x-")  # OpenAI's documentation extensions, not schema
    }


def snapshot(document: dict[str, Any], source: str) -> dict[str, Any]:
    components = document["components"]["schemas"]
    wanted, todo = set(), [ROOT]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += sorted(_refs(components[name]))
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"#/$defs/{ROOT}"}
    schema["$defs"] = {name: _rewrite(components[name]) for name in sorted(wanted)}
    return {
        "source": source,
        "api_version": document["info"]["version"],
        "retrieved": datetime.now(UTC).date().isoformat(),
        "schema": schema,
    }


def main(argv: list[str]) -> int:
    where = argv[0] if argv else SOURCE
    text = httpx.get(where, timeout=60).text if where.startswith("http") else Path(where).read_text("utf-8")
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    source = argv[1] if len(argv) > 1 else where  # a local copy: say where it came from
    FIXTURE.write_text(json.dumps(snapshot(yaml.safe_load(text), source), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
