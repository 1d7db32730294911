"""The model catalogue is data: rows, wire types, prices, and user overrides from a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_extend.catalogue import build_catalogue
from sora_extend.errors import InputError


def test_shipped_catalogue_covers_the_live_families_and_keeps_sora_retired() -> None:
    catalogue = build_catalogue()
    live = catalogue.ids("fal")
    for model in (
        "veo31",
        "veo31-fast",
        "kling-v3-pro",
        "kling-o3-standard",
        "wan27",
        "seedance2",
        "ltx23",
        "hailuo23",
        "hailuo02",
    ):
        assert model in live
    assert "sora2-fal" not in live and "sora2-fal" in catalogue.ids("fal", include_retired=True)
    with pytest.raises(InputError, match=r"retired.*Live alternatives: veo31-fast, kling-v3-pro, wan27"):
        catalogue.get("sora2-fal")


@pytest.mark.parametrize(
    ("model", "seconds", "wire"),
    [
        ("veo31-fast", 8, "8s"),
        ("kling-v3-pro", 5, "5"),
        ("seedance2", 10, "10"),
        ("wan27", 5, 5),
        ("ltx23", 6, 6),
    ],
)
def test_duration_wire_types(model: str, seconds: int, wire: object) -> None:
    assert build_catalogue().get(model).duration.to_wire(seconds) == wire


def test_prices_depend_on_audio_and_resolution() -> None:
    catalogue = build_catalogue()
    assert catalogue.get("veo31-fast").cost(8, "720p", audio=True) == pytest.approx(1.20)
    assert catalogue.get("veo31-fast").cost(8, "720p", audio=False) == pytest.approx(0.80)
    assert catalogue.get("wan27").cost(5, "1080p", audio=True) == pytest.approx(0.75)  # no audio surcharge
    assert catalogue.get("preview").cost(20, "1080p", audio=True) == 0


def test_override_file_changes_a_price_and_adds_a_model(tmp_path: Path) -> None:
    override = tmp_path / "models.toml"
    override.write_text(
        """
[models.veo31-fast.price]
per_second = 0.12

[models.my-gateway]
provider = "openai"
family = "My gateway's model"
wire_model = "acme-video-2"
endpoints = { text_to_video = "/videos", image_to_video = "/videos" }
duration = { wire = "string", values = [5, 10], default = 5 }
aspects = ["16:9"]
resolutions = { "720p" = "" }
default_resolution = "720p"
price = { per_second = 0.05 }
""",
        encoding="utf-8",
    )
    catalogue = build_catalogue(override)
    veo = catalogue.get("veo31-fast")
    assert veo.price.per_second == 0.12 and veo.price.per_second_audio == 0.15  # merged field by field
    assert veo.endpoints.image_to_video == "fal-ai/veo3.1/fast/image-to-video"
    assert catalogue.get("my-gateway", "openai").wire_model == "acme-video-2"


def test_broken_override_is_refused_with_the_setting_name(tmp_path: Path) -> None:
    override = tmp_path / "bad.toml"
    override.write_text('[models.x]\nprovider = "fal"\n', encoding="utf-8")
    with pytest.raises(InputError, match="catalogue_file: invalid catalogue row"):
        build_catalogue(override)
    with pytest.raises(InputError, match=r"catalogue_file: .* does not exist"):
        build_catalogue(tmp_path / "missing.toml")
