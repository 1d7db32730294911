"""The catalogue against fal's published schemas, row by row (the emulator validates against the same
snapshots, so a row that passes here is a request fal accepts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_extend.catalogue import build_catalogue
from tests.emulators.fal_schemas import FIXTURES, FalSchemas
from tests.fal_truth import catalogue_problems, price_problems


@pytest.fixture(scope="module")
def schemas() -> FalSchemas:
    return FalSchemas.load()


def test_every_fixture_names_its_source_and_date() -> None:
    import json

    for path in FIXTURES.glob("*.json"):
        data = json.loads(path.read_text("utf-8"))
        assert data["sources"] and data["retrieved"], path.name
        assert path.name == data["endpoint_id"].replace("/", "__") + ".json"


def test_every_live_fal_row_sends_what_fal_publishes(schemas: FalSchemas) -> None:
    assert catalogue_problems(build_catalogue(), schemas) == []


def test_the_test_models_send_what_their_narrowed_schemas_take() -> None:
    from tests.emulators.fal_schemas import TEST_MODEL_CATALOGUE, with_test_model

    problems = catalogue_problems(build_catalogue(TEST_MODEL_CATALOGUE), with_test_model())
    assert [p for p in problems if p.startswith("tiny-")] == []


def _fixtures() -> dict[str, dict[str, object]]:
    import json

    documents = (json.loads(path.read_text("utf-8")) for path in FIXTURES.glob("*.json"))
    return {document["endpoint_id"]: document for document in documents}


def test_catalogue_prices_match_fals_pages_per_resolution_and_audio(schemas: FalSchemas) -> None:
    assert price_problems(build_catalogue(), schemas, _fixtures()) == []


def test_a_price_that_ignores_resolution_is_caught(schemas: FalSchemas, tmp_path: Path) -> None:
    path = tmp_path / "override.toml"
    flat = '[models.veo31.price]\nby_resolution = { "2160p" = 0.20 }\nby_resolution_audio = { "2160p" = 0.40 }\n'
    path.write_text(flat, encoding="utf-8")  # 4k priced like 720p, as the catalogue once did
    problems = price_problems(build_catalogue(path), schemas, _fixtures())
    assert problems == ["veo31 2160p audio off: $0.2/s, fal $0.4/s", "veo31 2160p audio on: $0.4/s, fal $0.6/s"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (  # fal's LTX-2.3 Fast ids put /fast last
            '[models.ltx23-fast.endpoints]\ntext_to_video = "fal-ai/ltx-2.3/fast/text-to-video"\n',
            "fal-ai/ltx-2.3/fast/text-to-video is not a published fal endpoint",
        ),
        (  # Veo wants "8s", not "8"
            '[models.veo31-fast.duration]\nwire = "string"\n',
            "duration: '4' is not one of ['4s', '6s', '8s']",
        ),
        (  # Seedance 2.0 Fast has no 1080p
            '[models.seedance2-fast.resolutions]\n"1080p" = "1080p"\n',
            "resolution: '1080p' is not one of ['480p', '720p']",
        ),
        (  # Wan 2.7 image-to-video takes its aspect from the image
            "[models.wan27.omit]\nimage_to_video = []\n",
            "sends 'aspect_ratio', which fal-ai/wan/v2.7/image-to-video does not have",
        ),
        (  # Nano Banana 2 has no 8K
            '[images.nano-banana-2.sizes]\n"8K" = 8192\n',
            "resolution: '8K' is not one of",
        ),
    ],
)
def test_a_row_that_disagrees_with_fal_fails(schemas: FalSchemas, tmp_path: Path, override: str, expected: str) -> None:
    path = tmp_path / "override.toml"
    path.write_text(override, encoding="utf-8")
    problems = catalogue_problems(build_catalogue(path), schemas)
    assert any(expected in problem for problem in problems), problems[:5]


def test_refresh_turns_fals_openapi_document_into_a_snapshot() -> None:
    """The refresh script's conversion, on a document shaped like fal's per-endpoint queue OpenAPI
    (the live one needs network access this CI does not have)."""
    from tests.emulators.refresh_fal_schemas import fixture_from_openapi

    endpoint = "fal-ai/wan/v2.7/text-to-video"
    ref = {"$ref": "#/components/schemas/WanInput"}
    document = {
        "openapi": "3.0.4",
        "paths": {
            f"/{endpoint}": {
                "post": {"requestBody": {"content": {"application/json": {"schema": ref}}}},
            },
            "/fal-ai/wan/requests/{request_id}": {
                "get": {
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/WanOutput"}}}}
                    }
                }
            },
        },
        "components": {
            "schemas": {
                "WanInput": {
                    "type": "object",
                    "properties": {"prompt": {"type": "string"}, "duration": {"type": "integer", "enum": [2, 5]}},
                    "required": ["prompt"],
                },
                "WanOutput": {
                    "type": "object",
                    "properties": {"video": {"$ref": "#/components/schemas/File"}},
                    "required": ["video"],
                },
                "File": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
            }
        },
    }
    previous = {"pricing": {"unit": "second"}, "notes": "kept", "input": {}, "output": {}}
    fixture = fixture_from_openapi(endpoint, document, previous)
    assert fixture["input"]["properties"]["duration"] == {"type": "integer", "enum": [2, 5]}
    assert fixture["output"]["properties"]["video"]["required"] == ["url"]  # $refs inlined
    assert fixture["pricing"] == {"unit": "second"} and fixture["notes"].startswith("SCHEMA CHANGED")
    assert fixture["sources"] == [f"https://fal.ai/api/openapi/queue/openapi.json?endpoint_id={endpoint}"]
    from tests.emulators.fal_schemas import EndpointSchema

    loaded = FalSchemas([EndpointSchema(endpoint, fixture["input"], fixture["output"])])  # what the emulator loads
    assert loaded.validate(endpoint, {"prompt": "p", "duration": 5}) == []
    assert loaded.validate(endpoint, {"prompt": "p", "duration": 3})[0]["loc"] == ["body", "duration"]
