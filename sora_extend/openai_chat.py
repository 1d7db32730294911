"""An OpenAI-compatible chat client and what its errors mean here: the planner and the chat model judge
both talk to OpenAI or any server that speaks its API (vLLM, Ollama, OpenRouter, a gateway)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from sora_extend.errors import ProviderError, TerminalProviderError, TransientProviderError

if TYPE_CHECKING:  # the SDK takes most of a second to import: only runs that talk to a chat model pay it
    import openai
    from openai import OpenAI


def chat_client(api_key: SecretStr, base_url: str | None, timeout_s: float) -> OpenAI:
    from openai import OpenAI

    return OpenAI(api_key=api_key.get_secret_value(), base_url=base_url, timeout=timeout_s, max_retries=2)


def chat_error(
    exc: openai.OpenAIError,
    what: str,
    *,
    model: str,
    key_name: str,
    terminal: type[ProviderError] = TerminalProviderError,
) -> ProviderError:
    """An SDK error as a provider error: rate limits, conflicts, timeouts, 5xx and transport errors are
    transient (retried); anything else the server answered is `terminal`."""
    import openai

    if not isinstance(exc, openai.APIStatusError):
        return TransientProviderError(
            f"the {what} could not be reached: {type(exc).__name__}", provider="openai", model=model
        )
    status = exc.status_code
    kind = TransientProviderError if status in (408, 409, 429) or status >= 500 else terminal
    reason = f"the {what} answered HTTP {status}: {exc.message}"
    if status in (401, 403):
        reason = f"the {what} rejected the key (HTTP {status}); check {key_name}"
    return kind(reason, provider="openai", model=model, status_code=status)
