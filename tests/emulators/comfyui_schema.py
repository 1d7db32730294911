"""ComfyUI's node schemas (a snapshot of a real server's `GET /object_info`) and the validation a real
server runs on `POST /prompt` (ComfyUI's `execution.validate_prompt` / `validate_inputs`), answering with
the same error types and shapes. The emulator validates every prompt here: against what the server
publishes, never against the project's templates.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent.parent / "fixtures" / "comfyui" / "object_info_0.8.0.json"
# Which models/ folder fills which loader's file combo (ComfyUI's folder_paths); the snapshot's server had
# no model files, so these combos are empty there and filled here from the emulated server's files.
MODEL_FOLDERS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LTXAVTextEncoderLoader", "text_encoder"): "text_encoders",
    ("LTXAVTextEncoderLoader", "ckpt_name"): "checkpoints",
}
ImageCheck = Callable[[str], bool]


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    return dict(json.loads(path.read_text("utf-8"))["nodes"])


def served_info(nodes: Mapping[str, Any], models: Mapping[str, list[str]], inputs: list[str]) -> dict[str, Any]:
    """What this server's /object_info says: the snapshot, with its own model files and input images."""
    info = copy.deepcopy(dict(nodes))
    for (class_type, name), folder in MODEL_FOLDERS.items():
        if class_type in info:
            entry = info[class_type]["input"]["required"][name]
            files = sorted(models.get(folder, [])) + (["pixel_space"] if class_type == "VAELoader" else [])
            if entry[0] == "COMBO":
                entry[1]["options"] = files
            else:
                entry[0] = files
    if "LoadImage" in info:
        info["LoadImage"]["input"]["required"]["image"][0] = sorted(inputs)
    return info


def _error(kind: str, message: str, details: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _type_matches(received: str, expected: Any) -> bool:
    if not isinstance(expected, str):
        return False
    if "*" in (received, expected) or received == expected:
        return True
    return set(received.split(",")) <= set(expected.split(","))


def _combo(schema: list[Any]) -> list[Any] | None:
    if isinstance(schema[0], list):
        return schema[0]
    if schema[0] == "COMBO":
        return list((schema[1] if len(schema) > 1 else {}).get("options", []))
    return None


class Validator:
    """One prompt's validation, node by node from its output nodes."""

    def __init__(self, info: Mapping[str, Any], prompt: dict[str, Any], image_exists: ImageCheck) -> None:
        self.info, self.prompt, self.image_exists = info, prompt, image_exists
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}

    def node(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        class_type = node["class_type"]
        schema = self.info[class_type]["input"]
        inputs = node.get("inputs", {})
        errors: list[dict[str, Any]] = []
        valid = True
        for category in ("required", "optional"):
            for name, spec in schema.get(category, {}).items():
                if name not in inputs:
                    if category == "required":
                        errors.append(
                            _error("required_input_missing", "Required input is missing", name, input_name=name)
                        )
                    continue
                value = inputs[name]
                if isinstance(value, list):
                    problem, linked_ok = self._link(name, value, spec)
                    errors += problem
                    valid = valid and linked_ok
                else:
                    errors += self._value(class_type, name, value, spec, inputs)
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result

    def _link(self, name: str, value: list[Any], spec: list[Any]) -> tuple[list[dict[str, Any]], bool]:
        if len(value) != 2:
            return [
                _error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", name)
            ], True
        source = str(value[0])
        outputs = self.info[self.prompt[source]["class_type"]]["output"]
        if not isinstance(value[1], int) or not 0 <= value[1] < len(outputs):
            return [
                _error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", name)
            ], True
        received = outputs[value[1]]
        if not _type_matches(received, spec[0]):
            details = f"{name}, received_type({received}) mismatch input_type({spec[0]})"
            return [_error("return_type_mismatch", "Return type mismatch between linked nodes", details)], True
        return [], self.node(source)[0]

    def _value(
        self, class_type: str, name: str, value: Any, spec: list[Any], inputs: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kind, extra = spec[0], (spec[1] if len(spec) > 1 else {})
        converters: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
        if isinstance(kind, str) and kind in converters:
            try:
                value = converters[kind](value)
                inputs[name] = value
            except (TypeError, ValueError) as exc:
                details = f"{name}, {value}, {exc}"
                return [_error("invalid_input_type", f"Failed to convert an input value to a {kind} value", details)]
        if class_type == "LoadImage" and name == "image":  # LoadImage validates its file itself
            if not self.image_exists(str(value)):
                details = f"image - Invalid image file: {value}"
                return [
                    _error("custom_validation_failed", "Custom validation failed for node", details, input_name=name)
                ]
            return []
        if "min" in extra and value < extra["min"]:
            return [_error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name)]
        if "max" in extra and value > extra["max"]:
            return [_error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name)]
        options = _combo(spec)
        if options is not None and value not in options:
            listed = f"(list of length {len(options)})" if len(options) > 20 else str(options)
            return [_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}")]
        return []


def validate_prompt(
    info: Mapping[str, Any], prompt: Any, image_exists: ImageCheck
) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
    """(error, node_errors, output node ids): error None when the prompt may be queued."""
    if not isinstance(prompt, dict):
        return _error("invalid_prompt", "Cannot execute because the prompt is not an object.", ""), {}, []
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            message = "Cannot execute because a node is missing the class_type property."
            return _error("invalid_prompt", message, f"Node ID '#{node_id}'"), {}, []
        if node["class_type"] not in info:
            message = f"Cannot execute because node {node['class_type']} does not exist."
            return _error("invalid_prompt", message, f"Node ID '#{node_id}'"), {}, []
        if info[node["class_type"]].get("output_node"):
            outputs.append(node_id)
    if not outputs:
        return _error("prompt_no_outputs", "Prompt has no outputs", ""), {}, []
    validator = Validator(info, prompt, image_exists)
    node_errors: dict[str, Any] = {}
    good = []
    own_reasons: list[dict[str, Any]] = []  # the output nodes' own: what the top-level details list
    for output in outputs:
        try:
            ok, _ = validator.node(output)
        except (KeyError, TypeError) as exc:  # a link to a node that is not there
            return _error("invalid_prompt", "Cannot execute because of a broken link.", str(exc)), {}, []
        if ok:
            good.append(output)
            continue
        own_reasons += validator.validated[output][1]
        for node_id, (_, reasons) in validator.validated.items():
            if reasons:
                entry = node_errors.setdefault(
                    node_id, {"errors": reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]}
                )
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{reason['message']}: {reason['details']}" for reason in own_reasons)
        return _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), node_errors, []
    return None, node_errors, good
