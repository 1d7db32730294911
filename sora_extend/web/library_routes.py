"""The library on `sora-extend serve`: the page at `/`, its font, 'make again', and who may open which job
folder. Everything a viewer is not allowed to see is answered exactly like something that does not exist."""

from __future__ import annotations

import re
import secrets
import threading
from urllib.parse import parse_qs, quote, urlsplit

import anyio.to_thread
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from sora_extend.errors import InputError
from sora_extend.library.index import LibraryIndex
from sora_extend.library.query import LibraryQuery, select
from sora_extend.library.remake import PrefectApi, RemakeError, again_request, start_again
from sora_extend.request import explain
from sora_extend.web.fonts import font_file
from sora_extend.web.library_html import FONT_PATH, PageContext, render_library_page, render_message
from sora_extend.web.page import escape
from sora_extend.web.signin import Viewer

MAX_FONT_CHARACTERS = 4000
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._-]{8,200}")
PAGE_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def font_url(characters: str) -> str:
    return f"{FONT_PATH}?text={quote(characters)}"


class Library:
    def __init__(self, index: LibraryIndex, signed_in: bool, prefect: PrefectApi | None) -> None:
        self.index = index
        self.signed_in = signed_in
        self.prefect = prefect
        self._opened: set[tuple[str, str]] = set()  # (viewer, job) pairs already allowed: ownership only grows
        self._lock = threading.Lock()

    def may_open(self, viewer: Viewer, job_id: str) -> bool:
        if viewer.admin:
            return True
        assert viewer.name is not None
        with self._lock:
            if (viewer.name, job_id) in self._opened:
                return True
        entry = self.index.entries().get(job_id)
        if entry is None or not viewer.sees(entry.owners):
            return False
        with self._lock:
            self._opened.add((viewer.name, job_id))
        return True

    def page(self, request: Request, viewer: Viewer) -> Response:
        try:
            query = LibraryQuery.model_validate(dict(request.query_params))
        except ValidationError as exc:
            return PlainTextResponse("\n".join(explain(exc, LibraryQuery)) + "\n", status_code=400)
        entries = [entry for entry in self.index.entries().values() if viewer.sees(entry.owners)]
        view = select(entries, query)
        models = sorted({entry.model for entry in entries} | ({query.model} if query.model else set()))
        context = PageContext(
            viewer=viewer.name,
            signed_in=self.signed_in,
            can_start_runs=self.prefect is not None,
            token=secrets.token_hex(6),
        )
        return HTMLResponse(render_library_page(view, models, context, font_url), headers=PAGE_HEADERS)

    def font(self, request: Request) -> Response:
        characters = request.query_params.get("text", "")
        if not characters or len(characters) > MAX_FONT_CHARACTERS:
            return PlainTextResponse(f"text: 1-{MAX_FONT_CHARACTERS} characters", status_code=400)
        # The same characters always give the same font, so browsers may keep it.
        headers = {"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"}
        return Response(font_file(characters), media_type="font/otf", headers=headers)

    async def again(self, request: Request, viewer: Viewer) -> Response:
        """POST /-/again/<job-id>: start a run with the job's request, then link it in the Prefect UI."""
        if not _same_origin(request):
            return PlainTextResponse("refused: the form was not sent from this library", status_code=403)
        # The form is urlencoded (a browser's default for method="post"); one short field, no upload.
        body = (await request.body())[:4096].decode("utf-8", errors="replace")
        key = parse_qs(body).get("key", [""])[0]
        if not IDEMPOTENCY_KEY.fullmatch(key):
            return PlainTextResponse("key: missing or malformed (allowed: 8-200 letters, digits, . _ -)", 400)
        job_id = request.path_params["job"]
        return await anyio.to_thread.run_sync(self._start_again, viewer, job_id, key)

    def _start_again(self, viewer: Viewer, job_id: str, key: str) -> Response:
        assert self.prefect is not None
        entry = self.index.entries().get(job_id)
        if entry is None or not viewer.sees(entry.owners):
            return PlainTextResponse("not found", status_code=404)
        try:
            request = again_request(entry, viewer.name)
            run = start_again(self.prefect, request, entry.storage, key)
        except (InputError, ValidationError) as exc:
            return PlainTextResponse("\n".join(explain(exc)) + "\n", status_code=400)
        except RemakeError as exc:
            page = render_message("The run did not start", escape(exc), font_url)
            return HTMLResponse(page, status_code=502, headers=PAGE_HEADERS)
        link = f'<a id="run-link" href="{escape(run.ui_url)}">{escape(run.name)}</a>'
        message = f"Started {link} in the Prefect UI: {escape(entry.prompt)}"
        return HTMLResponse(render_message("Run started", message, font_url), headers=PAGE_HEADERS)


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from; another site's page must not start paid runs with the
    credentials the browser remembers for this one. Clients that send no Origin (curl) are not browsers."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    return urlsplit(origin).netloc == request.headers.get("host", "")
