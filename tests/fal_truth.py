"""Check catalogue rows against fal's published schemas: build every request a row can make with the
project's own fal provider (the exact wire payloads), and validate each one against the snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sora_extend.catalogue import Catalogue, ImageModelSpec, ModelSpec, MusicModelSpec
from sora_extend.providers.base import GenerationRequest
from sora_extend.providers.fal import FalProvider
from sora_extend.settings import Settings
from tests.emulators.fal_schemas import FalSchemas

PNG = b"\x89PNG\r\n\x1a\n"  # never decoded here: only its wire form matters


class OfflineFal(FalProvider):
    """The real argument mapping, with input files as placeholder URLs instead of CDN uploads."""

    def _upload(self, data: bytes, content_type: str) -> str:
        return "https://v3.fal.media/files/placeholder.png"

    def _video_reference(self, clip: Path) -> str:
        return "https://v3.fal.media/files/placeholder.mp4"


def _cases(spec: ModelSpec) -> Iterator[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    """(mode, lengths, resolutions) for every generation mode the row can make."""
    resolutions = tuple(spec.resolutions)
    for mode in ("text_to_video", "image_to_video"):
        if getattr(spec.endpoints, mode):
            yield mode, spec.duration.values, resolutions
    if spec.takes_end_image:
        yield "first_last_frame", spec.duration.values, resolutions
    if spec.extend is not None:
        yield "extend", spec.extend.duration.values, spec.extend.resolutions or resolutions
    if spec.reference is not None:
        yield "reference_to_video", spec.reference.seconds or spec.duration.values, resolutions


def _video_requests(spec: ModelSpec) -> Iterator[tuple[str, GenerationRequest]]:
    for mode, lengths, resolutions in _cases(spec):
        for seconds in lengths:
            for resolution in resolutions:
                if mode != "extend" and seconds > spec.duration.max_seconds(resolution):
                    continue
                for aspect in spec.aspects:
                    width, height = spec.size(aspect, resolution)
                    yield (
                        f"{mode} {seconds} s {resolution} {aspect}",
                        GenerationRequest(
                            label="segment 1",
                            index=1,
                            content_key="truth",
                            model=spec.id,
                            prompt="a lighthouse at dusk",
                            seconds=seconds,
                            aspect=aspect,
                            resolution=resolution,
                            width=width,
                            height=height,
                            seed=7,
                            audio=True,
                            first_frame_png=PNG if mode in ("image_to_video", "first_last_frame") else None,
                            last_frame_png=PNG if mode == "first_last_frame" else None,
                            references=(PNG,) if mode == "reference_to_video" else (),
                            source_video=Path("placeholder.mp4") if mode == "extend" else None,
                        ),
                    )


def _image_requests(spec: ImageModelSpec) -> Iterator[tuple[str, GenerationRequest]]:
    for edit in (False, True) if spec.endpoints.image_edit else (False,):
        for label in spec.sizes:
            for aspect in spec.aspects:
                yield (
                    f"{'edit' if edit else 'text_to_image'} {label} {aspect}",
                    GenerationRequest(
                        label="keyframe 1",
                        index=1,
                        content_key="truth",
                        model=spec.id,
                        output="image",
                        prompt="a lighthouse at dusk",
                        aspect=aspect,
                        resolution=label,
                        width=1280,
                        height=720,
                        seed=7,
                        images=(PNG,) if edit else (),
                    ),
                )


def _music_requests(spec: MusicModelSpec) -> Iterator[tuple[str, GenerationRequest]]:
    """The shortest and the longest piece the row can ask for."""
    for seconds in (spec.length.min_s, spec.length.max_s):
        yield (
            f"{spec.mode} {seconds:g} s",
            GenerationRequest(
                label="score",
                index=0,
                content_key="truth",
                model=spec.id,
                output="audio",
                prompt="a slow piano under rain",
                seconds=int(seconds),
                aspect="16:9",
                resolution="720p",
                width=1280,
                height=720,
                seed=7,
                source_video=Path("placeholder.mp4") if spec.mode == "video_to_music" else None,
            ),
        )


def payload_problems(schemas: FalSchemas, endpoint: str, payload: dict[str, Any]) -> list[str]:
    if endpoint not in schemas:
        return [f"{endpoint} is not a published fal endpoint"]
    fields = schemas[endpoint].fields
    problems = [f"sends '{name}', which {endpoint} does not have" for name in payload if name not in fields]
    problems += [f"{'.'.join(item['loc'][1:])}: {item['msg']}" for item in schemas.validate(endpoint, payload)]
    return problems


def catalogue_problems(catalogue: Catalogue, schemas: FalSchemas) -> list[str]:
    """Every disagreement between the catalogue's live fal rows and fal's published schemas."""
    settings = Settings(fal_key=SecretStr("offline"))
    rows: list[ModelSpec | ImageModelSpec | MusicModelSpec] = [
        *catalogue.models.values(),
        *catalogue.images.values(),
        *catalogue.music.values(),
    ]
    found: list[str] = []
    for spec in rows:
        if spec.provider != "fal" or spec.status != "live":
            continue
        provider = OfflineFal(spec, settings)
        if isinstance(spec, MusicModelSpec):
            cases = _music_requests(spec)
        else:
            cases = _image_requests(spec) if isinstance(spec, ImageModelSpec) else _video_requests(spec)
        for what, request in cases:
            endpoint = provider.endpoint_for(request)
            for problem in payload_problems(schemas, endpoint, provider.arguments(request)):
                found.append(f"{spec.id} ({what}): {problem}")
        provider.close()
    return sorted(set(found))


def published_rate(pricing: dict[str, Any], resolution: str, audio: bool, size: tuple[int, int]) -> float | None:
    """USD per second (per image for image models) from a fixture's `pricing`, or None when the page's
    price does not say it for this resolution / audio choice."""
    if pricing.get("unit") == "1000 tokens":  # tokens = width x height x seconds x 24 / 1024
        return round(pricing["unit_price"] * size[0] * size[1] * 24 / 1024 / 1000, 4)
    if pricing.get("unit") == "image":
        return round(pricing["unit_price"] * pricing.get("resolution_multiplier", {}).get(resolution, 1.0), 4)
    table = pricing.get("table", {})
    table = table.get("playground", table)  # where fal's pages disagree the fixture keeps both; see the row's notes
    row = table.get(resolution, table.get(resolution.upper(), table.get("any")))
    if isinstance(row, dict):
        return row.get("audio_on" if audio else "audio_off")
    return row


def price_problems(catalogue: Catalogue, schemas: FalSchemas, fixtures: dict[str, dict[str, Any]]) -> list[str]:
    """Every live fal row whose price differs from what fal's page for its endpoint says (more than 1%)."""
    found = []
    for spec in catalogue.models.values():
        if spec.provider != "fal" or spec.status != "live" or not spec.endpoints.image_to_video:
            continue
        pricing = fixtures[spec.endpoints.image_to_video].get("pricing") or {}
        for resolution, wire in spec.resolutions.items():
            for audio in (False, True) if spec.supports_audio else (False,):
                published = published_rate(pricing, wire or resolution, audio, spec.size("16:9", resolution))
                ours = spec.price_per_second(resolution, audio)
                if published is not None and abs(published - ours) > 0.01 * published:
                    found.append(
                        f"{spec.id} {resolution} audio {'on' if audio else 'off'}: ${ours}/s, fal ${published}/s"
                    )
    for image in catalogue.images.values():
        if image.provider == "fal" and image.status == "live":
            pricing = fixtures[image.endpoints.text_to_image].get("pricing") or {}
            for label in image.sizes:
                published = published_rate(pricing, label, False, (0, 0))
                ours = image.price.rate(label, audio=False)
                if published is not None and abs(published - ours) > 0.01 * published:
                    found.append(f"{image.id} {label}: ${ours}/image, fal ${published}/image")
    for music in catalogue.music.values():
        if music.provider == "fal" and music.status == "live":
            pricing = fixtures[music.endpoint].get("pricing") or {}
            unit = "second" if music.price.per_audio is None else "audio"
            ours = music.price.per_second if unit == "second" else music.price.per_audio
            if pricing.get("unit") != unit or abs(pricing.get("unit_price", 0) - (ours or 0)) > 0.01 * (ours or 1):
                found.append(f"{music.id}: ${ours}/{unit}, fal {pricing.get('unit_price')}/{pricing.get('unit')}")
    return found
