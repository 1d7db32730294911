"""fal's published endpoint schemas (checked-in snapshots, see tests/fixtures/fal_schemas/README.md), and
what the emulator reads from a request the way fal's runners would: never from the project's catalogue.

`FalSchemas.validate` answers like fal's request validation (a 422 `detail` list, pydantic style); the
`Reading` of a valid payload says what to render: the requested duration, size, start/end images, the
source video to extend, and whether the endpoint makes a video or images.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fal_schemas"
# The test model: Wan 2.7's published schemas narrowed to 1-4 s at 360p, and its catalogue row.
TEST_MODEL_CATALOGUE = Path(__file__).resolve().parent.parent / "catalogue_tiny.toml"

# Field names fal's video models use for the clip's first and last image, best first.
START_IMAGE_FIELDS = ("first_frame_url", "start_image_url", "first_image_url", "image_url")
END_IMAGE_FIELDS = ("last_frame_url", "end_image_url")
SOURCE_VIDEO_FIELD = "video_url"
AUDIO_FIELDS = ("generate_audio", "generate_audio_switch")
# Video resolution labels fal uses -> the 16:9 frame; 9:16 swaps them.
VIDEO_SIZES = {
    "360p": (640, 360),
    "480p": (854, 480),
    "512p": (912, 512),
    "720p": (1280, 720),
    "768p": (1366, 768),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
    "4k": (3840, 2160),
}
# Image resolution labels -> pixels on the long side.
IMAGE_LONG_SIDE = {"0.5k": 512, "1k": 1024, "2k": 2048, "4k": 4096}
# What a text-to-video endpoint without a resolution field renders (from fal's model pages).
DEFAULT_RESOLUTION_BY_PREFIX = {
    "fal-ai/kling-video/": "1080p",  # "1080p" on the Kling v3 / O3 pages
    "fal-ai/minimax/hailuo-2.3/": "768p",  # "768p" standard tier
    "fal-ai/minimax/hailuo-02/": "768p",  # text-to-video is documented as 768p only
}


def fixture_name(endpoint: str) -> str:
    return endpoint.replace("/", "__") + ".json"


@dataclass(frozen=True)
class EndpointSchema:
    endpoint: str
    input: dict[str, Any]
    output: dict[str, Any]
    notes: str = ""
    extension: dict[str, Any] | None = None  # extend endpoints: what comes back, longest input (with sources)

    @property
    def makes_images(self) -> bool:
        return "images" in self.output.get("properties", {})

    @property
    def makes_audio(self) -> bool:
        return "audio" in self.output.get("properties", {})

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.input.get("properties", {}))

    def default(self, name: str) -> Any:
        return self.fields.get(name, {}).get("default")


def _detail(error: Any) -> dict[str, Any]:
    """One jsonschema error as a fal/pydantic 422 detail item."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        return {
            "loc": ["body", *path, missing.group(1) if missing else "?"],
            "msg": "field required",
            "type": "missing",
        }
    kinds = {
        "enum": "literal_error",
        "type": "type_error",
        "minimum": "greater_than_equal",
        "maximum": "less_than_equal",
        "maxItems": "too_long",
    }
    return {"loc": ["body", *path], "msg": error.message, "type": kinds.get(error.validator, "value_error")}


class FalSchemas:
    """The endpoints the emulator serves: one snapshot per endpoint id."""

    def __init__(self, schemas: Iterable[EndpointSchema]) -> None:
        self.by_endpoint = {schema.endpoint: schema for schema in schemas}
        self._validators = {
            endpoint: Draft202012Validator(schema.input) for endpoint, schema in self.by_endpoint.items()
        }

    @classmethod
    def load(cls, folder: Path = FIXTURES, extra: Iterable[EndpointSchema] = ()) -> FalSchemas:
        found = []
        for path in sorted(folder.glob("*.json")):
            data = json.loads(path.read_text("utf-8"))
            found.append(
                EndpointSchema(
                    data["endpoint_id"], data["input"], data["output"], data.get("notes", ""), data.get("extension")
                )
            )
        return cls([*found, *extra])

    def __contains__(self, endpoint: str) -> bool:
        return endpoint in self.by_endpoint

    def __getitem__(self, endpoint: str) -> EndpointSchema:
        return self.by_endpoint[endpoint]

    def validate(self, endpoint: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """fal's 422 `detail` items for this payload (empty when valid)."""
        errors = sorted(self._validators[endpoint].iter_errors(payload), key=lambda e: list(e.absolute_path))
        return [_detail(error) for error in errors]


def narrowed(schema: EndpointSchema, endpoint: str, **enums: list[Any]) -> EndpointSchema:
    """A copy of a published schema under another id with some enums narrowed: how the tests get a cheap,
    quick model that still has a real model's fields and types."""
    data = copy.deepcopy(schema.input)
    for name, values in enums.items():
        data["properties"][name]["enum"] = values
        data["properties"][name]["default"] = values[0]
        data["properties"][name].pop("minimum", None)
        data["properties"][name].pop("maximum", None)
    return EndpointSchema(
        endpoint, data, schema.output, f"test model narrowed from {schema.endpoint}", schema.extension
    )


def seconds_of(value: Any) -> int:
    """fal durations come as 8, "8" or "8s"."""
    if isinstance(value, int):
        return value
    text = str(value).removesuffix("s")
    return int(text) if text.isdigit() else 5  # "auto": the model picks; 5 s is what the pages show


@dataclass(frozen=True)
class Reading:
    """What a valid request asks the model to make."""

    makes_images: bool
    seconds: int
    fps: int
    resolution: str
    aspect: str | None  # None = from the start image (or 16:9)
    audio: bool
    seed: int
    start_field: str | None
    end_field: str | None
    image_list_field: str | None
    source_field: str | None


def read(schema: EndpointSchema, payload: dict[str, Any]) -> Reading:
    fields = schema.fields

    def value(name: str) -> Any:
        return payload.get(name, schema.default(name))

    resolution = value("resolution")
    if resolution is None:
        resolution = next(
            (label for prefix, label in DEFAULT_RESOLUTION_BY_PREFIX.items() if schema.endpoint.startswith(prefix)),
            "1k" if schema.makes_images else "720p",
        )
    aspect = value("aspect_ratio")
    seed = payload.get("seed")
    return Reading(
        makes_images=schema.makes_images,
        seconds=seconds_of(value("duration")) if "duration" in fields else 5,
        fps=int(value("fps") or 24),
        resolution=str(resolution).lower(),
        aspect=None if aspect in (None, "auto") else str(aspect),
        audio=any(bool(value(name)) for name in AUDIO_FIELDS if name in fields),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0,
        start_field=next((name for name in START_IMAGE_FIELDS if payload.get(name) is not None), None),
        end_field=next((name for name in END_IMAGE_FIELDS if payload.get(name) is not None), None),
        image_list_field="image_urls" if payload.get("image_urls") else None,
        source_field=SOURCE_VIDEO_FIELD if payload.get(SOURCE_VIDEO_FIELD) is not None else None,
    )


# Where fal's music endpoints take the length of the music, and in what unit (seconds per unit).
MUSIC_LENGTH_FIELDS = {"duration": 1.0, "seconds_total": 1.0, "music_length_ms": 0.001}


def music_seconds(schema: EndpointSchema, payload: dict[str, Any], video_seconds: float | None) -> float:
    """How long a music request asks its answer to be: its length field (or that field's default), else the
    video it scores, else 30 s (what fal's pages say a model picks on its own)."""
    for name, unit in MUSIC_LENGTH_FIELDS.items():
        if name in schema.fields:
            value = payload.get(name, schema.default(name))
            if value is not None:
                return float(value) * unit
    return video_seconds if video_seconds is not None else 30.0


def frame_size(reading: Reading, image_shape: tuple[int, ...] | None) -> tuple[int, int]:
    """The output size: the resolution label in the requested aspect, or the start image's orientation."""
    portrait = reading.aspect in ("9:16", "2:3", "3:4", "4:5") or (
        reading.aspect is None and image_shape is not None and image_shape[0] > image_shape[1]
    )
    if reading.makes_images:
        long_side = IMAGE_LONG_SIDE.get(reading.resolution, 1024)
        short = round(long_side * 9 / 16) // 2 * 2
        return (short, long_side) if portrait else (long_side, short)
    width, height = VIDEO_SIZES.get(reading.resolution, (1280, 720))
    return (height, width) if portrait else (width, height)


def with_test_model(published: FalSchemas | None = None) -> FalSchemas:
    """fal's published schemas plus the test models, cheap and quick to render, with real models' fields:
    tiny-fal is Wan 2.7 at 360p and 1-4 s; tiny-ltx is LTX-2.3 at 360p and 2 s, with LTX's extend endpoint;
    tiny-veo is Veo 3.1 Fast at 360p and 4 s, with sound."""
    published = published or FalSchemas.load()
    wan, ltx = "fal-ai/wan/v2.7", "fal-ai/ltx-2.3"
    tiny = [
        narrowed(published[f"{wan}/{mode}"], f"fal-ai/tiny-video/{mode}", duration=[1, 2, 3, 4], resolution=["360p"])
        for mode in ("text-to-video", "image-to-video")
    ]
    tiny.append(
        narrowed(published[f"{ltx}/text-to-video"], "fal-ai/tiny-ltx/text-to-video", duration=[2], resolution=["360p"])
    )
    tiny.append(narrowed(published[f"{ltx}/extend-video"], "fal-ai/tiny-ltx/extend-video"))
    veo = "fal-ai/veo3.1/fast"
    for suffix in ("", "/image-to-video", "/first-last-frame-to-video"):
        tiny.append(narrowed(published[veo + suffix], "fal-ai/tiny-veo" + suffix, duration=["4s"], resolution=["360p"]))
    return FalSchemas([*published.by_endpoint.values(), *tiny])
