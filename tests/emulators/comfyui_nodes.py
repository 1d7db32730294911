"""How the emulated ComfyUI runs a validated prompt: each node class does what its real counterpart does
to the data that flows through the graph, with the models replaced by the offline preview renderer.

Loaders hand on tokens; text encoders carry their text; the image-to-video nodes put their width,
height, length and start/end images into the latent; samplers add the seed; VAEDecode of a video latent
renders a clip with the preview renderer (starting on the start image, ending on the end image), of an
image latent a still (an edit of the encoded image when there is one). Image nodes (LoadImage,
RepeatImageBatch, ImageBatch) work on real pixels, and SaveVideo / SaveImage write real files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sora_extend.media.encode import Mp4Writer
from sora_extend.media.images import decode_png, encode_png, fit_to_size
from sora_extend.preview.still import render_still
from tests.emulators._common import ClipJob, render_clip


@dataclass(frozen=True)
class Conditioning:
    text: str
    images: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    length: int = 1  # frames; 1 for an image
    video: bool = False
    start: Any = field(default=None, compare=False)
    end: Any = field(default=None, compare=False)
    base: Any = field(default=None, compare=False)  # an image edit: the image it starts from
    text: str = ""
    seed: int = 0


@dataclass(frozen=True)
class Decoded:
    """Pixels a VAE will produce from a latent (rendered when they are saved)."""

    latent: Latent


@dataclass(frozen=True)
class Video:
    images: Any  # list of frames, or Decoded
    fps: float


class ExecutionError(Exception):
    """A node failed; carries what ComfyUI's execution_error message reports."""

    def __init__(self, node_id: str, node_type: str, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.node_id, self.node_type, self.exception_type = node_id, node_type, exception_type


def _frames(images: Any) -> list[np.ndarray]:
    if isinstance(images, Decoded):
        raise TypeError("decoded video frames are only rendered by SaveVideo / SaveImage")
    return list(images)


def _with_text(latent: Latent, positive: Conditioning, seed: int) -> Latent:
    base = latent.base if latent.base is not None else (positive.images[0] if positive.images else None)
    return replace(latent, text=positive.text, seed=int(seed) % (2**31), base=base)


def _i2v(inputs: dict[str, Any]) -> tuple[Conditioning, Conditioning, Latent]:
    start = inputs.get("start_image")
    end = inputs.get("end_image")
    latent = Latent(
        width=int(inputs["width"]),
        height=int(inputs["height"]),
        length=int(inputs["length"]),
        video=True,
        start=_frames(start)[0] if start is not None else None,
        end=_frames(end)[0] if end is not None else None,
    )
    return inputs["positive"], inputs["negative"], latent


def _image_batch(inputs: dict[str, Any]) -> tuple[list[np.ndarray]]:
    first, second = _frames(inputs["image1"]), _frames(inputs["image2"])
    height, width = first[0].shape[:2]
    return ([*first, *(fit_to_size(frame, width, height) for frame in second)],)


NodeFunction = Callable[[dict[str, Any]], tuple[Any, ...]]


def _token(name: str, outputs: int = 1) -> NodeFunction:
    return lambda inputs: tuple(f"{name}:{index}" for index in range(outputs))


NODES: dict[str, NodeFunction] = {
    "UNETLoader": _token("model"),
    "CLIPLoader": _token("clip"),
    "VAELoader": _token("vae"),
    "CheckpointLoaderSimple": _token("checkpoint", 3),
    "LTXAVTextEncoderLoader": _token("clip"),
    "ModelSamplingSD3": lambda inputs: (inputs["model"],),
    "ModelSamplingAuraFlow": lambda inputs: (inputs["model"],),
    "KSamplerSelect": _token("sampler"),
    "LTXVScheduler": _token("sigmas"),
    "CLIPTextEncode": lambda inputs: (Conditioning(str(inputs["text"])),),
    "TextEncodeQwenImageEditPlus": lambda inputs: (
        Conditioning(
            str(inputs["prompt"]),
            tuple(_frames(inputs[name])[0] for name in ("image1", "image2", "image3") if inputs.get(name) is not None),
        ),
    ),
    "LTXVConditioning": lambda inputs: (inputs["positive"], inputs["negative"]),
    "LoadImage": lambda inputs: ([inputs["image"]], None),
    "LTXVPreprocess": lambda inputs: (inputs["image"],),
    "RepeatImageBatch": lambda inputs: (_frames(inputs["image"]) * int(inputs["amount"]),),
    "ImageBatch": _image_batch,
    "EmptyHunyuanLatentVideo": lambda inputs: (
        Latent(int(inputs["width"]), int(inputs["height"]), int(inputs["length"]), video=True),
    ),
    "EmptyLTXVLatentVideo": lambda inputs: (
        Latent(int(inputs["width"]), int(inputs["height"]), int(inputs["length"]), video=True),
    ),
    "EmptySD3LatentImage": lambda inputs: (Latent(int(inputs["width"]), int(inputs["height"])),),
    "EmptyLatentImage": lambda inputs: (Latent(int(inputs["width"]), int(inputs["height"])),),
    "WanImageToVideo": _i2v,
    "WanFirstLastFrameToVideo": _i2v,
    "LTXVImgToVideoInplace": lambda inputs: (replace(inputs["latent"], start=_frames(inputs["image"])[0]),),
    "VAEEncode": lambda inputs: (
        Latent(
            _frames(inputs["pixels"])[0].shape[1],
            _frames(inputs["pixels"])[0].shape[0],
            base=_frames(inputs["pixels"])[0],
        ),
    ),
    "KSampler": lambda inputs: (_with_text(inputs["latent_image"], inputs["positive"], inputs["seed"]),),
    "KSamplerAdvanced": lambda inputs: (_with_text(inputs["latent_image"], inputs["positive"], inputs["noise_seed"]),),
    "SamplerCustom": lambda inputs: (_with_text(inputs["latent_image"], inputs["positive"], inputs["noise_seed"]),) * 2,
    "VAEDecode": lambda inputs: (Decoded(inputs["samples"]),),
    "CreateVideo": lambda inputs: (Video(inputs["images"], float(inputs["fps"])),),
}


class Execution:
    """Runs one prompt's graph from its output nodes; writes output files under `out_dir`."""

    def __init__(self, prompt: dict[str, Any], load_image: Callable[[str], np.ndarray], out_dir: Path) -> None:
        self.prompt, self.load_image, self.out_dir = prompt, load_image, out_dir
        self.values: dict[str, tuple[Any, ...]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        self.fail_class: str | None = None
        self.fail_message = ""

    def run(self, output_ids: list[str]) -> dict[str, dict[str, Any]]:
        for node_id in output_ids:
            self._node(node_id)
        return self.outputs

    def _node(self, node_id: str) -> tuple[Any, ...]:
        if node_id in self.values:
            return self.values[node_id]
        node = self.prompt[node_id]
        class_type = node["class_type"]
        inputs = {
            name: self._node(str(value[0]))[value[1]] if isinstance(value, list) else value
            for name, value in node["inputs"].items()
        }
        if class_type == self.fail_class:
            raise ExecutionError(node_id, class_type, "RuntimeError", self.fail_message)
        try:
            if class_type == "LoadImage":
                inputs["image"] = self.load_image(str(inputs["image"]))
            if class_type == "SaveVideo":
                result: tuple[Any, ...] = ()
                self.outputs[node_id] = self._save_video(inputs["video"], str(inputs["filename_prefix"]))
            elif class_type in ("SaveImage", "PreviewImage"):
                result = ()
                self.outputs[node_id] = self._save_images(inputs["images"], str(inputs.get("filename_prefix", "tmp")))
            elif class_type in NODES:
                result = NODES[class_type](inputs)
            else:  # a node in the schema this emulator cannot imitate: a test would see it fail
                raise NotImplementedError(f"the emulator cannot run {class_type}")
        except ExecutionError:
            raise
        except Exception as exc:
            raise ExecutionError(node_id, class_type, type(exc).__name__, str(exc)) from exc
        self.values[node_id] = result
        self.executed.append(node_id)
        return result

    def _target(self, prefix: str, suffix: str) -> tuple[Path, str, str]:
        """Where SaveVideo / SaveImage put a file: `<subfolder>/<name>_<counter>_.<ext>` under output/."""
        subfolder, _, name = prefix.rpartition("/")
        folder = self.out_dir / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        counter = len(list(folder.glob(f"{name}_*"))) + 1
        filename = f"{name}_{counter:05d}_{suffix}"
        return folder / filename, filename, subfolder

    def _save_video(self, video: Video, prefix: str) -> dict[str, Any]:
        path, filename, subfolder = self._target(prefix, ".mp4")
        fps = max(1, round(video.fps))
        if isinstance(video.images, Decoded):
            latent = video.images.latent
            seconds = (latent.length - 1) / fps if latent.start is not None else latent.length / fps
            clip = ClipJob(latent.text, seconds, latent.width, latent.height, fps, latent.seed, False, latent.start)
            render_clip(clip, path, latent.end)
        else:
            frames = _frames(video.images)
            height, width = frames[0].shape[:2]
            with Mp4Writer(path, width=width, height=height, fps=fps, audio=False) as writer:
                for frame in frames:
                    writer.write_frame(frame)
        return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}

    def _save_images(self, images: Any, prefix: str) -> dict[str, Any]:
        if isinstance(images, Decoded):
            latent = images.latent
            frames = [render_still(latent.width, latent.height, latent.seed, latent.base)]
        else:
            frames = _frames(images)
        saved = []
        for frame in frames:
            path, filename, subfolder = self._target(prefix, ".png")
            path.write_bytes(encode_png(frame))
            saved.append({"filename": filename, "subfolder": subfolder, "type": "output"})
        return {"images": saved}


def read_image(path: Path) -> np.ndarray:
    return decode_png(path.read_bytes())
