"""What people look at, in a real browser: the review page through `sora-extend serve`, and the summary
artifact in the Prefect UI. Headless Chromium is Debian's package driven by playwright (no browser download);
without it these tests skip, unless SORA_EXTEND_REQUIRE_BROWSER=1 (CI) makes a missing browser a failure."""

from __future__ import annotations

import html
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sora_extend import layout
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.report import Report, write_report
from sora_extend.pipeline.review import judge
from sora_extend.pipeline.run import graph_for, run_job
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings
from tests.browser import free_port as _free_port
from tests.browser import screenshot as _screenshot
from tests.browser import serving
from tests.browser import stop as _stop
from tests.browser import wait_for as _wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
KOREAN = "한 마리 고양이가 서울의 밤거리를 걷는다"


@pytest.fixture
def media_server(storage_url: str) -> Iterator[str]:
    """`sora-extend serve` over the test's storage: its base URL."""
    with serving(storage_url) as base:
        yield base


def _render(storage_url: str, **options: Any) -> tuple[Job, Report]:
    """A whole job without Prefect (preview renderer) and its report."""
    request = ExtendRequest(prompt=KOREAN, seconds=1, resolution="360p", storage=storage_url, **options)
    job = Job(job_ref(request))
    job.start()
    plan, outcome = run_job(job)
    assert outcome.ok, outcome.error
    return job, write_report(job, plan, graph_for(request, plan, job.state()), outcome.records, {"total_s": 1.0})


def _fonts_of(page: Any, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium drew an element's text with (DevTools protocol)."""
    session = page.context.new_cdp_session(page)
    session.send("DOM.enable")
    session.send("CSS.enable")
    root = session.send("DOM.getDocument")["root"]["nodeId"]
    node = session.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    return list(session.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"])


def test_review_page_shows_the_video_the_joins_and_every_picture(
    storage_url: str, media_server: str, browser: Any
) -> None:
    job, report = _render(storage_url, segments=3, transitions=["continuous", "cut"])
    page = browser.new_page()
    page.goto(f"{media_server}/{job.job_id}/{layout.REVIEW_PAGE}")
    page.wait_for_load_state("load")

    for image in page.locator("img").all():  # join frames load lazily, as a person scrolls to them
        image.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(images) == 2 * 2 + 1  # before/after of two joins, the contact sheet
    assert all(width > 0 for _, width in images), images

    playing = page.evaluate(
        """async () => {
            const video = document.querySelector('video');
            video.muted = true;
            await video.play();
            const start = video.currentTime;
            await new Promise(resolve => setTimeout(resolve, 700));
            return [video.readyState, start, video.currentTime, video.duration];
        }"""
    )
    ready, start, later, duration = playing
    assert ready >= 2 and later > start and duration == pytest.approx(report.manifest.final.duration, abs=0.1)  # type: ignore[union-attr]

    seams = job.store.read_json(layout.SEAMS)
    rows = page.eval_on_selector_all(
        ".join-row", "rows => rows.map(r => [Number(r.dataset.boundary), r.querySelector('.verdict').textContent])"
    )
    assert [boundary for boundary, _ in rows] == [seam["boundary"] for seam in seams] == [1, 2]
    assert [words for _, words in rows] == [judge(seam).words for seam in report.seams]
    assert rows[1][1].startswith("cut")
    markers = page.eval_on_selector_all(".timeline .join", "marks => marks.length")
    assert markers == len(seams)

    # Hangul is drawn with the page's own font, not as empty boxes in whatever font the machine has.
    page.locator(".piece summary").first.click()  # "render segment 1 again" opens its commands
    for element in ("h1", ".piece pre"):  # the title, and a command line (monospace) quoting the prompt
        assert any(font["isCustomFont"] and font["familyName"] == "Noto Sans KR" for font in _fonts_of(page, element))

    commands = page.eval_on_selector_all(".piece pre[id^=cmd-]", "blocks => blocks.map(b => b.textContent)")
    assert len(commands) == 3 and "--rerender 2" in commands[1] and f"--storage {storage_url}" in commands[1]
    assert _screenshot(page, "review-page.png").stat().st_size > 10_000
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "review-page-phone.png")
    page.close()


def test_review_page_of_a_failed_run_shows_what_exists(storage_url: str) -> None:
    request = ExtendRequest(prompt=KOREAN, segments=3, seconds=1, resolution="360p", storage=storage_url)
    job = Job(job_ref(request))
    job.start()
    plan, outcome = run_job(job, until={"segment-02"})
    graph = graph_for(request, plan, job.state())
    error = "TerminalProviderError: [segment 3, preview/preview] content policy"
    report = write_report(job, plan, graph, outcome.records, {}, error=error, failed_step="segment-03")
    page = job.store.read_bytes(layout.REVIEW_PAGE).decode()
    assert report.review_link == job.store.path(layout.REVIEW_PAGE)
    assert "No final video yet" in page and "<video" not in page and html.escape(error) in page
    states = [
        page.count(f'id="segment-0{k}" data-state="{state}"')
        for k, state in ((1, "rendered"), (2, "rendered"), (3, "failed"))
    ]
    assert states == [1, 1, 1]
    # Join 1 has both sides (from the segments themselves); join 2 has no segment 3 yet.
    assert job.store.exists(layout.review_image("join-01-before.jpg")) and job.store.exists(
        layout.review_image("join-01-after.jpg")
    )
    assert not job.store.exists(layout.review_image("join-02-after.jpg"))
    assert "segment 3: not rendered" in page and 'src="contact_sheet.png"' in page


@pytest.mark.usefixtures("prefect_harness")
def test_summary_artifact_shows_the_contact_sheet_in_the_prefect_ui(
    storage_url: str, media_server: str, browser: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    from flows.extend import extend_video

    # The UI: a real `prefect server start` over the test server's database (already migrated, so it starts
    # in seconds, meanwhile the flow runs); the UI asks PREFECT_UI_API_URL for its data.
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-ui"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-services"],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        monkeypatch.setenv("SORA_EXTEND_PUBLIC_URL", media_server)  # the storage_url fixture undoes it
        reload_settings()
        result = extend_video(request=ExtendRequest(prompt=KOREAN, segments=2, seconds=1, resolution="360p"))
        with get_client(sync_client=True) as client:
            key = ArtifactFilterKey(any_=[f"summary-{result.job_id}"])
            summary = client.read_artifacts(artifact_filter=ArtifactFilter(key=key))[0]
        assert f"{media_server}/{result.job_id}/contact_sheet.png" in str(summary.data)

        _wait_for(f"http://127.0.0.1:{port}/api/health", server)
        page = browser.new_page()
        for ui, name in (("", "prefect-ui-summary.png"), ("/v2", "prefect-ui-v2-summary.png")):
            page.goto(f"http://127.0.0.1:{port}{ui}/artifacts/artifact/{summary.id}")
            sheet = page.locator("img[src$='contact_sheet.png']")
            sheet.wait_for(timeout=60_000)
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=sheet.element_handle(), timeout=30_000
            )
            review = page.locator("a[href$='review.html']").first.get_attribute("href")
            video = page.locator("a[href$='final.mp4']").first.get_attribute("href")
            gate = page.get_by_text("Quality gate:").first.locator("..").inner_text()  # where a person reads it
            assert "retake (judge pixels): 0 piece(s) retaken, 0 kept flawed" in gate, gate
            assert httpx.get(str(review)).status_code == 200 and httpx.head(str(video)).status_code == 200
            _screenshot(page, name)
        page.close()
    finally:
        _stop(server)
