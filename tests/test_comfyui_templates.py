"""The shipped ComfyUI workflows against an independent record: a real ComfyUI 0.8.0 server's node
schemas (tests/fixtures/comfyui/object_info_0.8.0.json, with its source and date). Every catalogue row,
mode, duration, resolution and aspect, filled by the provider's own code, must pass the validation a
server runs on /prompt, with every number on its node's widget grid (a latent size ComfyUI would round
away, or a frame count a Wan or LTX model cannot make, fails here), and every model file it loads must be
one the README tells people to download."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_extend.catalogue import ImageModelSpec, ModelSpec, build_catalogue
from sora_extend.comfyui.workflow import MODE_IMAGES, shipped
from sora_extend.providers.base import GenerationRequest
from sora_extend.providers.comfyui import ComfyUIProvider
from sora_extend.settings import get_settings
from tests.emulators.comfyui import README_MODELS
from tests.emulators.comfyui_schema import load_snapshot, served_info, validate_prompt

NODES = load_snapshot()
UPLOADED = {"start_image": "sora-extend/start.png", "end_image": "sora-extend/end.png", "image": "sora-extend/base.png"}
INFO = served_info(NODES, README_MODELS, list(UPLOADED.values()))
README = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
VIDEO_PLACEHOLDERS = {"prompt", "negative_prompt", "seed", "width", "height", "frames", "fps"}
STILL_PLACEHOLDERS = {
    "text_to_image": {"prompt", "negative_prompt", "seed", "width", "height"},
    "image_edit": {"prompt", "seed"},
}
Spec = ModelSpec | ImageModelSpec


def rows() -> list[Spec]:
    catalogue = build_catalogue()
    specs: list[Spec] = [*catalogue.models.values(), *catalogue.images.values()]
    return [spec for spec in specs if spec.provider == "comfyui"]


def cases() -> Iterator[tuple[Spec, str, str]]:
    for spec in rows():
        for mode, name in spec.endpoints.model_dump().items():
            if name:
                yield spec, mode, name


def requests(spec: Spec, mode: str) -> Iterator[GenerationRequest]:
    images = MODE_IMAGES[mode]
    common: dict[str, Any] = {"label": "piece", "index": 1, "content_key": "k", "model": spec.id, "prompt": "A cat"}
    common |= {"seed": 2**31 - 1, "first_frame_png": b"png" if "start_image" in images else None}
    common |= {"last_frame_png": b"png" if "end_image" in images else None}
    if isinstance(spec, ImageModelSpec):
        for aspect in spec.aspects:
            width, height = (1280, 720) if aspect == "16:9" else (720, 1280)
            edit = (b"png",) if "image" in images else ()
            yield GenerationRequest(
                **common, output="image", aspect=aspect, resolution="any", width=width, height=height, images=edit
            )
        return
    for seconds in spec.duration.values:
        for resolution in spec.resolutions:
            for aspect in spec.aspects:
                width, height = spec.size(aspect, resolution)
                yield GenerationRequest(
                    **common, seconds=seconds, aspect=aspect, resolution=resolution, width=width, height=height
                )


def off_grid(graph: dict[str, Any]) -> list[str]:
    """Numbers not on their widget's grid (min + k x step), as ComfyUI's front end and nodes expect."""
    found = []
    for node_id, node in graph.items():
        schema = NODES[node["class_type"]]["input"]
        specs = {**schema.get("required", {}), **schema.get("optional", {})}
        for name, value in node["inputs"].items():
            extra = specs[name][1] if len(specs.get(name, [])) > 1 else {}
            if (
                specs.get(name, [None])[0] == "INT"
                and "step" in extra
                and (value - extra.get("min", 0)) % extra["step"]
            ):
                found.append(f"node {node_id} ({node['class_type']}) {name} = {value} (step {extra['step']})")
    return found


@pytest.mark.parametrize(("spec", "mode", "name"), list(cases()), ids=lambda value: getattr(value, "id", value))
def test_every_filled_template_validates_against_the_servers_node_schemas(spec: Spec, mode: str, name: str) -> None:
    workflow = shipped(name)
    assert workflow.renders(mode)
    wanted = VIDEO_PLACEHOLDERS if isinstance(spec, ModelSpec) else STILL_PLACEHOLDERS[mode]
    assert wanted | MODE_IMAGES[mode] <= workflow.placeholders, name
    provider = ComfyUIProvider(spec, get_settings())
    checked = 0
    for request in requests(spec, mode):
        graph = workflow.fill(provider.values(request) | UPLOADED)
        error, node_errors, outputs = validate_prompt(INFO, graph, lambda file: file in UPLOADED.values())
        assert error is None, (request, error, node_errors)
        assert outputs and off_grid(graph) == [], (request.seconds, request.width, request.height, off_grid(graph))
        checked += 1
    assert checked


def test_wan_clip_lengths_are_the_models_own() -> None:
    wan = build_catalogue().models["wan22"]
    assert [wan.frames(seconds) for seconds in wan.duration.values] == [33, 49, 65, 81]  # 4k + 1 at 16 fps


def test_the_readme_lists_every_model_file_the_templates_load() -> None:
    missing = [name for files in README_MODELS.values() for name in files if name not in README]
    assert missing == []
