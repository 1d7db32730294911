"""'Make again' from the library: a new run of the `extend-video` deployment with a job's request (a new
idempotency key, the signed-in person as its owner), created through Prefect's REST API with the same body
`commands.api_command` prints for people to send themselves."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, SecretStr

from sora_extend.commands import DEPLOYMENT, PER_RUN, api_body
from sora_extend.errors import SoraExtendError
from sora_extend.library.entry import LibraryEntry
from sora_extend.request import ExtendRequest


class RemakeError(SoraExtendError):
    """Prefect did not start the run; the message says why, in words for the page."""


class PrefectApi(BaseModel):
    url: str
    auth: SecretStr | None = None  # PREFECT_API_AUTH_STRING, "user:password"

    @property
    def ui_url(self) -> str:
        return self.url.rstrip("/").removesuffix("/api")


class StartedRun(BaseModel):
    id: str
    name: str
    ui_url: str


def again_request(entry: LibraryEntry, owner: str | None) -> ExtendRequest:
    """The job's request for a new run: the same video, none of the last run's re-render choices, owned by
    whoever asks (or, with sign-in off, by the job's owner)."""
    fields = {**entry.request, **{field: [] for field in PER_RUN}}
    if owner is not None:
        fields["owner"] = owner
    return ExtendRequest.model_validate(fields)


def start_again(api: PrefectApi, request: ExtendRequest, storage: str, idempotency_key: str) -> StartedRun:
    """Create the flow run; a repeated key returns the run it already created (Prefect dedupes it)."""
    auth = tuple(api.auth.get_secret_value().split(":", 1)) if api.auth else None
    flow_name, deployment = DEPLOYMENT.split("/")
    body = api_body(request, storage, [], idempotency_key)
    try:
        with httpx.Client(base_url=api.url.rstrip("/"), auth=auth, timeout=30) as client:  # type: ignore[arg-type]
            found = client.get(f"/deployments/name/{flow_name}/{deployment}")
            if found.status_code == 404:
                raise RemakeError(f"the Prefect server has no deployment {DEPLOYMENT} (`prefect deploy --all` adds it)")
            found.raise_for_status()
            created = client.post(f"/deployments/{found.json()['id']}/create_flow_run", json=body)
    except httpx.HTTPError as exc:
        raise RemakeError(f"the Prefect API at {api.url} did not answer ({type(exc).__name__}: {exc})") from None
    if created.status_code not in (200, 201):
        raise RemakeError(f"Prefect refused the run: HTTP {created.status_code} {created.text[:500]}")
    run = created.json()
    return StartedRun(id=str(run["id"]), name=str(run["name"]), ui_url=f"{api.ui_url}/runs/flow-run/{run['id']}")
