"""ComfyUI workflows in API format (`{node_id: {"class_type", "inputs"}}`) with named placeholders.

A placeholder is an input whose whole value is `"{{name}}"`; the provider fills it in for each clip or
still. The shipped templates (`workflows/*.json`) carry them inline; a user's own graph, exported from
ComfyUI with "Export (API)", gets them from a small mapping file that names the input each placeholder
goes to (`prompt = "6.text"`), so both are filled the same way.

Which generation a workflow renders follows from its image placeholders: none = text-to-video (or
text-to-image), `start_image` = image-to-video, `start_image` + `end_image` = first+last frame,
`image` = an image edit.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sora_extend.errors import InputError
from sora_extend.hashing import sha256_bytes

PLACEHOLDER = re.compile(r"^\{\{(\w+)\}\}$")
PLACEHOLDERS: dict[str, str] = {
    "prompt": "the shot's prompt",
    "negative_prompt": "the model row's negative prompt",
    "seed": "the piece's seed",
    "width": "output width in pixels",
    "height": "output height in pixels",
    "frames": "clip length in frames (seconds x fps, rounded to the model's frame step, plus one)",
    "fps": "frames per second",
    "seconds": "clip length in seconds",
    "start_image": "the image the clip starts on (uploaded to the server that renders it)",
    "end_image": "the image the clip ends on (uploaded to the server that renders it)",
    "image": "the image a still edits (keyframe 0)",
}
# What each generation mode needs the workflow to take.
MODE_IMAGES: dict[str, frozenset[str]] = {
    "text_to_video": frozenset(),
    "image_to_video": frozenset({"start_image"}),
    "first_last_frame": frozenset({"start_image", "end_image"}),
    "text_to_image": frozenset(),
    "image_edit": frozenset({"image"}),
}
IMAGE_PLACEHOLDERS = frozenset({"start_image", "end_image", "image"})
TEMPLATES = "workflows"


class Workflow(BaseModel):
    """One API-format graph with its placeholders."""

    model_config = ConfigDict(frozen=True)

    name: str
    graph: dict[str, dict[str, Any]]

    @property
    def placeholders(self) -> set[str]:
        return {
            match[1]
            for node in self.graph.values()
            for value in node["inputs"].values()
            if isinstance(value, str) and (match := PLACEHOLDER.match(value))
        }

    @property
    def sha256(self) -> str:
        return sha256_bytes(json.dumps(self.graph, sort_keys=True).encode("utf-8"))

    @property
    def node_classes(self) -> dict[str, str]:
        return {node_id: str(node["class_type"]) for node_id, node in self.graph.items()}

    def renders(self, mode: str) -> bool:
        """Whether this workflow renders a generation of `mode` (its image placeholders are exactly the mode's)."""
        return MODE_IMAGES.get(mode) == frozenset(self.placeholders & IMAGE_PLACEHOLDERS)

    @property
    def modes(self) -> list[str]:
        return [mode for mode in MODE_IMAGES if self.renders(mode)]

    def fill(self, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """The graph to send, every placeholder replaced by its value."""
        graph = copy.deepcopy(self.graph)
        for node in graph.values():
            for name, value in node["inputs"].items():
                match = PLACEHOLDER.match(value) if isinstance(value, str) else None
                if match:
                    if match[1] not in values:
                        raise ValueError(f"workflow {self.name}: no value for placeholder {match[1]}")
                    node["inputs"][name] = values[match[1]]
        return graph


def _graph(data: Any, origin: str, field: str) -> dict[str, dict[str, Any]]:
    """An API-format graph, or an InputError saying what is wrong with it."""
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]  # the body of a /prompt call
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise InputError(field, f"{origin} is a ComfyUI UI workflow; export it with 'Export (API)' instead")
    if not isinstance(data, dict) or not data:
        raise InputError(field, f"{origin} is not an API-format workflow", '{"<node id>": {"class_type", "inputs"}}')
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise InputError(field, f"{origin}: node {node_id} has no class_type")
        inputs = node.setdefault("inputs", {})
        if not isinstance(inputs, dict):
            raise InputError(field, f"{origin}: node {node_id} ({node['class_type']}) has no inputs object")
        for name, value in inputs.items():
            if isinstance(value, list) and (len(value) != 2 or str(value[0]) not in data):
                raise InputError(field, f"{origin}: node {node_id} input {name} links to a node that does not exist")
    return data


def _read_json(path: Path, field: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise InputError(field, f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(field, f"{path} is not JSON: {exc}") from None


def shipped(name: str) -> Workflow:
    """A template shipped with the package, by name (`wan22_flf2v`)."""
    folder = resources.files(__package__).joinpath(TEMPLATES)
    source = folder.joinpath(f"{name}.json")
    if not source.is_file():
        names = sorted(item.name.removesuffix(".json") for item in folder.iterdir() if item.name.endswith(".json"))
        raise InputError("model", f"no shipped ComfyUI workflow named {name}", names)
    return Workflow(name=name, graph=_graph(json.loads(source.read_text("utf-8")), name, "model"))


def apply_mapping(graph: dict[str, dict[str, Any]], mapping: Mapping[str, Any], origin: str) -> None:
    """Put `{{name}}` at each `node.input` the mapping names (a string or a list of them per placeholder)."""
    for name, targets in mapping.items():
        if name not in PLACEHOLDERS:
            raise InputError("comfy_mapping", f"{origin}: unknown placeholder {name!r}", list(PLACEHOLDERS))
        for target in [targets] if isinstance(targets, str) else targets:
            node_id, _, input_name = str(target).partition(".")
            if node_id not in graph or not input_name:
                raise InputError(
                    "comfy_mapping",
                    f"{origin}: {name} = {target!r} names no node of the workflow",
                    "'<node id>.<input>'",
                )
            graph[node_id]["inputs"][input_name] = f"{{{{{name}}}}}"


@lru_cache(maxsize=16)
def _user_workflow(path: Path, mapping: Path | None, _stamps: tuple[int, ...]) -> Workflow:
    graph = _graph(_read_json(path, "comfy_workflow"), str(path), "comfy_workflow")
    if mapping is not None:
        try:
            table = tomllib.loads(mapping.read_text("utf-8"))
        except OSError as exc:
            raise InputError("comfy_mapping", f"cannot read {mapping}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError("comfy_mapping", f"{mapping} is not TOML: {exc}") from None
        apply_mapping(graph, table, str(mapping))
    return Workflow(name=path.name, graph=graph)


def user_workflow(path: str, mapping: str | None = None) -> Workflow:
    """A user's own graph (API-format JSON) with the placeholders its mapping file names (TOML)."""
    files = [Path(path).expanduser()] + ([Path(mapping).expanduser()] if mapping else [])
    stamps = tuple(file.stat().st_mtime_ns if file.exists() else 0 for file in files)
    return _user_workflow(files[0], files[1] if mapping else None, stamps)
