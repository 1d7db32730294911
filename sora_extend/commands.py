"""How to ask for a request again: the `sora-extend run` command line and the Prefect API call that
reproduce an `ExtendRequest` (with chosen segments re-rendered). The CLI derives its options from the
same flag names, so a printed command is always one the CLI accepts."""

from __future__ import annotations

import json
import shlex
from typing import Any

from sora_extend.request import ExtendRequest

DEPLOYMENT = "extend-video/extend-video"
# Shorter or established spellings; every other field is --field-name.
FLAGS = {"budget_usd": "--budget", "references": "--reference", "use_takes": "--use-take"}
# List fields given once per item (--reference a.png --reference b.png) rather than as one list.
REPEATED = ("references", "use_takes")
# Choices of one run, not of the video: never carried over into a command for another run (a take picked by
# hand is kept in the job folder until its segment is re-rendered).
PER_RUN = ("rerender", "rerender_keyframes", "use_takes")
# Filled in by the CLI from whoever runs the command (SORA_EXTEND_OWNER or the system user).
FILLED_BY_CLI = ("owner",)


def flag(field: str) -> str:
    """The command-line option of a request field."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _default(field: str) -> Any:
    return ExtendRequest.model_fields[field].get_default(call_default_factory=True)


def _words(field: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [flag(field) if value else "--no-" + flag(field).removeprefix("--")]
    if isinstance(value, list) and field in REPEATED:
        return [word for item in value for word in (flag(field), str(item))]
    if isinstance(value, list):
        return [flag(field), *(str(item) for item in value)]
    return [flag(field), str(value)]


def run_command(
    request: ExtendRequest, storage_url: str, rerender: list[int] | None = None, use_takes: list[str] | None = None
) -> str:
    """`sora-extend run …` for this request's video in this storage, re-rendering the given segments (or
    putting the given stored takes in: SEGMENT=TAKE). Every field that differs from its default is spelled
    out, so the command finds the same job."""
    words = ["sora-extend", "run", request.prompt]
    for field in ExtendRequest.model_fields:
        if field in ("prompt", "storage", *PER_RUN, *FILLED_BY_CLI):
            continue
        value = getattr(request, field)
        if value is not None and value != _default(field):
            words += _words(field, value)
    words += ["--storage", storage_url]
    if rerender:
        words += _words("rerender", rerender)
    if use_takes:
        words += _words("use_takes", use_takes)
    return shlex.join(words)


def api_body(
    request: ExtendRequest,
    storage_url: str,
    rerender: list[int],
    idempotency_key: str,
    use_takes: list[str] | None = None,
) -> dict[str, Any]:
    """The body of `POST /api/deployments/{id}/create_flow_run` for the same run."""
    fields = request.model_dump(mode="json", exclude=set(PER_RUN), exclude_defaults=True)
    fields |= {"prompt": request.prompt, "storage": storage_url, "rerender": rerender}
    if use_takes:
        fields["use_takes"] = use_takes
    return {"parameters": {"request": fields}, "idempotency_key": idempotency_key}


def api_command(
    request: ExtendRequest,
    storage_url: str,
    rerender: list[int],
    idempotency_key: str,
    use_takes: list[str] | None = None,
) -> str:
    """Two curl calls against $PREFECT_API_URL: find the deployment by name, then start the run. The
    idempotency key makes a repeated click return the run already started instead of paying again."""
    flow_name, deployment = DEPLOYMENT.split("/")
    body = json.dumps(api_body(request, storage_url, rerender, idempotency_key, use_takes), ensure_ascii=False)
    return (
        f'ID=$(curl -s "$PREFECT_API_URL/deployments/name/{flow_name}/{deployment}" '
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])')\n"
        'curl -s -X POST "$PREFECT_API_URL/deployments/$ID/create_flow_run" '
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
