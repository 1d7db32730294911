"""Refresh the fal schema snapshots (tests/fixtures/fal_schemas) from fal's own OpenAPI documents:

    .venv/bin/python -m tests.emulators.refresh_fal_schemas [ENDPOINT_ID ...]

For each endpoint (default: every snapshot already there) it downloads
https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<id> (fal's per-endpoint queue OpenAPI
document), takes the request body of the endpoint's POST and the body of its result GET, inlines
their `$ref`s, and rewrites the snapshot's `input`, `output`, `sources` and `retrieved`. `pricing` and
`notes` (read off the model pages by hand) are kept and flagged for a re-read when the schema changed.
Then run `make test`: tests/test_fal_truth.py says which catalogue rows no longer match fal.

It needs network access to fal.ai, which this project's CI does not have; the conversion is tested
offline against a document of the same shape (tests/test_fal_truth.py).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.emulators.fal_schemas import FIXTURES, fixture_name

OPENAPI_URL = "https://fal.ai/api/openapi/queue/openapi.json"


def _inline(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """`node` with every local `$ref` replaced by what it points at (recursion cut at a cycle)."""
    if isinstance(node, list):
        return [_inline(item, components, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return {"type": "object"}
        return _inline(components[name], components, (*seen, name))
    return {key: _inline(value, components, seen) for key, value in node.items()}


def _json_body(content: dict[str, Any]) -> dict[str, Any]:
    return dict(content["application/json"]["schema"])


def fixture_from_openapi(endpoint: str, document: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """A snapshot for `endpoint` from its OpenAPI document, keeping the hand-read parts of `previous`."""
    components = document.get("components", {}).get("schemas", {})
    paths = document["paths"]
    submit = next(ops["post"] for path, ops in paths.items() if path.rstrip("/").endswith(endpoint) and "post" in ops)
    result = next(ops["get"] for path, ops in paths.items() if path.endswith("/requests/{request_id}") and "get" in ops)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    fixture = {
        "endpoint_id": endpoint,
        "sources": [f"{OPENAPI_URL}?endpoint_id={endpoint}"],
        "retrieved": datetime.now(UTC).date().isoformat(),
        "input": schema | _inline(_json_body(submit["requestBody"]["content"]), components),
        "output": schema | _inline(_json_body(result["responses"]["200"]["content"]), components),
        "pricing": (previous or {}).get("pricing"),
        "notes": (previous or {}).get("notes", ""),
    }
    if previous and (previous.get("input"), previous.get("output")) != (fixture["input"], fixture["output"]):
        fixture["notes"] = "SCHEMA CHANGED on refresh: re-read the model page's price and notes. " + fixture["notes"]
    return fixture


def refresh(endpoint: str, client: httpx.Client) -> bool:
    """Rewrite one snapshot; True when fal's schema differs from the one on disk."""
    path = FIXTURES / fixture_name(endpoint)
    previous = json.loads(path.read_text("utf-8")) if path.exists() else None
    response = client.get(OPENAPI_URL, params={"endpoint_id": endpoint})
    response.raise_for_status()
    fixture = fixture_from_openapi(endpoint, response.json(), previous)
    path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return fixture["notes"].startswith("SCHEMA CHANGED")


def main(endpoints: list[str]) -> int:
    if not endpoints:
        endpoints = [json.loads(path.read_text("utf-8"))["endpoint_id"] for path in sorted(FIXTURES.glob("*.json"))]
    with httpx.Client(timeout=30.0, follow_redirects=True) as client:
        for endpoint in endpoints:
            changed = refresh(endpoint, client)
            print(f"{'CHANGED ' if changed else 'same    '} {endpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
