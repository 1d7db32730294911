"""The deployment form (the request's JSON schema): models are offered as a choice of catalogue ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sora_extend.catalogue import load_catalogue
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings

TINY_CATALOGUE = Path(__file__).with_name("catalogue_tiny.toml")


def _choices(field: str) -> list[str]:
    schema = ExtendRequest.model_json_schema()["properties"][field]
    (string,) = [branch for branch in schema["anyOf"] if branch.get("type") == "string"]
    assert {"type": "null"} in schema["anyOf"]  # empty still means "the default"
    return list(string["enum"])


def test_models_are_a_choice_of_live_catalogue_ids() -> None:
    catalogue = load_catalogue()
    assert _choices("model") == catalogue.ids() and "veo31-fast" in _choices("model")
    assert "sora2" not in _choices("model")  # retired: choosing it only fails
    assert _choices("keyframe_model") == list(catalogue.images) and "nano-banana-2" in _choices("keyframe_model")
    schema = ExtendRequest.model_json_schema()["properties"]
    assert schema["model"]["position"] == 6 and schema["keyframe_model"]["position"] == 20


def test_a_catalogue_file_adds_choices_and_the_catalogue_still_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_EXTEND_CATALOGUE_FILE", str(TINY_CATALOGUE))
    reload_settings()
    try:
        assert "tiny-fal" in _choices("model")
    finally:
        monkeypatch.undo()
        reload_settings()
    assert "tiny-fal" not in _choices("model")
    with pytest.raises(ValidationError, match="model: unknown model 'tiny-fal'"):
        ExtendRequest(prompt="x", provider="fal", model="tiny-fal")
