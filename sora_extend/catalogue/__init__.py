"""The model catalogue: one data table (models.toml) of every video and image model the pipeline can use.

`[models.<id>]` rows are video models, `[images.<id>]` rows image models (keyframe stills), `[music.<id>]`
rows music models (one score for the whole video), `[judges.<id>]` chat models with image input that judge
clips (`--judge vlm`). Users add or override rows with their own TOML file, merged over the shipped one field
by field.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sora_extend.catalogue.specs import (
    PROVIDERS,
    RESOLUTION_SIZES,
    DurationSpec,
    Endpoints,
    ImageModelSpec,
    JudgeModelSpec,
    ModelSpec,
    MusicModelSpec,
    PriceSpec,
    ProviderName,
)
from sora_extend.errors import InputError
from sora_extend.settings import get_settings

DEFAULT_MODEL: dict[ProviderName, str] = {
    "preview": "preview",
    "fal": "veo31-fast",
    "openai": "openai-compatible",
    "comfyui": "wan22",
}
# The chat model that judges clips with `--judge vlm` when the request names none.
DEFAULT_JUDGE_MODEL = "gpt-4.1-mini"
# The image model that renders keyframes when the request names none, by the video provider.
DEFAULT_KEYFRAME_MODEL: dict[ProviderName, str] = {
    "preview": "preview-still",
    "fal": "nano-banana-2",
    "openai": "nano-banana-2",
    "comfyui": "qwen-image",  # on the user's own ComfyUI servers: no key, nothing leaves their machines
}
# The music model that scores the video (soundtrack score / score-only) when the request names none.
DEFAULT_SOUNDTRACK_MODEL: dict[ProviderName, str] = {
    "preview": "preview-score",
    "fal": "sonilo-video",
    "openai": "sonilo-video",
}


def _live(rows: dict[str, Any], provider: str | None = None) -> list[str]:
    return [i for i, spec in rows.items() if spec.status == "live" and (provider is None or spec.provider == provider)]


def _get(rows: dict[str, Any], model_id: str, *, field: str, what: str, provider: str | None, hint: str) -> Any:
    """A live row, or an InputError naming `field` and the live alternatives."""
    spec = rows.get(model_id)
    if spec is None:
        raise InputError(field, f"unknown {what} '{model_id}'{hint}", _live(rows, provider) or _live(rows))
    if provider is not None and spec.provider != provider:
        raise InputError(
            field, f"'{model_id}' is a {spec.provider} model, not a {provider} model", _live(rows, provider)
        )
    if spec.status == "retired":
        raise InputError(field, spec.retired_message(), _live(rows, spec.provider))
    return spec


class Catalogue(BaseModel):
    models: dict[str, ModelSpec]
    images: dict[str, ImageModelSpec]
    music: dict[str, MusicModelSpec] = {}
    judges: dict[str, JudgeModelSpec] = {}

    def get(self, model_id: str, provider: str | None = None) -> ModelSpec:
        """The spec for a video model, refusing unknown, mismatched and retired models with a clear message."""
        hint = f" ('{model_id}' is an image model: use it as keyframe_model)" if model_id in self.images else ""
        return _get(self.models, model_id, field="model", what="model", provider=provider, hint=hint)  # type: ignore[no-any-return]

    def image(self, model_id: str) -> ImageModelSpec:
        """The spec for a keyframe image model (any provider)."""
        hint = f" ('{model_id}' is a video model, not an image model)" if model_id in self.models else ""
        return _get(self.images, model_id, field="keyframe_model", what="image model", provider=None, hint=hint)  # type: ignore[no-any-return]

    def judge(self, model_id: str) -> JudgeModelSpec:
        """The spec for a judge model (`--judge vlm`)."""
        return _get(self.judges, model_id, field="judge_model", what="judge model", provider=None, hint="")  # type: ignore[no-any-return]

    def music_model(self, model_id: str) -> MusicModelSpec:
        """The spec for a music model (any provider)."""
        kind = "video" if model_id in self.models else "image" if model_id in self.images else ""
        hint = f" ('{model_id}' is {'an' if kind == 'image' else 'a'} {kind} model, not a music model)" if kind else ""
        return _get(self.music, model_id, field="soundtrack_model", what="music model", provider=None, hint=hint)  # type: ignore[no-any-return]

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


def _read_tables(text: str, origin: str) -> dict[str, dict[str, dict[str, Any]]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError("catalogue_file", f"{origin} is not valid TOML: {exc}") from exc
    tables = {name: data.get(name, {}) for name in ("models", "images", "music", "judges")}
    if not all(isinstance(rows, dict) for rows in tables.values()):
        raise InputError(
            "catalogue_file", f"{origin} must hold [models.<id>], [images.<id>], [music.<id>] and [judges.<id>] tables"
        )
    return tables


def build_catalogue(override_file: Path | None = None) -> Catalogue:
    """The shipped catalogue, with the rows of `override_file` merged over it field by field."""
    shipped = resources.files(__package__).joinpath("models.toml").read_text("utf-8")
    tables = _read_tables(shipped, "models.toml")
    if override_file is not None:
        if not override_file.is_file():
            raise InputError("catalogue_file", f"{override_file} does not exist")
        for name, rows in _read_tables(override_file.read_text("utf-8"), str(override_file)).items():
            for model_id, row in rows.items():
                tables[name][model_id] = _merge(tables[name].get(model_id, {}), row)
    try:
        return Catalogue(
            models={model_id: ModelSpec(id=model_id, **row) for model_id, row in tables["models"].items()},
            images={model_id: ImageModelSpec(id=model_id, **row) for model_id, row in tables["images"].items()},
            judges={model_id: JudgeModelSpec(id=model_id, **row) for model_id, row in tables["judges"].items()},
            music={model_id: MusicModelSpec(id=model_id, **row) for model_id, row in tables["music"].items()},
        )
    except ValueError as exc:
        raise InputError("catalogue_file", f"invalid catalogue row: {exc}") from exc


@lru_cache(maxsize=4)
def _cached(override_file: Path | None) -> Catalogue:
    return build_catalogue(override_file)


def load_catalogue() -> Catalogue:
    """The catalogue for this process's settings (cached per override file)."""
    return _cached(get_settings().catalogue_file)


__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_KEYFRAME_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_SOUNDTRACK_MODEL",
    "PROVIDERS",
    "RESOLUTION_SIZES",
    "Catalogue",
    "DurationSpec",
    "Endpoints",
    "ImageModelSpec",
    "JudgeModelSpec",
    "ModelSpec",
    "MusicModelSpec",
    "PriceSpec",
    "ProviderName",
    "build_catalogue",
    "load_catalogue",
]
