"""Which provider renders a catalogue row: the one place that knows every provider class.

Each provider's module (and its SDK: openai, fal_client, ...) is imported the first time a run uses it,
so a run pays the import time of its own provider only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from sora_extend.catalogue import ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.providers.base import Provider
from sora_extend.settings import Settings

PROVIDER_CLASSES: dict[str, str] = {
    "preview": "sora_extend.providers.preview:PreviewProvider",
    "fal": "sora_extend.providers.fal:FalProvider",
    "openai": "sora_extend.providers.openai_videos:OpenAIVideosProvider",
    "comfyui": "sora_extend.providers.comfyui:ComfyUIProvider",
}


def provider_class(name: str) -> type[Provider]:
    module, _, cls = PROVIDER_CLASSES[name].partition(":")
    found: type[Provider] = getattr(import_module(module), cls)
    return found


def get_provider(
    spec: ModelSpec | ImageModelSpec | MusicModelSpec, settings: Settings, options: Any = None
) -> Provider:
    """The provider for a catalogue row; `options` (the run's request) carries run-wide choices."""
    return provider_class(spec.provider).for_run(spec, settings, options)
