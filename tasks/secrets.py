"""API keys from the environment, or else from Prefect Secret blocks; never passed as parameters."""

from __future__ import annotations

import json
import logging

from pydantic import SecretStr

from sora_extend.errors import MissingKeyError
from sora_extend.request import ExtendRequest
from sora_extend.settings import API_KEYS, Settings, get_settings, missing_keys

logger = logging.getLogger(__name__)


def _from_block(block_name: str) -> SecretStr | None:
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(block_name).get()
    except (ValueError, RuntimeError):  # no such block / no API to ask
        return None
    return SecretStr(str(value)) if value else None


def storage_settings(settings: Settings | None = None) -> Settings:
    """Settings with S3 credentials from the configured Prefect Secret block, if one is configured."""
    settings = settings or get_settings()
    if not settings.aws_credentials_block:
        return settings
    from prefect.blocks.system import Secret

    value = Secret.load(settings.aws_credentials_block).get()
    data = json.loads(value) if isinstance(value, str) else dict(value)
    return settings.model_copy(
        update={
            "s3_key": SecretStr(str(data["aws_access_key_id"])),
            "s3_secret": SecretStr(str(data["aws_secret_access_key"])),
            "s3_token": SecretStr(str(data["aws_session_token"])) if data.get("aws_session_token") else None,
        }
    )


def settings_with_keys(request: ExtendRequest, settings: Settings | None = None) -> Settings:
    """Settings holding every key the request needs, or MissingKeyError naming the first one missing."""
    settings = storage_settings(settings)
    updates: dict[str, SecretStr] = {}
    for name, needed_for in missing_keys(request, settings):
        env_var, block_name = API_KEYS[name]
        value = _from_block(block_name)
        if value is None:
            raise MissingKeyError(env_var, block_name, needed_for)
        logger.info("using the %s key from Prefect Secret block '%s'", env_var, block_name)
        updates[name] = value
    return settings.model_copy(update=updates) if updates else settings
