"""What one catalogue row says: a video, image or music model's wire fields, allowed values and prices.

Code never branches on a model's name: providers read field names, duration wire types, allowed values
and prices from these specs, and capabilities (an end-image field, an extend endpoint, reference images)
are the presence of the fields that carry them.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProviderName = Literal["preview", "fal", "openai", "comfyui"]
PROVIDERS: tuple[ProviderName, ...] = ("preview", "fal", "openai", "comfyui")

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
    first_last_frame: str | None = Field(
        None, description="A separate first+last-frame endpoint; empty = image_to_video takes the end image too."
    )


class DurationSpec(_Strict):
    field: str = "duration"
    wire: Literal["int", "string", "seconds_suffix"]
    values: tuple[int, ...]
    default: int
    max_by_resolution: dict[str, int] = Field(
        default_factory=dict, description="Longest clip at a resolution, where the model allows less there."
    )

    def max_seconds(self, resolution: str) -> int:
        return self.max_by_resolution.get(resolution, max(self.values))

    def allowed(self, resolution: str) -> tuple[int, ...]:
        return tuple(value for value in self.values if value <= self.max_seconds(resolution))

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


GenericField = Literal["aspect", "resolution", "seed", "audio", "duration"]


class ExtendSpec(_Strict):
    """The model continues its own video: one call adds `duration` seconds to the clip it is sent."""

    endpoint: str
    video_field: str | None = Field("video_url", description="Where the clip goes (empty: by provider id).")
    duration: DurationSpec = Field(..., description="How long each extension is, and how that is sent.")
    returns: Literal["whole", "new"] = Field(
        ..., description="What comes back: the sent clip with the new part after it, or the new part only."
    )
    max_input_s: float | None = Field(None, description="Longest clip it takes; a longer one is sent as its tail.")
    max_total_s: float | None = Field(None, description="Longest video the extensions may reach.")
    resolutions: tuple[str, ...] | None = Field(None, description="Resolution labels it extends (empty: all).")


class ReferenceSpec(_Strict):
    """Reference-to-video: images of the subject given to the generation (identity from a character sheet)."""

    endpoint: str
    images_field: str = "image_urls"
    max_images: int = Field(..., ge=1)
    max_bytes: int | None = Field(None, description="Largest image file it takes.")
    formats: tuple[str, ...] = ("png", "jpeg", "webp")
    seconds: tuple[int, ...] | None = Field(None, description="Clip lengths it makes (empty: the model's).")


class PriceSpec(_Strict):
    per_second: float = Field(0.0, ge=0)
    per_second_audio: float | None = Field(None, ge=0)
    by_resolution: dict[str, float] = Field(default_factory=dict)
    by_resolution_audio: dict[str, float] = Field(default_factory=dict)
    per_image: float | None = Field(None, ge=0, description="Image models: USD per image.")
    per_audio: float | None = Field(None, ge=0, description="Music models billed per track: USD per track.")
    per_clip: dict[str, float] = Field(
        default_factory=dict, description="Models billed per clip: USD for a clip of that many seconds."
    )

    def rate(self, resolution: str, audio: bool) -> float:
        """USD per second of output (per image for image models) at this resolution, with or without audio."""
        if self.per_image is not None:
            return self.by_resolution.get(resolution, self.per_image)
        if audio and self.per_second_audio is not None:
            return self.by_resolution_audio.get(resolution, self.per_second_audio)
        return self.by_resolution.get(resolution, self.per_second)

    def clip(self, seconds: int, resolution: str, audio: bool) -> float:
        """USD for one clip of `seconds`."""
        flat = self.per_clip.get(str(seconds))
        return round(flat if flat is not None else seconds * self.rate(resolution, audio), 4)

    @property
    def is_free(self) -> bool:
        prices = [self.per_second, self.per_second_audio or 0.0, self.per_image or 0.0, *self.per_clip.values()]
        prices.append(self.per_audio or 0.0)
        return not any(prices) and not any(self.by_resolution.values()) and not any(self.by_resolution_audio.values())


class _Row(_Strict):
    """What every catalogue row has, video or image."""

    id: str
    provider: ProviderName
    family: str
    status: Literal["live", "retired"] = "live"
    notes: str = ""
    retired_note: str = ""
    alternatives: tuple[str, ...] = ()
    image_transport: Literal["data_uri", "upload"] = "data_uri"
    aspects: tuple[str, ...]
    aspect_field: str | None = None
    resolution_field: str | None = None
    seed_field: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    price: PriceSpec
    price_source: str = ""

    @property
    def is_paid(self) -> bool:
        return not self.price.is_free

    def retired_message(self) -> str:
        alternatives = ", ".join(self.alternatives) or "see `sora-extend models`"
        return f"model '{self.id}' is retired: {self.retired_note} Live alternatives: {alternatives}"


class ModelSpec(_Row):
    """A video model."""

    wire_model: str | None = None
    endpoints: Endpoints
    image_field: str | None = None
    first_frame_field: str | None = Field(None, description="Start image on the first_last_frame endpoint.")
    last_frame_field: str | None = Field(None, description="End image: the model can render between keyframes.")
    duration: DurationSpec
    extend: ExtendSpec | None = None
    reference: ReferenceSpec | None = None
    omit: dict[str, tuple[GenericField, ...]] = Field(
        default_factory=dict,
        description="Per generation mode, generic fields its endpoint does not take (e.g. Kling's image-to-video "
        "takes its aspect from the image).",
    )
    resolutions: dict[str, str]
    default_resolution: str
    audio_field: str | None = None
    fps: int = 24
    price_text_to_video: PriceSpec | None = Field(None, description="Where text-to-video is priced differently.")
    max_parallel: int | None = Field(
        None, ge=1, description="Generations one run starts at once by default (empty = as many as it needs)."
    )
    frame_step: int | None = Field(
        None,
        ge=1,
        description="ComfyUI: a clip of s seconds is s x fps frames rounded to a multiple of frame_step, plus "
        "the start frame (Wan 2.2: 4, so 5 s at 16 fps = 81 frames; LTX-2: 8).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        unknown = [label for label in self.resolutions if label not in RESOLUTION_SIZES]
        if unknown:
            raise ValueError(f"unknown resolution labels {unknown}; known: {list(RESOLUTION_SIZES)}")
        if self.default_resolution not in self.resolutions:
            raise ValueError(f"default_resolution {self.default_resolution!r} is not in resolutions")
        if self.endpoints.image_to_video and self.provider == "fal" and not self.image_field:
            raise ValueError("a fal model with an image_to_video endpoint needs image_field")
        if self.endpoints.first_last_frame and not (self.first_frame_field and self.last_frame_field):
            raise ValueError("a first_last_frame endpoint needs first_frame_field and last_frame_field")
        return self

    @property
    def supports_audio(self) -> bool:
        return self.audio_field is not None

    def endpoint(self, mode: str) -> str | None:
        """The endpoint a generation mode goes to (first+last frame falls back to image-to-video, whose
        end-image field carries the last frame)."""
        if mode == "extend":
            return self.extend.endpoint if self.extend else None
        if mode == "reference_to_video":
            return self.reference.endpoint if self.reference else None
        endpoint = getattr(self.endpoints, mode, None)
        return endpoint or (self.endpoints.image_to_video if mode == "first_last_frame" else None)

    @property
    def takes_end_image(self) -> bool:
        """Whether the model can render a clip that ends on a given image (keyframes mode)."""
        return self.last_frame_field is not None

    @property
    def native_extend(self) -> bool:
        return self.extend is not None

    def sends(self, mode: str, field: GenericField) -> bool:
        """Whether a generation in `mode` sends this generic field."""
        return field not in self.omit.get(mode, ())

    def frames(self, seconds: int) -> int:
        """How many frames a clip of `seconds` is in a ComfyUI workflow (its `length`)."""
        step = self.frame_step or 1
        return max(1, round(seconds * self.fps / step)) * step + 1

    def size(self, aspect: str, resolution: str) -> tuple[int, int]:
        width, height = RESOLUTION_SIZES[resolution]
        return (width, height) if aspect == "16:9" else (height, width)

    def price_for(self, mode: str = "image_to_video") -> PriceSpec:
        return self.price_text_to_video if mode == "text_to_video" and self.price_text_to_video else self.price

    def price_per_second(self, resolution: str, audio: bool, mode: str = "image_to_video") -> float:
        return self.price_for(mode).rate(resolution, audio and self.supports_audio)

    def cost(self, seconds: int, resolution: str, audio: bool, mode: str = "image_to_video") -> float:
        return self.price_for(mode).clip(seconds, resolution, audio and self.supports_audio)


class ImageEndpoints(_Strict):
    text_to_image: str
    image_edit: str | None = None


class ImageModelSpec(_Row):
    """An image model: renders the stills that keyframes mode anchors segments to."""

    endpoints: ImageEndpoints
    images_field: str | None = Field(None, description="List of input images on the edit endpoint.")
    max_images: int = Field(1, ge=0)
    sizes: dict[str, int] = Field(
        ..., description="Resolution wire value -> pixels on the long side (the smallest that covers the video wins)."
    )
    format_field: str | None = None
    output_format: str = "png"

    @model_validator(mode="after")
    def _consistent(self) -> ImageModelSpec:
        if self.endpoints.image_edit and not self.images_field:
            raise ValueError("an image_edit endpoint needs images_field")
        if not self.sizes:
            raise ValueError("sizes must list at least one resolution")
        return self

    def size_label(self, width: int, height: int) -> str:
        """The smallest resolution whose long side covers the video's; the largest if none does."""
        ordered = sorted(self.sizes.items(), key=lambda item: item[1])
        need = max(width, height)
        return next((label for label, pixels in ordered if pixels >= need), ordered[-1][0])

    def cost(self, width: int, height: int) -> float:
        return round(self.price.rate(self.size_label(width, height), audio=False), 4)


class JudgeModelSpec(_Strict):
    """A chat model with image input that judges clips (`--judge vlm`), over any OpenAI-compatible API."""

    id: str
    family: str
    wire_model: str | None = Field(None, description="The model name sent to the API, when it differs from the id.")
    status: Literal["live", "retired"] = "live"
    usd_per_million_input: float = Field(..., ge=0)
    usd_per_million_output: float = Field(..., ge=0)
    image_tokens: int = Field(
        ..., ge=0, description="Input tokens one frame costs at the size the judge sends (JUDGE_IMAGE_WIDTH)."
    )
    price_source: str = ""
    notes: str = ""
    provider: str = "openai"
    retired_note: str = ""
    alternatives: tuple[str, ...] = ()

    @property
    def api_model(self) -> str:
        return self.wire_model or self.id

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        usd = input_tokens * self.usd_per_million_input + output_tokens * self.usd_per_million_output
        return round(usd / 1_000_000, 6)

    def retired_message(self) -> str:
        alternatives = ", ".join(self.alternatives) or "see `sora-extend models`"
        return f"judge model '{self.id}' is retired: {self.retired_note} Live alternatives: {alternatives}"


class MusicEndpoints(_Strict):
    """A music model scores the merged video, or writes music from text (one of the two)."""

    video_to_music: str | None = None
    text_to_music: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MusicEndpoints:
        if (self.video_to_music is None) == (self.text_to_music is None):
            raise ValueError("a music model has exactly one of video_to_music and text_to_music")
        return self


class MusicLength(_Strict):
    """How long a piece of music the model makes, and how the length is sent."""

    field: str | None = Field(None, description="Where the length goes (empty: the model scores the whole video).")
    unit: Literal["s", "ms"] = "s"
    wire: Literal["int", "float"] = "int"
    min_s: float = Field(..., gt=0)
    max_s: float = Field(..., gt=0)

    def to_wire(self, seconds: float) -> int | float:
        value = seconds * (1000 if self.unit == "ms" else 1)
        return math.ceil(value) if self.wire == "int" else round(value, 3)


class MusicModelSpec(_Row):
    """A music model: one score for the whole video, from the merged video or from the plan's text."""

    aspects: tuple[str, ...] = ()
    endpoints: MusicEndpoints
    prompt_field: str = "prompt"
    video_field: str | None = Field(None, description="video-to-music: where the merged video goes.")
    length: MusicLength

    @model_validator(mode="after")
    def _consistent(self) -> MusicModelSpec:
        if self.endpoints.video_to_music and not self.video_field:
            raise ValueError("a video_to_music endpoint needs video_field")
        return self

    @property
    def mode(self) -> Literal["video_to_music", "text_to_music"]:
        return "video_to_music" if self.endpoints.video_to_music else "text_to_music"

    @property
    def endpoint(self) -> str:
        return str(self.endpoints.video_to_music or self.endpoints.text_to_music)

    def cost(self, seconds: float) -> float:
        """USD for one score of `seconds` (billed by the whole second, or per track)."""
        if self.price.per_audio is not None:
            return round(self.price.per_audio, 4)
        return round(math.ceil(seconds) * self.price.per_second, 4)
