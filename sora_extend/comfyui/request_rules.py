"""What a request that renders on ComfyUI must satisfy, checked offline when the request is validated:
the user's workflow and mapping files are readable, and every clip the run makes has a workflow (the
user's, where its image placeholders fit the generation, else the model row's shipped template).

The checks that need the servers (reachable, every node and model file installed) are in `preflight.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_extend.comfyui.workflow import IMAGE_PLACEHOLDERS, MODE_IMAGES, user_workflow
from sora_extend.errors import InputError

if TYPE_CHECKING:
    from sora_extend.catalogue import ModelSpec
    from sora_extend.request import ExtendRequest


def video_modes(request: ExtendRequest) -> list[str]:
    """The generation modes of the run's clips, in order of first use."""
    from sora_extend.pipeline.budget import segment_modes

    return list(dict.fromkeys(segment_modes(request)))


def check_comfy_options(request: ExtendRequest, spec: ModelSpec) -> None:
    if request.comfy_workflow is None:
        if request.comfy_mapping is not None:
            raise InputError("comfy_mapping", "only applies with comfy_workflow (--comfy-workflow FILE)")
        if spec.provider != "comfyui":
            return
        missing = [mode for mode in video_modes(request) if not spec.endpoint(mode)]
        if missing:
            raise InputError(
                "comfy_workflow",
                f"{spec.id} has no workflow of its own for {', '.join(missing)}: give one with --comfy-workflow",
                "an API-format workflow file",
            )
        return
    if request.provider != "comfyui":
        raise InputError("comfy_workflow", f"only applies to provider 'comfyui', not '{request.provider}'")
    workflow = user_workflow(request.comfy_workflow, request.comfy_mapping)
    images = sorted(workflow.placeholders & IMAGE_PLACEHOLDERS)
    if "image" in images:
        raise InputError(
            "comfy_workflow", f"{workflow.name} edits an image ({{{{image}}}}): use it for stills, not clips"
        )
    uncovered = [mode for mode in video_modes(request) if not workflow.renders(mode) and not spec.endpoint(mode)]
    if uncovered:
        fits = ", ".join(workflow.modes) or "nothing"
        needs = "; ".join(f"{mode} needs {', '.join(sorted(MODE_IMAGES[mode])) or 'no image'}" for mode in uncovered)
        raise InputError(
            "comfy_workflow",
            f"{workflow.name} (image placeholders: {', '.join(images) or 'none'}) renders {fits}, but continuity "
            f"'{request.mode}' also needs {', '.join(uncovered)} and {spec.id} has no template for it ({needs})",
            "keyframes: start_image + end_image; chain: a model row with templates, or no image placeholders",
        )
