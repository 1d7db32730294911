"""The request's soundtrack options, checked before anything is spent: the loudness target, and for a
score the music model (a music model, one that can make music as long as the video).

These are finishing choices: they change how the clips are joined and what plays under them, never the
clips, so they are not part of the job's identity: changing them re-merges the same job's clips (and pays
for a score, once) instead of rendering every clip again."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

from sora_extend.catalogue import DEFAULT_SOUNDTRACK_MODEL, load_catalogue
from sora_extend.errors import InputError
from sora_extend.media.loudness import MAX_TARGET_LUFS, MIN_TARGET_LUFS

if TYPE_CHECKING:
    from sora_extend.request import ExtendRequest

Soundtrack = Literal["clips", "score", "score-only"]
FINISHING_FIELDS = ("soundtrack", "soundtrack_model", "soundtrack_prompt", "loudness")
LOUDNESS_ALLOWED = f"{MIN_TARGET_LUFS:g} to {MAX_TARGET_LUFS:g} (LUFS), or off"


def checked_loudness(value: object) -> float | Literal["off"]:
    """The target in LUFS (a number, or a number written out, as the command line gives it), or "off";
    anything else refused naming the field and the range."""
    if isinstance(value, str) and value.strip() != "off":
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, str) and value.strip() == "off":
        return "off"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InputError("loudness", f"'{value}' is neither a number of LUFS nor off", LOUDNESS_ALLOWED)
    if not MIN_TARGET_LUFS <= value <= MAX_TARGET_LUFS:
        raise InputError("loudness", f"{value:g} LUFS is out of range", LOUDNESS_ALLOWED)
    return float(value)


def check_soundtrack(request: ExtendRequest) -> None:
    """A score's model must be a music model that can score a video this long; without a score, the
    score's options are refused rather than silently ignored."""
    if request.soundtrack == "clips":
        for field in ("soundtrack_model", "soundtrack_prompt"):
            if getattr(request, field) is not None:
                raise InputError(field, "only applies to soundtrack 'score' or 'score-only', not 'clips'")
        return
    catalogue = load_catalogue()
    spec = catalogue.music_model(request.soundtrack_model or DEFAULT_SOUNDTRACK_MODEL[request.provider])
    request.soundtrack_model = spec.id
    seconds = request.total_seconds
    if not spec.length.min_s <= seconds <= spec.length.max_s:
        fits = [i for i, row in catalogue.music.items() if row.length.min_s <= seconds <= row.length.max_s]
        raise InputError(
            "soundtrack_model",
            f"{spec.id} makes {spec.length.min_s:g}-{spec.length.max_s:g} s of music; this video is {seconds} s",
            fits,
        )
