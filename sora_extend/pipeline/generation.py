"""One paid generation (a clip, a still or a score), paid for at most once.

Order of operations, each step durable before the next starts:
  1. the result is already in storage under the same content key -> return it (no provider call);
  2. take the per-key lock (a concurrent run of the same job waits here, then finds step 1 true);
  3. the ledger holds a request id for the key -> resume it by id; otherwise check the budget, write
     a "submitting" entry, submit (one attempt), and record the request id the moment it exists; a
     submit whose answer was lost (or an intent left "submitting" by a dead process) is looked up in
     the provider's request list and adopted; only a confirmed absence allows submitting again. A
     provider that takes our own request id (ComfyUI) has it reserved into the "submitting" entry, so
     the look-up is by that id;
  4. poll until done; a terminal failure is recorded (only that allows a new submission later);
  5. download, verify it, re-fetch if truncated or expired;
  6. the caller stores the file and its record, then `complete` marks the ledger entry completed.
A crash anywhere leaves the job resumable: before step 3 nothing was paid, after it the id is known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sora_extend.errors import (
    LookupUnavailable,
    MediaError,
    ResultExpiredError,
    SubmitOutcomeUnknown,
    TerminalProviderError,
    TransientProviderError,
)
from sora_extend.events import emit
from sora_extend.ledger import LedgerEntry, utcnow
from sora_extend.pipeline.budget import check_submission
from sora_extend.pipeline.job import Job
from sora_extend.pricing import Quote
from sora_extend.providers.base import GenerationRequest, Outcome, Provider, Submission

logger = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3
LOOKUP_MARGIN = timedelta(minutes=5)  # clocks differ: look a little before our own submit time
LOOKUP_INTERVAL_S = 5.0
Gate = Callable[[], AbstractContextManager[object]]
RecordT = TypeVar("RecordT")
Verify = Callable[[Path, GenerationRequest], object]


@dataclass
class Generated:
    """A finished generation, downloaded and verified, not yet stored."""

    local: Path
    checked: object  # what `verify` returned (e.g. the probed media info)
    submission: Submission
    entry: LedgerEntry
    resumed: bool
    render_s: float

    def paid_fields(self) -> dict[str, Any]:
        """The fields every paid record takes from its generation: which request, what it cost, how long."""
        return {
            "endpoint": self.submission.endpoint,
            "request_id": self.submission.request_id,
            "cost_usd": self.entry.cost_usd,
            "price_source": self.entry.price_source,
            "submitted_at": self.submission.submitted_at,
            "render_s": self.render_s,
            "resumed": self.resumed,
        }


def once(job: Job, key: str, stored: Callable[[], RecordT | None], produce: Callable[[], RecordT]) -> RecordT:
    """Steps 1-2: the stored result if there is one, else `produce` it under the key's lock."""
    done = stored()
    if done is not None:
        return done
    with job.lock(key):
        done = stored()
        return done if done is not None else produce()


def generate(
    job: Job, provider: Provider, request: GenerationRequest, price: Quote, verify: Verify, gate: Gate = nullcontext
) -> Generated:
    """Steps 3-5 (call it inside `once`). `gate` is entered around the provider work only (e.g. a
    provider-wide concurrency slot)."""
    with gate():
        started = time.monotonic()
        submission, entry, resumed = _submission_for(job, provider, request, price)
        outcome = _wait(job, provider, submission, entry, request)
        local, checked = _download(job, provider, submission, outcome, request, verify)
    return Generated(local, checked, submission, entry, resumed, round(time.monotonic() - started, 3))


def complete(job: Job, generated: Generated) -> None:
    """Step 6, after the caller stored the result and its record."""
    generated.entry.state = "completed"
    job.ledger.put(generated.entry)
    generated.local.unlink(missing_ok=True)


@contextmanager
def _named(request: GenerationRequest) -> Iterator[None]:
    """Provider errors name the step they happened on (providers do not know it)."""
    try:
        yield
    except (TransientProviderError, TerminalProviderError) as exc:
        raise exc.for_step(request.label) from None


def _submit(job: Job, provider: Provider, request: GenerationRequest, entry: LedgerEntry) -> Submission:
    entry.request_id = provider.reserve_id(request)
    # One budget decision at a time per job: submissions started at once must see each other's intents.
    with job.lock(f"budget-{job.job_id}") if job.request.budget_usd is not None else nullcontext():
        check_submission(job.request, job.ledger.committed_usd(), entry.cost_usd, request.label)
        job.ledger.put(entry)  # "submitting": the intent is durable before any money can move
    try:
        with _named(request):
            submission = provider.submit(request)
    except SubmitOutcomeUnknown as exc:
        logger.warning("%s: %s; looking for it in %s's request list", request.label, exc.reason, provider.name)
        found = _lost_submission(job, provider, request, entry)
        if found is not None:
            return found
        entry.state, entry.error, entry.billed = "failed", "never accepted (the provider's list has no trace)", False
        job.ledger.put(entry)
        raise
    except (TransientProviderError, TerminalProviderError) as exc:
        if exc.status_code is not None or exc.never_sent:  # not accepted: nothing to pay
            entry.state, entry.error = "failed", exc.reason
            job.ledger.put(entry)
        raise
    entry.state, entry.request_id, entry.billed = "submitted", submission.request_id, provider.is_paid
    job.ledger.put(entry)
    emit(request.step_id, "submitted", request_id=submission.request_id, cost_usd=entry.cost_usd)
    logger.info(
        "%s: submitted to %s (%s), request id %s",
        request.label,
        submission.endpoint,
        request.mode,
        submission.request_id,
    )
    return submission


def _lost_submission(job: Job, provider: Provider, request: GenerationRequest, entry: LedgerEntry) -> Submission | None:
    """A submission whose answer never arrived (or whose process died before recording its id): adopt it
    when the provider lists it; None when the policy says submit again; raise when it says stop."""
    policy = job.settings.orphan_policy
    # A lost answer of an unpaid provider is looked up only by our own id: exact, and it costs nothing.
    if (not provider.is_paid and entry.request_id is None) or policy == "resubmit":
        logger.warning("%s: %s; submitting again", request.label, _orphan_message(entry))
        return None
    if policy == "fail":
        raise TerminalProviderError(
            _orphan_message(entry), provider=provider.name, model=provider.spec.id, step=request.label
        )
    sent_at = entry.updated_at
    waited = (utcnow() - sent_at).total_seconds()  # a dead process's intent may be long past its grace
    deadline = time.monotonic() + max(0.0, job.settings.reconcile_grace_s - waited)
    try:
        while True:
            found = provider.find_submission(request, sent_at - LOOKUP_MARGIN, entry.request_id)
            if found is not None or time.monotonic() >= deadline:
                break
            time.sleep(min(LOOKUP_INTERVAL_S, max(0.0, deadline - time.monotonic())))
    except LookupUnavailable as exc:
        raise TerminalProviderError(
            f"{_orphan_message(entry)} Looking it up failed: {exc}.",
            provider=provider.name,
            model=provider.spec.id,
            step=request.label,
        ) from None
    if found is None:
        logger.warning(
            "%s: not in %s's request list %.0f s after it was sent: it was never accepted; submitting again",
            request.label,
            provider.name,
            job.settings.reconcile_grace_s,
        )
        return None
    entry.state, entry.request_id, entry.billed = "submitted", found.request_id, provider.is_paid
    job.ledger.put(entry)
    logger.warning(
        "%s: reconciled: %s had accepted it as request %s; adopted, not submitted again",
        request.label,
        provider.name,
        found.request_id,
    )
    return found


def _orphan_message(entry: LedgerEntry) -> str:
    return (
        f"a submission to {entry.endpoint} started at {entry.updated_at:%Y-%m-%d %H:%M:%S} UTC but its request id "
        "was never recorded (the process stopped mid-submit), so it may or may not have been accepted and "
        "billed. Check the provider's dashboard; to submit again anyway set SORA_EXTEND_ORPHAN_POLICY=resubmit."
    )


def _submission_for(
    job: Job, provider: Provider, request: GenerationRequest, price: Quote
) -> tuple[Submission, LedgerEntry, bool]:
    """The request to wait for: a recorded one (resumed) or a new submission."""
    entry = job.ledger.get(request.content_key)
    if entry is not None and entry.request_id and entry.state in {"submitted", "completed"}:
        emit(request.step_id, "resumed", request_id=entry.request_id, cost_usd=entry.cost_usd)
        logger.info(
            "%s: resuming request %s (submitted %s)",
            request.label,
            entry.request_id,
            f"{entry.created_at:%Y-%m-%d %H:%M:%S} UTC",
        )
        submission = Submission(
            provider=entry.provider,
            model=entry.model,
            endpoint=entry.endpoint,
            request_id=entry.request_id,
            submitted_at=entry.created_at,
        )
        return submission, entry, True
    if entry is not None and entry.state == "submitting":
        adopted = _lost_submission(job, provider, request, entry)
        if adopted is not None:
            return adopted, entry, True
    if entry is None:
        entry = LedgerEntry(
            key=request.content_key,
            kind={"image": "keyframe", "audio": "score"}.get(request.output, "segment"),
            segment=request.index,
            take=_take_of(job, request),
            provider=provider.name,
            model=provider.spec.id,
            endpoint=provider.endpoint_for(request),
            state="submitting",
            cost_usd=price.usd,
            price_source=price.source,
        )
    else:  # an earlier request for this key failed terminally (or was orphaned): keep it in history
        job.ledger.retire(entry)
        entry.cost_usd, entry.price_source, entry.endpoint = price.usd, price.source, provider.endpoint_for(request)
    return _submit(job, provider, request, entry), entry, False


def _take_of(job: Job, request: GenerationRequest) -> int:
    state = job.state()
    takes = state.keyframe_takes if request.output == "image" else state.takes
    return takes.get(request.index, 1)


def _wait(
    job: Job, provider: Provider, submission: Submission, entry: LedgerEntry, request: GenerationRequest
) -> Outcome:
    def on_state(state: str, detail: str) -> None:
        logger.info("%s: %s %s%s", request.label, submission.request_id, state, f" ({detail})" if detail else "")
        if state.upper() in {"IN_QUEUE", "QUEUED"}:
            emit(request.step_id, "queued", request_id=submission.request_id, detail=detail)
        elif state.upper() == "IN_PROGRESS":
            emit(request.step_id, "in_progress", request_id=submission.request_id, detail=detail)

    try:
        with _named(request):
            return provider.wait(submission, on_state, job.settings.poll_timeout_s)
    except (TerminalProviderError, TransientProviderError) as exc:
        if exc.request_failed:
            # The provider finished this request unsuccessfully: record it, so a later attempt may
            # submit anew. Server-side failures (5xx) are not billed; a rejected input may be.
            # Any other error (auth, polling, timeouts) leaves the request resumable as it was.
            entry.state, entry.error = "failed", exc.reason
            entry.billed = provider.is_paid and (exc.status_code is None or exc.status_code < 500)
            job.ledger.put(entry)
            logger.warning("%s: request %s failed: %s", request.label, submission.request_id, exc.reason)
        raise


def _download(
    job: Job,
    provider: Provider,
    submission: Submission,
    outcome: Outcome,
    request: GenerationRequest,
    verify: Verify,
) -> tuple[Path, object]:
    suffix = {"image": ".png", "audio": ".audio"}.get(request.output, ".mp4")
    local = job.cache.scratch(job.job_id) / f"{request.content_key}{suffix}"
    problem = ""
    emit(request.step_id, "downloading", request_id=submission.request_id)
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with _named(request):
                provider.download(submission, outcome, request, local)
            return local, verify(local, request)
        except ResultExpiredError:
            logger.warning(
                "%s: result link expired; asking %s for it again by request id", request.label, provider.name
            )
            with _named(request):
                outcome = provider.refresh(submission)
            problem = "the result link expired"
        except MediaError as exc:
            problem = str(exc)
            logger.warning(
                "%s: download attempt %d/%d is unusable: %s", request.label, attempt, DOWNLOAD_ATTEMPTS, problem
            )
    raise TransientProviderError(
        f"could not download a complete result after {DOWNLOAD_ATTEMPTS} attempts ({problem}); "
        "the request id is recorded and the next attempt fetches it again without resubmitting",
        provider=provider.name,
        model=provider.spec.id,
        step=request.label,
        request_id=submission.request_id,
    )
