"""`ExtendRequest`: what one long video should be. It is the flow's parameter, so Prefect's UI form,
the API's JSON schema and the CLI all validate through this one model.

Validation checks the request against the chosen model's catalogue row (allowed durations, aspects,
resolutions, retired models) and fills the model's defaults in, so an accepted request is complete.
Every refusal names the field and the allowed values, before anything is planned or paid for.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import fsspec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sora_extend.catalogue import (
    DEFAULT_KEYFRAME_MODEL,
    DEFAULT_MODEL,
    PROVIDERS,
    RESOLUTION_SIZES,
    Catalogue,
    ImageModelSpec,
    ModelSpec,
    MusicModelSpec,
    load_catalogue,
)
from sora_extend.errors import InputError
from sora_extend.owners import check_owner
from sora_extend.quality.rules import check_gate
from sora_extend.soundtrack_choice import FINISHING_FIELDS, Soundtrack, check_soundtrack, checked_loudness

Aspect = Literal["16:9", "9:16"]
Resolution = Literal["360p", "480p", "512p", "720p", "768p", "1024p", "1080p", "1440p", "2160p"]
Transition = Literal["continuous", "crossfade", "cut", "auto"]
PromptLanguage = Literal["source", "english"]
Continuity = Literal["chain", "keyframes", "extend"]
QualityGate = Literal["off", "report", "retake"]
JudgeKind = Literal["pixels", "vlm"]
TAKE_PICK = r"^[1-9][0-9]*=[1-9][0-9]*$"
QUALITY_GATE_HELP = (
    "Judge every clip (and keyframe still) right after it is rendered: hard cuts, black or frozen stretches, "
    "a clip that does not start (end) on its image, colour casts, blur, wrong length or size, missing sound. "
    "off: no judging. report: judge and show. retake: render a flawed piece again as a new take (a new paid "
    "request) and keep the best take, up to max_takes, within the budget."
)
CONTINUITY_HELP = (
    "How each clip continues the previous one. chain: image-to-video from the previous clip's last frame "
    "(one clip after another). keyframes: stills for every boundary first (one image model call each, all at "
    "once), then every clip at once from keyframe k to keyframe k+1; faster, identity anchored to one still, "
    "and re-rendering a clip re-renders only that clip. extend: the model continues its own video (it sees "
    "motion and sound, not one still). auto: extend when the model can, else keyframes, else chain."
)
MAX_REFERENCES = 14
# Fields added after job ids were first derived from the request: left out of the identity while at their
# defaults, so a job started by an earlier version is found (and resumed, not paid again) by this one.
_LATER_FIELDS = {
    "continuity": "chain",
    "keyframe_model": None,
    "references": [],
    "comfy_workflow": None,
    "comfy_mapping": None,
}

NOT_IDENTITY = {
    "budget_usd",
    "storage",
    "rerender",
    "rerender_keyframes",
    "max_parallel",
    "quality_gate",
    "max_takes",
    "judge",
    "judge_model",
    "use_takes",
    "owner",
    *FINISHING_FIELDS,  # they change how the clips are joined, never the clips
}

MAX_SEGMENTS = 60
MAX_PROMPT_CHARS = 4000


def _ui(position: int, **extra: Any) -> dict[str, Any]:
    # Prefect's form orders fields by "position".
    return {"position": position, **extra}


def _catalogue_choice(position: int, ids: Callable[[Catalogue], list[str]]) -> Callable[[dict[str, Any]], None]:
    """A form field offering the catalogue's ids as a drop-down (an enum in the JSON schema), read when the
    schema is generated, so a catalogue file's models are offered too; validation still checks the catalogue."""

    def extra(schema: dict[str, Any]) -> None:
        schema.update(_ui(position))
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch["enum"] = ids(load_catalogue())

    return extra


def normalise_storage_url(url: str) -> str:
    """An absolute, protocol-qualified storage URL, or an InputError naming `storage`."""
    text = url.strip()
    if not text:
        raise InputError("storage", "must not be empty", "file:///abs/path, s3://bucket/prefix, any fsspec URL")
    protocol, path = fsspec.core.split_protocol(text)
    if protocol is None or protocol in {"file", "local"}:
        return "file://" + str(Path(path).expanduser().resolve())
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        raise InputError(
            "storage",
            f"unsupported storage protocol '{protocol}://' ({exc})",
            "file://, s3://, any fsspec URL",
        ) from exc
    if protocol in {"s3", "s3a", "gs", "gcs", "az", "abfs"} and not path.strip("/"):
        raise InputError("storage", f"'{text}' names no bucket", f"{protocol}://bucket[/prefix]")
    if re.search(r"\s", path):
        raise InputError("storage", f"'{text}' contains whitespace", "a URL without spaces")
    return f"{protocol}://{path.rstrip('/')}"


class ExtendRequest(BaseModel):
    """One long video: a prompt, how to split it, which model renders it, and where it is stored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    prompt: str = Field(
        ...,
        title="Prompt",
        description="What the whole video shows, in any language (Korean welcome). 1-4000 characters.",
        json_schema_extra=_ui(0, examples=["한 마리 고양이가 서울의 밤거리를 걷는다"]),
    )
    segments: int = Field(
        3,
        ge=1,
        le=MAX_SEGMENTS,
        title="Segments",
        description=f"How many clips to chain (1-{MAX_SEGMENTS}). Total length = segments x seconds.",
        json_schema_extra=_ui(1),
    )
    seconds: int | None = Field(
        None,
        ge=1,
        title="Seconds per segment",
        description="Length of each clip. Empty = the model's default; must be one the model allows.",
        json_schema_extra=_ui(2),
    )
    aspect: Aspect = Field(
        "16:9", title="Aspect ratio", description="16:9 landscape or 9:16 portrait.", json_schema_extra=_ui(3)
    )
    resolution: Resolution | None = Field(
        None,
        title="Resolution",
        description="Output resolution label. Empty = the model's default; must be one the model allows.",
        json_schema_extra=_ui(4),
    )
    provider: Literal["preview", "fal", "openai", "comfyui"] = Field(
        "preview",
        title="Provider",
        description="preview renders offline for $0; fal hosts Veo/Kling/Wan/Seedance/LTX/Hailuo; "
        "openai talks to any OpenAI-compatible /v1/videos gateway; comfyui renders on your own ComfyUI "
        "servers (SORA_EXTEND_COMFYUI_URLS).",
        json_schema_extra=_ui(5),
    )
    model: str | None = Field(
        None,
        title="Model",
        description="Catalogue id (see `sora-extend models`). Empty = the provider's default model.",
        json_schema_extra=_catalogue_choice(6, lambda catalogue: catalogue.ids()),
    )
    planner: Literal["template", "openai"] = Field(
        "template",
        title="Planner",
        description="template writes a deterministic shot list offline; openai asks an LLM for one.",
        json_schema_extra=_ui(7),
    )
    planner_fallback: bool = Field(
        False,
        title="Fall back to the template planner",
        description="If the LLM planner fails twice, use the template planner instead of failing.",
        json_schema_extra=_ui(8),
    )
    prompt_language: PromptLanguage = Field(
        "source",
        title="Language of video prompts",
        description="source keeps the prompt's language (e.g. Korean); english translates shot prompts.",
        json_schema_extra=_ui(9),
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        title="Seed",
        description="Seed for models that take one. Empty = derived from the prompt, so reruns match.",
        json_schema_extra=_ui(10),
    )
    audio: bool = Field(
        True,
        title="Generate audio",
        description="Ask the model for audio where it can (it can cost more per second).",
        json_schema_extra=_ui(11),
    )
    transition: Transition = Field(
        "continuous",
        title="Transition",
        description="Join between segments: continuous (the next clip starts from the hand-off frame), "
        "crossfade (starts from it and blends), cut (a new shot), or auto (the planner decides per join).",
        json_schema_extra=_ui(12),
    )
    transitions: list[Literal["continuous", "crossfade", "cut"]] | None = Field(
        None,
        title="Transitions per join",
        description="Optional: one entry per join (segments - 1), overriding `transition` join by join.",
        json_schema_extra=_ui(13),
    )
    crossfade_seconds: float = Field(
        0.5,
        gt=0,
        le=2.0,
        title="Crossfade length",
        description="Seconds, for crossfade joins.",
        json_schema_extra=_ui(14),
    )
    colour_anchor: bool = Field(
        True,
        title="Colour re-anchoring",
        description="Match each hand-off frame's colours to segment 1 so drift cannot compound hop by hop.",
        json_schema_extra=_ui(15),
    )
    budget_usd: float | None = Field(
        None,
        title="Budget (USD)",
        description="Refuse to start, or stop before a submission, if spending would pass this.",
        json_schema_extra=_ui(16),
    )
    storage: str | None = Field(
        None,
        title="Storage URL",
        description="Where job folders go: file:///path or s3://bucket/prefix. Empty = SORA_EXTEND_STORAGE.",
        json_schema_extra=_ui(17),
    )
    rerender: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        title="Re-render segments",
        description="1-based segment numbers to render again. chain: later segments follow from the new frames "
        "and are rendered again too; keyframes: only the chosen segments.",
        json_schema_extra=_ui(18),
    )
    continuity: Literal["chain", "keyframes", "extend", "auto"] = Field(
        "chain", title="Continuity mode", description=CONTINUITY_HELP, json_schema_extra=_ui(19)
    )
    keyframe_model: str | None = Field(
        None,
        title="Keyframe image model",
        description="keyframes mode: the image model that renders the stills (see `sora-extend models`). "
        "Empty = preview-still offline, nano-banana-2 on fal.",
        json_schema_extra=_catalogue_choice(20, lambda catalogue: list(catalogue.images)),
    )
    rerender_keyframes: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list,
        title="Re-render keyframes",
        description="keyframes mode: keyframe numbers (0 = the opening still, k = the end of segment k) to render "
        "again; only the two segments that touch a keyframe are rendered again (all of them for keyframe 0, "
        "which every other keyframe is edited from).",
        json_schema_extra=_ui(21),
    )
    references: list[str] = Field(
        default_factory=list,
        max_length=MAX_REFERENCES,
        title="Reference images",
        description="Images of the subject (a character or product sheet): local paths, http(s) URLs or storage "
        "URLs. Given to the keyframe image model (keyframes) or to the model's reference-to-video endpoint for "
        "segment 1 and every cut (chain, extend). PNG, JPEG or WebP.",
        json_schema_extra=_ui(22),
    )
    max_parallel: int | None = Field(
        None,
        ge=1,
        title="Generations at once",
        description="Cap on paid generations this run has in flight at once. Empty = as many as the mode allows "
        "(keyframes: every clip at once) and the model's default cap; Prefect's per-provider concurrency "
        "limits still apply on top.",
        json_schema_extra=_ui(23),
    )
    quality_gate: QualityGate = Field(
        "retake", title="Quality gate", description=QUALITY_GATE_HELP, json_schema_extra=_ui(24)
    )
    max_takes: int = Field(
        2,
        ge=1,
        le=5,
        title="Takes per piece",
        description="quality_gate retake: the most takes of one piece (1-5), the first included. Every take is "
        "paid for and kept in storage; the best one goes into the video.",
        json_schema_extra=_ui(25),
    )
    judge: JudgeKind = Field(
        "pixels",
        title="Judge",
        description="pixels: offline checks on the frames (free, no model weights). vlm: also ask a chat model with "
        "image input (OpenAI or a gateway: SORA_EXTEND_JUDGE_BASE_URL) whether the clip keeps the subject and "
        "setting, morphs, or follows its shot prompt; each verdict is paid for.",
        json_schema_extra=_ui(26),
    )
    judge_model: str | None = Field(
        None,
        title="Judge model",
        description="judge vlm: the chat model (see `sora-extend models`). Empty = gpt-4.1-mini.",
        json_schema_extra=_catalogue_choice(27, lambda catalogue: list(catalogue.judges)),
    )
    use_takes: list[Annotated[str, Field(pattern=TAKE_PICK)]] = Field(
        default_factory=list,
        title="Use takes",
        description="SEGMENT=TAKE, e.g. 3=1: put that stored take of the segment into the video (picked by hand "
        "on the review page) and merge again without rendering it. Kept for later runs until the segment is "
        "re-rendered.",
        json_schema_extra=_ui(28),
    )

    owner: str | None = Field(
        None,
        title="Owner",
        description="Who the video is for: the library shows each signed-in person their own jobs. The CLI fills "
        "it from SORA_EXTEND_OWNER or the system user; a run started from the library is the signed-in person's.",
        json_schema_extra=_ui(29),
    )
    comfy_workflow: str | None = Field(
        None,
        title="Your ComfyUI workflow",
        description="comfyui: an API-format workflow file (ComfyUI's 'Export (API)') that renders every clip "
        "it fits, instead of the model's shipped template: start_image + end_image = between keyframes, "
        "start_image = image-to-video, no image = text-to-video.",
        json_schema_extra=_ui(30),
    )
    comfy_mapping: str | None = Field(
        None,
        title="Placeholders of your ComfyUI workflow",
        description="comfyui: a TOML file naming where each placeholder goes in --comfy-workflow "
        '(prompt = "6.text", start_image = "12.image", fps = "20.fps", ...). Empty = the workflow '
        'holds "{{name}}" values itself.',
        json_schema_extra=_ui(31),
    )
    soundtrack: Soundtrack = Field(
        "clips",
        title="Soundtrack",
        description="clips: the clips' own sound, crossfaded at every join and brought to one loudness. score: "
        "one piece of music for the whole video under the clips' sound (it dips where they are loud). "
        "score-only: the music replaces the clips' sound.",
        json_schema_extra=_ui(32),
    )
    soundtrack_model: str | None = Field(
        None,
        title="Score model",
        description="soundtrack score / score-only: the music model (see `sora-extend models`). Empty = "
        "preview-score offline, sonilo-video (scores the merged video) on fal.",
        json_schema_extra=_catalogue_choice(33, lambda catalogue: list(catalogue.music)),
    )
    soundtrack_prompt: str | None = Field(
        None,
        title="Score prompt",
        description="What the music should be like. Empty = from the plan's story bible (subject, setting, "
        "style, light).",
        json_schema_extra=_ui(34),
    )
    loudness: float | Literal["off"] = Field(
        -14.0,
        title="Loudness (LUFS)",
        description="The whole video's integrated loudness, -70 to -5 LUFS (-14: YouTube and Spotify; -23: EBU "
        "R128 broadcast), true peak at most -1 dBTP; every clip is brought to it. off: the clips keep the "
        "levels they came with.",
        json_schema_extra=_ui(35),
    )

    @field_validator("loudness", mode="before")
    @classmethod
    def _loudness_target(cls, value: object) -> object:
        return checked_loudness(value)

    @field_validator("prompt")
    @classmethod
    def _prompt_length(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise InputError("prompt", "must not be empty", f"1-{MAX_PROMPT_CHARS} characters")
        if len(text) > MAX_PROMPT_CHARS:
            raise InputError("prompt", f"is {len(text)} characters long", f"1-{MAX_PROMPT_CHARS} characters")
        return text

    @field_validator("budget_usd")
    @classmethod
    def _budget_not_negative(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value < 0):  # a NaN budget would stop nothing
            raise InputError("budget_usd", f"{value} is not a usable budget", "empty (no budget) or a number >= 0")
        return value

    @field_validator("owner")
    @classmethod
    def _owner_name(cls, value: str | None) -> str | None:
        return None if value is None else check_owner("owner", value)

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_storage_url(value)

    @model_validator(mode="after")
    def _against_catalogue(self) -> ExtendRequest:
        catalogue = load_catalogue()
        if self.provider not in PROVIDERS:  # pragma: no cover - Literal already guards this
            raise InputError("provider", f"unknown provider '{self.provider}'", PROVIDERS)
        spec = catalogue.get(self.model or _default_model(self.provider), self.provider)
        self.model = spec.id
        if self.seconds is None:
            self.seconds = spec.duration.default
        elif self.seconds not in spec.duration.values:
            raise InputError("seconds", f"{self.seconds} is not allowed for {spec.id}", _spans(spec.duration.values))
        if self.aspect not in spec.aspects:
            raise InputError("aspect", f"{self.aspect} is not allowed for {spec.id}", spec.aspects)
        if self.resolution is None:
            self.resolution = spec.default_resolution  # type: ignore[assignment]
        elif self.resolution not in spec.resolutions:
            raise InputError("resolution", f"{self.resolution} is not allowed for {spec.id}", spec.resolutions)
        if self.seconds not in spec.duration.allowed(self.resolution or spec.default_resolution):
            allowed = _spans(spec.duration.allowed(self.resolution or spec.default_resolution))
            raise InputError("seconds", f"{self.seconds} is not allowed for {spec.id} at {self.resolution}", allowed)
        if self.transitions is not None and len(self.transitions) != self.segments - 1:
            raise InputError(
                "transitions",
                f"has {len(self.transitions)} entries for {self.segments - 1} joins",
                f"{self.segments - 1} of continuous, crossfade, cut",
            )
        out_of_range = [index for index in self.rerender if index > self.segments]
        if out_of_range:
            raise InputError("rerender", f"segment(s) {out_of_range} do not exist", f"1-{self.segments}")
        self.rerender = sorted(set(self.rerender))
        self._check_continuity(spec)
        check_gate(self)
        from sora_extend.comfyui.request_rules import check_comfy_options  # imports the catalogue's users

        check_comfy_options(self, spec)
        check_soundtrack(self)
        return self

    def _check_continuity(self, spec: ModelSpec) -> None:
        catalogue = load_catalogue()
        mode = self.mode
        if mode != "keyframes" and (self.keyframe_model is not None or self.rerender_keyframes):
            field = "keyframe_model" if self.keyframe_model is not None else "rerender_keyframes"
            raise InputError(field, f"only applies to continuity 'keyframes', not '{mode}'")
        if mode == "extend":
            self._check_extend(spec, catalogue)
        elif mode == "keyframes":
            self._check_keyframes(spec, catalogue)
        if self.references:
            self._check_references(spec, catalogue)

    def _check_keyframes(self, spec: ModelSpec, catalogue: Catalogue) -> None:
        if not spec.takes_end_image:
            capable = [i for i in catalogue.ids(spec.provider) if catalogue.models[i].takes_end_image]
            raise InputError(
                "model",
                f"{spec.id} takes no end image, so it cannot render between keyframes (continuity 'keyframes')",
                capable,
            )
        self.keyframe_model = catalogue.image(self.keyframe_model or DEFAULT_KEYFRAME_MODEL[self.provider]).id
        beyond = [index for index in self.rerender_keyframes if index > self.segments]
        if beyond:
            raise InputError("rerender_keyframes", f"keyframe(s) {beyond} do not exist", f"0-{self.segments}")
        self.rerender_keyframes = sorted(set(self.rerender_keyframes))

    def _check_extend(self, spec: ModelSpec, catalogue: Catalogue) -> None:
        extend = spec.extend
        if extend is None:
            capable = [i for i in catalogue.ids(spec.provider) if catalogue.models[i].native_extend]
            raise InputError("model", f"{spec.id} has no extend endpoint (continuity 'extend')", capable)
        if extend.resolutions is not None and self.resolution not in extend.resolutions:
            raise InputError(
                "resolution", f"{spec.id} extends only at {', '.join(extend.resolutions)}", extend.resolutions
            )
        if extend.max_total_s is not None and self.total_seconds > extend.max_total_s:
            first, step = self.seconds or 0, self.segment_seconds(2)
            fits = max(1, int((extend.max_total_s - first) // step) + 1) if first <= extend.max_total_s else 0
            raise InputError(
                "segments",
                f"{self.segments} segments make {self.total_seconds} s ({first} s + {self.segments - 1} x {step} s), "
                f"but {spec.id}'s extensions stop at {extend.max_total_s:g} s",
                f"1-{fits}",
            )

    def _check_references(self, spec: ModelSpec, catalogue: Catalogue) -> None:
        if self.mode == "keyframes":
            image = catalogue.image(self.keyframe_model or DEFAULT_KEYFRAME_MODEL[self.provider])
            limit = image.max_images - 1  # every edit also carries keyframe 0
            where = f"{image.id} (with keyframe 0 in every edit)"
        elif spec.reference is not None:
            limit, where = spec.reference.max_images, spec.id
            if spec.reference.seconds and self.seconds not in spec.reference.seconds:
                raise InputError(
                    "seconds",
                    f"{spec.id}'s reference-to-video makes {_spans(spec.reference.seconds)} s clips",
                    _spans(spec.reference.seconds),
                )
        else:
            capable = [i for i in catalogue.ids(spec.provider) if catalogue.models[i].reference]
            raise InputError(
                "references",
                f"{spec.id} has no reference-to-video endpoint (use continuity 'keyframes', or one of these models)",
                capable,
            )
        if len(self.references) > limit:
            raise InputError("references", f"{len(self.references)} images, more than {where} takes", f"0-{limit}")

    # ------------------------------------------------------------------ derived values

    @property
    def spec(self) -> ModelSpec:
        return load_catalogue().get(self.model or _default_model(self.provider), self.provider)

    @property
    def soundtrack_spec(self) -> MusicModelSpec | None:
        return load_catalogue().music_model(self.soundtrack_model) if self.soundtrack != "clips" else None

    @property
    def loudness_lufs(self) -> float | None:
        """The loudness target, None when off."""
        return None if self.loudness == "off" else float(self.loudness)

    @property
    def keyframe_spec(self) -> ImageModelSpec | None:
        return load_catalogue().image(self.keyframe_model) if self.keyframe_model else None

    @property
    def size(self) -> tuple[int, int]:
        return self.spec.size(self.aspect, self.resolution or self.spec.default_resolution)

    @property
    def mode(self) -> Continuity:
        """The continuation mode this request runs in (`auto` resolved)."""
        return continuity_choice(self.spec)[0] if self.continuity == "auto" else self.continuity

    @property
    def mode_reason(self) -> str:
        """Why the mode was picked (for the log and the summary)."""
        if self.continuity != "auto":
            return "asked for"
        return "auto: " + continuity_choice(self.spec)[1]

    def segment_seconds(self, index: int) -> int:
        """Length of segment `index`: extend mode's later segments are one extension each (its allowed lengths
        may differ from the first clip's: Veo adds 7 s at a time)."""
        extend = self.spec.extend
        if self.mode != "extend" or index == 1 or extend is None:
            return self.seconds or 0
        allowed = extend.duration.values
        return self.seconds if self.seconds in allowed else extend.duration.default  # type: ignore[return-value]

    def transition_into(self, index: int, planned: str = "continuous") -> Literal["continuous", "crossfade", "cut"]:
        """How shot `index` joins the previous one: the user's per-join choice, else the user's default,
        else (transition "auto") what the planner proposed."""
        if index <= 1:
            return "continuous"
        if self.transitions is not None:
            return self.transitions[index - 2]
        choice = planned if self.transition == "auto" else self.transition
        return choice if choice in ("crossfade", "cut") else "continuous"  # type: ignore[return-value]

    @property
    def total_seconds(self) -> int:
        return sum(self.segment_seconds(index) for index in range(1, self.segments + 1))

    @property
    def effective_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return int.from_bytes(hashlib.sha256(self.prompt.encode()).digest()[:4], "big") & 0x7FFFFFFF

    @property
    def picks(self) -> dict[int, int]:
        """use_takes as segment -> take."""
        return {int(segment): int(take) for segment, take in (pick.split("=") for pick in self.use_takes)}

    def identity(self) -> dict[str, Any]:
        """The fields that decide what the video is. Budget, storage, parallelism, re-render choices, the quality
        gate and who asked do not: a gated run judges (and retakes) the pieces of the same job folder, and the same
        request from two people is one job, listed in both people's libraries."""
        fields = self.model_dump(exclude=NOT_IDENTITY)
        for name, default in _LATER_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        return fields

    def job_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]
        words = re.findall(r"[a-z0-9]+", self.prompt.lower())
        slug = "-".join(words)[:40].strip("-") or "video"
        return f"{slug}-{digest}"


def continuity_choice(spec: ModelSpec) -> tuple[Continuity, str]:
    """What `auto` picks for a model, and why: the best continuation the model offers."""
    if spec.native_extend:
        return "extend", f"{spec.id} can continue its own video"
    if spec.takes_end_image:
        return "keyframes", f"{spec.id} has no extend endpoint but renders between a first and a last image"
    return "chain", f"{spec.id} has neither an extend endpoint nor an end-image field"


def _default_model(provider: str) -> str:
    return DEFAULT_MODEL[provider]  # type: ignore[index]


def _spans(values: tuple[int, ...]) -> str:
    """'3-15' for a contiguous run, '4, 6, 8' otherwise."""
    ordered = sorted(values)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(str(value) for value in ordered)


__all__ = ["RESOLUTION_SIZES", "Continuity", "ExtendRequest", "Transition", "normalise_storage_url"]


def explain(error: Exception, model: type[BaseModel] = ExtendRequest, label: Callable[[str], str] = str) -> list[str]:
    """One line per problem, each naming the field and what is allowed (for the CLI and API errors).
    `model` is the model that was validated, `label` how a field is named to the person (e.g. the
    environment variable of a setting)."""
    from pydantic import ValidationError

    if isinstance(error, InputError):
        return [str(error)]
    if not isinstance(error, ValidationError):
        return [str(error)]
    lines = []
    for item in error.errors():
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        context = item.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, InputError):
            lines.append(str(cause))
            continue
        field = ".".join(str(part) for part in item.get("loc", ())) or "request"
        allowed = allowed_values(field, model)
        lines.append(f"{label(field)}: {message}" + (f" (allowed: {allowed})" if allowed else ""))
    return lines


def allowed_values(field: str, model: type[BaseModel] = ExtendRequest) -> str:
    """What a field (or, for `name.N`, an item of a list field) accepts, in words: '1-60', '1 or more',
    'more than 0 and at most 2.0', 'at most 14 items', or the choices."""
    import typing

    from pydantic.fields import FieldInfo

    name, _, item = field.partition(".")
    info = model.model_fields.get(name)
    if info is None:
        return ""
    annotation, constraints = info.annotation, list(info.metadata)
    if item:  # a list item: its own type and constraints (list[Annotated[int, Field(ge=1)]])
        lists = [arg for arg in (annotation, *typing.get_args(annotation)) if typing.get_origin(arg) is list]
        element = typing.get_args(lists[0])[0] if lists else None
        annotation = typing.get_args(element)[0] if typing.get_origin(element) is typing.Annotated else element
        extras = typing.get_args(element)[1:] if typing.get_origin(element) is typing.Annotated else ()
        constraints = [c for extra in extras for c in (extra.metadata if isinstance(extra, FieldInfo) else [extra])]
    bound = {
        key: getattr(c, key) for c in constraints for key in ("ge", "gt", "le", "lt", "max_length") if hasattr(c, key)
    }
    if "ge" in bound and "le" in bound:
        return f"{bound['ge']}-{bound['le']}"
    words = {
        "ge": "{} or more",
        "gt": "more than {}",
        "le": "at most {}",
        "lt": "less than {}",
        "max_length": "at most {} items",
    }
    if bound:
        return " and ".join(words[key].format(value) for key, value in bound.items())
    choices = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    literals = [value for choice in choices for value in (typing.get_args(choice) or [choice])]
    if literals and all(isinstance(value, str) for value in literals):
        return ", ".join(literals)
    return ""
