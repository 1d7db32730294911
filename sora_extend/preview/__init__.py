"""The offline preview renderer: real H.264 + AAC clips with no model, no key and no network."""

from sora_extend.preview.renderer import PreviewSpec, render_preview

__all__ = ["PreviewSpec", "render_preview"]
