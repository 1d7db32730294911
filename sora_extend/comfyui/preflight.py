"""Before anything is queued: every ComfyUI server answers, and has every node and model file of every
workflow the run will send (from its `GET /object_info`), or the run is refused naming the server, the
node and what is missing."""

from __future__ import annotations

from typing import Any

import httpx

from sora_extend.comfyui.farm import farm_servers
from sora_extend.comfyui.request_rules import video_modes
from sora_extend.comfyui.server import ENV, ComfyClient
from sora_extend.comfyui.workflow import PLACEHOLDER, Workflow, shipped, user_workflow
from sora_extend.errors import InputError, ProviderError
from sora_extend.request import ExtendRequest
from sora_extend.settings import Settings

CHECK_TIMEOUT_S = 10.0
MODEL_FOLDERS_HINT = "put the file into the server's ComfyUI/models/<folder> (see the README's ComfyUI section)"


def run_workflows(request: ExtendRequest) -> list[tuple[str, Workflow]]:
    """(request field it comes from, workflow) for every workflow the run may send to ComfyUI."""
    found: list[tuple[str, Workflow]] = []
    spec = request.spec
    if spec.provider == "comfyui":
        mine = user_workflow(request.comfy_workflow, request.comfy_mapping) if request.comfy_workflow else None
        for mode in video_modes(request):
            if mine is not None and mine.renders(mode):
                found.append(("comfy_workflow", mine))
            else:
                found.append(("model", shipped(str(spec.endpoint(mode)))))
    still = request.keyframe_spec
    if request.mode == "keyframes" and still is not None and still.provider == "comfyui":
        found.append(("keyframe_model", shipped(still.endpoints.text_to_image)))
        if still.endpoints.image_edit:
            found.append(("keyframe_model", shipped(still.endpoints.image_edit)))
    return list({(field, workflow.name): (field, workflow) for field, workflow in found}.values())


def combo_options(schema: list[Any]) -> list[Any] | None:
    """The choices of a combo input (old style: a list as the type; new style: COMBO with options)."""
    if schema and isinstance(schema[0], list):
        return schema[0]
    if schema and schema[0] == "COMBO":
        return list((schema[1] if len(schema) > 1 else {}).get("options", []))
    return None


def missing_on(info: dict[str, Any], workflow: Workflow, field: str, label: str) -> None:
    """Refuse a workflow whose nodes, or the files its loaders name, the server lacks."""
    for node_id, node in workflow.graph.items():
        class_type = node["class_type"]
        if class_type not in info:
            raise InputError(
                field,
                f"node {class_type} (node {node_id} of {workflow.name}) is not installed on ComfyUI server {label}",
                "install its custom node pack there, or use a workflow of core nodes",
            )
        inputs = info[class_type].get("input", {})
        schemas = {**inputs.get("required", {}), **inputs.get("optional", {})}
        for name, value in node["inputs"].items():
            if name not in schemas or isinstance(value, list) or (isinstance(value, str) and PLACEHOLDER.match(value)):
                continue
            options = combo_options(schemas[name])
            if options is not None and value not in options:
                raise InputError(
                    field,
                    f"{workflow.name} node {node_id} ({class_type}) wants {name} '{value}', which ComfyUI server "
                    f"{label} does not have",
                    ", ".join(map(str, options[:8])) if options else MODEL_FOLDERS_HINT,
                )


def check_servers(request: ExtendRequest, settings: Settings) -> None:
    """Every server answers and can run every workflow of the run; raises InputError otherwise."""
    workflows = run_workflows(request)
    if not workflows:
        return
    for server in farm_servers(settings):
        client = ComfyClient(server, CHECK_TIMEOUT_S)
        try:
            info = client.object_info()
        except (httpx.HTTPError, ProviderError, ValueError) as exc:
            why = exc.reason if isinstance(exc, ProviderError) else f"does not answer ({type(exc).__name__})"
            raise InputError(
                ENV,
                f"ComfyUI server {server.label}: {why.removeprefix(f'ComfyUI server {server.label} ')}",
                "running ComfyUI servers (python main.py --listen ...)",
            ) from None
        finally:
            client.close()
        for field, workflow in workflows:
            missing_on(info, workflow, field, server.label)
