"""Exceptions that say what went wrong in terms a user can act on.

The split between transient and terminal provider errors drives retries: only a
`TransientProviderError` is ever retried, so a content-policy rejection or a validation
error is never paid for twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any


class SoraExtendError(Exception):
    """Base class for every error this project raises on purpose."""


class InputError(SoraExtendError, ValueError):
    """A bad input, refused before any money is spent. Names the field and what is allowed."""

    def __init__(self, field: str, message: str, allowed: Iterable[object] | str | None = None) -> None:
        self.field = field
        self.reason = message
        if allowed is None:
            self.allowed: str | None = None
        elif isinstance(allowed, str):
            self.allowed = allowed
        else:
            self.allowed = ", ".join(str(value) for value in allowed)
        text = f"{field}: {message}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        super().__init__(text)


class MissingKeyError(InputError):
    """A provider needs an API key that is neither in the environment nor in a Prefect Secret block."""

    def __init__(self, env_var: str, block_name: str, needed_for: str) -> None:
        super().__init__(
            env_var,
            f"{needed_for} needs an API key and none was found. Export {env_var}=... in the environment "
            f"of the process (or worker) that runs the flow, or save it in a Prefect Secret block named "
            f"'{block_name}' (sora-extend bootstrap --secrets does that from the environment)",
        )


class BudgetExceededError(SoraExtendError):
    """Spending would pass the user's budget; raised before the submission that would pass it."""


class MediaError(SoraExtendError):
    """A media file is missing, undecodable, or not what it claims to be."""


class ProviderError(SoraExtendError):
    """A video, image or planning provider failed. Carries enough context to name the failing step."""

    def __init__(
        self,
        reason: str,
        *,
        provider: str = "",
        model: str = "",
        step: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_failed: bool = False,
        never_sent: bool = False,
    ) -> None:
        self.reason = reason
        self.provider = provider
        self.model = model
        self.step = step  # "segment 3", "keyframe 0"
        self.request_id = request_id
        self.status_code = status_code
        self.retry_after = retry_after
        # The provider finished this request unsuccessfully: it cannot be resumed, only resubmitted.
        self.request_failed = request_failed
        # A submit that never reached the provider (no connection): nothing can have been accepted.
        self.never_sent = never_sent
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.step is not None:
            where.append(self.step)
        if self.provider or self.model:
            where.append(f"{self.provider}/{self.model}".strip("/"))
        if self.request_id:
            where.append(f"request {self.request_id}")
        prefix = f"[{', '.join(where)}] " if where else ""
        return f"{prefix}{self.reason}"

    def for_step(self, step: str) -> ProviderError:
        """The same error, naming the step it happened on (providers do not know it)."""
        self.step = step
        self.args = (self._describe(),)
        return self


class TransientProviderError(ProviderError):
    """Worth retrying: transport errors, 408/409/429, 5xx, runner disconnects, stuck queues."""


class SubmitOutcomeUnknown(TransientProviderError):
    """A submission was sent but its answer never came: the provider may or may not have accepted it."""

    def __init__(self, reason: str, *, sent_at: datetime, **context: Any) -> None:
        super().__init__(reason, **context)
        self.sent_at = sent_at


class LookupUnavailable(SoraExtendError):
    """The provider's list of submitted requests cannot be read (or it has none): a lost submission
    cannot be found, so nothing may be concluded about it."""


class TerminalProviderError(ProviderError):
    """Not worth retrying with the same input: validation, content policy, retired model, bad key."""


class ResultExpiredError(TerminalProviderError):
    """The provider no longer holds the result of a finished request; it cannot be fetched again."""
