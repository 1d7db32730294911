"""The model catalogue: one data table (models.toml) describing every model the pipeline can use.

Code never branches on a model's name: the provider adapters read field names, duration wire types,
allowed values and prices from `ModelSpec`. Users add or override rows with their own TOML file.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sora_extend.errors import InputError

ProviderName = Literal["preview", "fal", "openai"]
PROVIDERS: tuple[ProviderName, ...] = ("preview", "fal", "openai")
DEFAULT_MODEL: dict[ProviderName, str] = {
    "preview": "preview",
    "fal": "veo31-fast",
    "openai": "openai-compatible",
}

# Pixel sizes for the 16:9 form of each resolution label; 9:16 swaps them. Even numbers for yuv420p.
RESOLUTION_SIZES: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "512p": (912, 512),
    "720p": (1280, 720),
    "768p": (1366, 768),
    "1024p": (1792, 1024),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoints(_Strict):
    text_to_video: str | None = None
    image_to_video: str | None = None
    first_last_frame: str | None = None
    extend: str | None = None


class DurationSpec(_Strict):
    field: str = "duration"
    wire: Literal["int", "string", "seconds_suffix"]
    values: tuple[int, ...]
    default: int

    @model_validator(mode="after")
    def _default_is_allowed(self) -> DurationSpec:
        if self.default not in self.values:
            raise ValueError(f"duration.default {self.default} is not in duration.values {list(self.values)}")
        return self

    def to_wire(self, seconds: int) -> int | str:
        if self.wire == "int":
            return seconds
        if self.wire == "string":
            return str(seconds)
        return f"{seconds}s"


class PriceSpec(_Strict):
    per_second: float = Field(ge=0)
    per_second_audio: float | None = Field(None, ge=0)
    by_resolution: dict[str, float] = Field(default_factory=dict)
    by_resolution_audio: dict[str, float] = Field(default_factory=dict)

    def rate(self, resolution: str, audio: bool) -> float:
        """USD per second of output for this resolution, with or without generated audio."""
        if audio and self.per_second_audio is not None:
            return self.by_resolution_audio.get(resolution, self.per_second_audio)
        return self.by_resolution.get(resolution, self.per_second)


class ModelSpec(_Strict):
    id: str
    provider: ProviderName
    family: str
    status: Literal["live", "retired"] = "live"
    notes: str = ""
    retired_note: str = ""
    alternatives: tuple[str, ...] = ()
    wire_model: str | None = None
    native_extend: bool = False
    endpoints: Endpoints
    image_field: str | None = None
    first_frame_field: str | None = None
    last_frame_field: str | None = None
    image_transport: Literal["data_uri", "upload"] = "data_uri"
    duration: DurationSpec
    extend_seconds: tuple[int, ...] = ()
    aspects: tuple[str, ...]
    aspect_field: str | None = None
    aspect_on_image_to_video: bool = True
    resolution_field: str | None = None
    resolutions: dict[str, str]
    default_resolution: str
    audio_field: str | None = None
    seed_field: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    fps: int = 24
    price: PriceSpec
    price_source: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        unknown = [label for label in self.resolutions if label not in RESOLUTION_SIZES]
        if unknown:
            raise ValueError(f"unknown resolution labels {unknown}; known: {list(RESOLUTION_SIZES)}")
        if self.default_resolution not in self.resolutions:
            raise ValueError(f"default_resolution {self.default_resolution!r} is not in resolutions")
        if self.endpoints.image_to_video and self.provider == "fal" and not self.image_field:
            raise ValueError("a fal model with an image_to_video endpoint needs image_field")
        return self

    @property
    def supports_audio(self) -> bool:
        return self.audio_field is not None

    def size(self, aspect: str, resolution: str) -> tuple[int, int]:
        width, height = RESOLUTION_SIZES[resolution]
        return (width, height) if aspect == "16:9" else (height, width)

    def price_per_second(self, resolution: str, audio: bool) -> float:
        return self.price.rate(resolution, audio and self.supports_audio)

    def cost(self, seconds: int, resolution: str, audio: bool) -> float:
        return round(seconds * self.price_per_second(resolution, audio), 4)

    def retired_message(self) -> str:
        alternatives = ", ".join(self.alternatives) or "see `sora-extend models`"
        return f"model '{self.id}' is retired: {self.retired_note} Live alternatives: {alternatives}"


class Catalogue(BaseModel):
    models: dict[str, ModelSpec]

    def get(self, model_id: str, provider: str | None = None) -> ModelSpec:
        """The spec for a model, refusing unknown, mismatched and retired models with a clear message."""
        spec = self.models.get(model_id)
        if spec is None:
            choices = self.ids(provider) if provider in PROVIDERS else self.ids()
            raise InputError("model", f"unknown model '{model_id}'", choices)
        if provider is not None and spec.provider != provider:
            raise InputError(
                "model",
                f"'{model_id}' is a {spec.provider} model, not a {provider} model",
                self.ids(provider),
            )
        if spec.status == "retired":
            raise InputError("model", spec.retired_message(), self.ids(spec.provider))
        return spec

    def ids(self, provider: str | None = None, *, include_retired: bool = False) -> list[str]:
        return [
            model_id
            for model_id, spec in self.models.items()
            if (provider is None or spec.provider == provider) and (include_retired or spec.status == "live")
        ]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_rows(text: str, origin: str) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError("catalogue_file", f"{origin} is not valid TOML: {exc}") from exc
    rows = data.get("models", {})
    if not isinstance(rows, dict):
        raise InputError("catalogue_file", f"{origin} must hold [models.<id>] tables")
    return rows


def build_catalogue(override_file: Path | None = None) -> Catalogue:
    """The shipped catalogue, with the rows of `override_file` merged over it field by field."""
    rows = _read_rows(resources.files(__package__).joinpath("models.toml").read_text("utf-8"), "models.toml")
    if override_file is not None:
        if not override_file.is_file():
            raise InputError("catalogue_file", f"{override_file} does not exist")
        for model_id, row in _read_rows(override_file.read_text("utf-8"), str(override_file)).items():
            rows[model_id] = _merge(rows.get(model_id, {}), row)
    try:
        return Catalogue(models={model_id: ModelSpec(id=model_id, **row) for model_id, row in rows.items()})
    except ValueError as exc:
        raise InputError("catalogue_file", f"invalid catalogue row: {exc}") from exc


@lru_cache(maxsize=4)
def _cached(override_file: Path | None) -> Catalogue:
    return build_catalogue(override_file)


def load_catalogue() -> Catalogue:
    """The catalogue for this process's settings (cached per override file)."""
    from sora_extend.settings import get_settings

    return _cached(get_settings().catalogue_file)
