"""Process-wide settings, read from the environment (prefix SORA_EXTEND_) and an optional .env file.

Everything here is configuration of the machine or worker, not of one video: per-video choices live in
`ExtendRequest`. Keys are `SecretStr` so they never print; AWS credentials are not held here at all:
s3fs reads the standard AWS variables or profile itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sora_extend.request import ExtendRequest


MAX_RETENTION_DAYS = 36500.0  # a hundred years: beyond that a cut-off date cannot be computed


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SORA_EXTEND_", env_file=".env", extra="ignore")

    storage: str = Field(
        "file://./outputs",
        description="Default storage URL for job folders: file://path, s3://bucket/prefix, or any fsspec URL.",
    )
    catalogue_file: Path | None = Field(
        None, description="TOML file whose [models.<id>] rows add to or override the shipped catalogue."
    )

    fal_key: SecretStr | None = Field(None, validation_alias=AliasChoices("FAL_KEY", "SORA_EXTEND_FAL_KEY"))
    fal_queue_url: str = Field(
        "https://queue.fal.run/", description="Base URL of fal's queue; point it at a gateway if you use one."
    )
    fal_rest_url: str = Field("https://rest.fal.ai", description="fal REST host (CDN upload tokens).")
    fal_cdn_url: str = Field("https://v3.fal.media", description="fal CDN host (hand-off frame uploads).")
    fal_platform_url: str = Field(
        "https://api.fal.ai/v1",
        description="fal's Platform API: live unit prices, and the request list that finds a lost submission.",
    )
    price_cache_s: float = Field(3600.0, ge=0, description="How long fetched live prices are reused.")

    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "SORA_EXTEND_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None, description="Base URL for the planner's chat/responses calls (vLLM, Ollama, OpenRouter...)."
    )
    openai_videos_base_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible /v1/videos gateway (defaults to openai_base_url)."
    )
    videos_api_key: SecretStr | None = Field(
        None, description="Key for the videos gateway when it differs from OPENAI_API_KEY."
    )
    planner_model: str = Field("gpt-5-mini", description="Chat model that writes shot plans.")
    planner_api: Literal["responses", "chat"] = Field(
        "chat", description="'chat' works with every OpenAI-compatible server; 'responses' needs OpenAI's."
    )
    judge_base_url: str | None = Field(
        None, description="Base URL of the chat API that judges clips (`--judge vlm`); empty = openai_base_url."
    )
    judge_api_key: SecretStr | None = Field(
        None, description="Key for the judge's API when it differs from OPENAI_API_KEY."
    )

    comfyui_urls: SecretStr = Field(
        SecretStr("http://127.0.0.1:8188"),
        description="ComfyUI servers, comma-separated (one GPU each: one clip at a time per server). "
        "user:password@ in a URL is sent as basic auth; the list is a secret because it may hold them.",
    )
    comfyui_token: SecretStr | None = Field(
        None, description="Bearer token sent to every ComfyUI server (for servers behind an authenticating proxy)."
    )

    poll_interval_s: float = Field(
        2.0,
        gt=0,
        description="The longest wait between provider status polls (the first poll comes 0.1 s after submitting, "
        "each later one 1.5 times as long after the last, up to this).",
    )
    poll_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Give up on a queued/in-progress request after this long (it stays resumable).",
    )
    retries: int = Field(4, ge=0, description="Task retries for transient errors (rate limits, 5xx, timeouts).")
    retry_delay_s: float = Field(5.0, ge=0, description="First retry delay; doubles on each retry (with jitter).")
    max_crash_restarts: int = Field(
        2,
        ge=0,
        description="How many times a deployment run that crashed (its worker lost, its process killed) is resumed "
        "automatically before it fails for a person to look at.",
    )
    concurrency_limits: bool = Field(
        False,
        description="Hold a slot of the Prefect global concurrency limit 'sora-extend-<provider>' while a segment "
        "renders (create the limits with `sora-extend bootstrap`).",
    )
    orphan_policy: Literal["reconcile", "fail", "resubmit"] = Field(
        "reconcile",
        description="A paid submission whose request id was never recorded (the answer was lost, or the process "
        "died mid-submit). reconcile: look for it in the provider's request list (fal's Platform API) and "
        "adopt it; submit again only once the list confirms, for reconcile_grace_s, that it never arrived; "
        "fail when the list cannot be read. fail: always stop and ask you to check the dashboard. resubmit: "
        "submit again without looking (may pay twice).",
    )
    reconcile_grace_s: float = Field(
        60.0, ge=0, description="How long a lost submission is looked for before it counts as never accepted."
    )
    http_timeout_s: float = Field(120.0, gt=0, description="Per-HTTP-call timeout for provider clients.")

    work_dir: Path = Field(
        Path.home() / ".cache" / "sora-extend" / "work",
        description="Local scratch and content-addressed cache of downloaded media (safe to delete).",
    )
    lock_backend: Literal["file", "storage"] = Field(
        "file",
        description="Per-segment lock: 'file' (one machine) or 'storage' (a lock object in the job's storage, "
        "for workers on several machines sharing S3).",
    )
    lock_dir: Path = Field(
        Path.home() / ".cache" / "sora-extend" / "locks",
        description="Where per-segment lock files live (lock_backend 'file').",
    )
    link_ttl_s: int = Field(7 * 24 * 3600, gt=0, description="Lifetime of presigned links to final videos.")
    public_url: str | None = Field(
        None,
        description="Where `sora-extend serve` (or any server over the storage root) is reachable, e.g. "
        "http://127.0.0.1:8765: the base of every link printed or put into artifacts (videos, review pages, "
        "contact sheets). Empty = presigned URLs on S3, file paths locally.",
    )
    prefect_server: Literal["background", "embedded"] = Field(
        "background",
        description="Where `sora-extend run` records its runs when no Prefect API is configured (PREFECT_API_URL "
        "or a Prefect profile). background: a local Prefect server on 127.0.0.1 (prefect_port), started by the "
        "first run and kept for the next ones (UI and run history; `sora-extend prefect stop` stops it). "
        "embedded: a temporary server for each run (slower to start, keeps no process behind).",
    )
    prefect_port: int = Field(
        4200, ge=1, le=65535, description="Port of the local Prefect server (its UI and API) that runs use."
    )
    owner: str | None = Field(
        None,
        description="Who `sora-extend run` makes videos for (the request's owner) when --owner is not given; "
        "empty = the system user name.",
    )
    retention_days: float = Field(
        1.0, gt=0, le=MAX_RETENTION_DAYS, description="purge-outputs deletes finished jobs older than this."
    )

    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, R2, moto...).")
    s3_region: str | None = Field(None, description="S3 region name.")
    aws_profile: str | None = Field(None, description="Named AWS profile for S3 credentials.")
    aws_credentials_block: str | None = Field(
        None,
        description="Name of a Prefect Secret block holding JSON {aws_access_key_id, aws_secret_access_key"
        "[, aws_session_token]}; empty = the standard AWS chain (environment, profile, instance role).",
    )
    s3_key: SecretStr | None = Field(None, exclude=True, description="Set at run time from the block above only.")
    s3_secret: SecretStr | None = Field(None, exclude=True, description="Set at run time from the block above only.")
    s3_token: SecretStr | None = Field(None, exclude=True, description="Set at run time from the block above only.")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = urlsplit(value.strip())
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise ValueError(f"'{value}' is not an http(s) base URL such as http://127.0.0.1:8765")
        return url.geturl().rstrip("/")


# setting -> (environment variable, Prefect Secret block name) of every API key
API_KEYS = {
    "fal_key": ("FAL_KEY", "fal-key"),
    "openai_api_key": ("OPENAI_API_KEY", "openai-api-key"),
}


def missing_keys(request: ExtendRequest, settings: Settings) -> list[tuple[str, str]]:
    """(setting, what needs it) for every API key the request needs that `settings` lack, once each."""
    needs = []
    if request.provider == "fal":
        needs.append(("fal_key", f"provider 'fal' (model {request.model})"))
    if request.provider == "openai":
        needs.append(("openai_api_key", f"provider 'openai' (model {request.model})"))
    if request.planner == "openai":
        needs.append(("openai_api_key", "planner 'openai'"))
    if request.judge == "vlm" and settings.judge_api_key is None:
        needs.append(("openai_api_key", f"judge 'vlm' (model {request.judge_model})"))
    music = request.soundtrack_spec
    if music is not None and music.provider == "fal":
        needs.append(("fal_key", f"soundtrack model {music.id}"))
    missing: dict[str, str] = {}
    for name, needed_for in needs:
        gateway_has_own_key = settings.videos_api_key is not None and needed_for.startswith("provider 'openai'")
        if getattr(settings, name) is None and not (name == "openai_api_key" and gateway_has_own_key):
            missing.setdefault(name, needed_for)
    return list(missing.items())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process. Tests and long-lived workers call `reload_settings()` after env changes."""
    return Settings()


def reload_settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()
