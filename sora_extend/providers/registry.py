"""Which provider renders a catalogue row: the one place that knows every provider class."""

from __future__ import annotations

from typing import Any

from sora_extend.catalogue import ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.providers.base import Provider
from sora_extend.providers.comfyui import ComfyUIProvider
from sora_extend.providers.fal import FalProvider
from sora_extend.providers.openai_videos import OpenAIVideosProvider
from sora_extend.providers.preview import PreviewProvider
from sora_extend.settings import Settings

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    "preview": PreviewProvider,
    "fal": FalProvider,
    "openai": OpenAIVideosProvider,
    "comfyui": ComfyUIProvider,
}


def get_provider(
    spec: ModelSpec | ImageModelSpec | MusicModelSpec, settings: Settings, options: Any = None
) -> Provider:
    """The provider for a catalogue row; `options` (the run's request) carries run-wide choices."""
    return PROVIDER_CLASSES[spec.provider].for_run(spec, settings, options)
