"""The library: its index (local storage and S3 on moto, two writers at once), reindex, the page in
headless Chromium over `sora-extend serve` (search, filters, figures, thumbnails, axe-core), sign-in, and
the refusals of bad input. Three real jobs (preview renderer, 2 x 1 s at 360p) are rendered once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from cli.main import main
from sora_extend import layout
from sora_extend.library.entry import LibraryEntry
from sora_extend.library.index import LibraryIndex
from sora_extend.library.query import LibraryQuery, card_link, select
from sora_extend.library.reindex import reindex
from sora_extend.media.probe import probe
from sora_extend.pipeline.job import Job, job_ref
from sora_extend.pipeline.report import write_report
from sora_extend.pipeline.run import graph_for, run_job
from sora_extend.request import ExtendRequest
from sora_extend.settings import reload_settings
from sora_extend.storage.retention import purge_outputs
from tests.browser import BIN, axe_violations, free_port, screenshot, serving

pytestmark = pytest.mark.slow
KOREAN = "한 마리 고양이가 서울의 밤거리를 걷는다"
PRICED_CATALOGUE = Path(__file__).with_name("catalogue_library.toml")
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "root": "root-secret-333"}


class Library(BaseModel):
    storage: str
    folder: Path
    jobs: dict[str, str]  # name -> job id
    spend_usd: float
    rendered_s: float
    env: dict[str, str]


def _make(storage: str, prompt: str, owner: str, model: str, fail: bool = False) -> tuple[str, float, float]:
    """A real job (preview renderer): its id, what it spent and the seconds it rendered."""
    request = ExtendRequest(
        prompt=prompt, segments=2, seconds=1, resolution="360p", model=model, storage=storage, owner=owner
    )
    job = Job(job_ref(request))
    job.start()
    plan, outcome = run_job(job, until={"segment-01"} if fail else None)
    graph = graph_for(request, plan, job.state())
    error = "TerminalProviderError: [segment 2] content policy" if fail else None
    failed_step = "segment-02" if fail else None
    report = write_report(job, plan, graph, outcome.records, {"total_s": 2.0}, error=error, failed_step=failed_step)
    return job.job_id, report.manifest.cost_usd, float(sum(s.seconds for s in report.manifest.segments))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    """Two completed jobs (one Korean, one priced) and a failed one, by alice and bob."""
    folder = tmp_path_factory.mktemp("library")
    storage = f"file://{folder / 'storage'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SORA_EXTEND_STORAGE", storage)
        patch.setenv("SORA_EXTEND_WORK_DIR", str(folder / "work"))
        patch.setenv("SORA_EXTEND_CATALOGUE_FILE", str(PRICED_CATALOGUE))
        reload_settings()
        made = {
            "korean": _make(storage, KOREAN, "alice", "preview-priced"),
            "kite": _make(storage, "A red kite over the Han river", "bob", "preview"),
            "failed": _make(storage, "A lighthouse keeper at dusk", "alice", "preview-priced", fail=True),
        }
        yield Library(
            storage=storage,
            folder=folder,
            jobs={name: job_id for name, (job_id, _, _) in made.items()},
            spend_usd=sum(cost for _, cost, _ in made.values()),
            rendered_s=sum(seconds for _, _, seconds in made.values()),
            env=dict(os.environ),
        )
    reload_settings()


def _cards(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(".card", "cards => cards.map(c => c.id.slice(4))"))


# ---------------------------------------------------------------------------- the page, in Chromium


def test_library_page_search_filters_figures_and_cards(library: Library, browser: Any) -> None:
    assert library.spend_usd > 0  # the priced jobs spent through the real ledger
    with serving(library.storage, env=library.env) as base:
        page = browser.new_page()
        page.goto(f"{base}/")
        assert sorted(_cards(page)) == sorted(library.jobs.values())
        for image in page.locator(".card img").all():
            image.scroll_into_view_if_needed()
        page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete)")
        widths = page.eval_on_selector_all(".card img", "images => images.map(i => i.naturalWidth)")
        assert len(widths) == 3 and all(width == 320 for width in widths)  # three decoded posters
        figures = {key: page.inner_text(f"#stat-{key}") for key in ("videos", "success", "seconds", "spend")}
        assert figures == {
            "videos": "3",
            "success": "67%",
            "seconds": f"{library.rendered_s:g} s",
            "spend": f"${library.spend_usd:,.2f}",
        }
        assert library.rendered_s == 5 and f"${library.spend_usd:,.2f}" == "$0.15"
        # Hangul comes from the library's own font (served by serve), not boxes in a missing system font.
        fonts = page.evaluate(
            "async () => { await document.fonts.ready; return [...document.fonts].map(f => [f.family, f.status]); }"
        )
        assert ['"Sora Extend Sans KR"', "loaded"] in fonts or ["Sora Extend Sans KR", "loaded"] in fonts
        assert axe_violations(page) == []
        screenshot(page, "library.png")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "library-phone.png")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.fill("input[name=q]", "고양이")  # a word of the Korean prompt, typed and sent with the keyboard
        page.press("input[name=q]", "Enter")
        page.wait_for_url(re.compile(r"q="))
        assert _cards(page) == [library.jobs["korean"]]
        assert page.inner_text("#stat-videos") == "1" and page.inner_text("#stat-success") == "100%"

        page.goto(f"{base}/")
        page.select_option("select[name=status]", "failed")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"status=failed"))
        assert _cards(page) == [library.jobs["failed"]]
        assert "failed at segment-02" in page.inner_text(".card")

        page.goto(f"{base}/?sort=cost")
        assert _cards(page)[-1] == library.jobs["kite"]  # the only one that cost nothing comes last

        page.goto(f"{base}/")
        page.click(f"#job-{library.jobs['korean']} a.open")
        page.wait_for_url(f"**/{library.jobs['korean']}/{layout.REVIEW_PAGE}")
        assert page.inner_text("h1") and axe_violations(page) == []
        page.close()


# ---------------------------------------------------------------------------- sign-in


def test_sign_in_shows_each_person_their_own_jobs(library: Library, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    for name, password in PASSWORDS.items():
        command = [str(BIN / "sora-extend"), "users", "add", name, "--users", str(users)]
        added = subprocess.run(
            command + (["--admin"] if name == "root" else []), input=password + "\n", capture_output=True, text=True
        )
        assert added.returncode == 0, added.stderr
    assert users.stat().st_mode & 0o077 == 0  # only its owner may read the hashes
    assert not any(password in users.read_text() for password in PASSWORDS.values())
    log = tmp_path / "serve.log"
    with serving(library.storage, "--users", str(users), log=log, env=library.env) as base:
        alice = httpx.Client(base_url=base, auth=("alice", PASSWORDS["alice"]), timeout=30)
        anonymous = httpx.get(f"{base}/")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{base}/", auth=("alice", "not-her-password")).status_code == 401

        page = alice.get("/")
        assert page.status_code == 200 and "signed in as alice" in page.text
        assert library.jobs["korean"] in page.text and library.jobs["failed"] in page.text
        assert library.jobs["kite"] not in page.text
        for rel in (layout.REVIEW_PAGE, layout.FINAL, layout.MANIFEST, layout.POSTER):
            assert alice.get(f"/{library.jobs['kite']}/{rel}").status_code == 404, rel
            assert alice.get(f"/{library.jobs['korean']}/{rel}").status_code == 200, rel
        assert alice.get(f"/{library.jobs['kite']}/").status_code == 404

        admin = httpx.get(f"{base}/", auth=("root", PASSWORDS["root"]))
        assert all(job_id in admin.text for job_id in library.jobs.values())
        bob = httpx.get(f"{base}/{library.jobs['kite']}/{layout.FINAL}", auth=("bob", PASSWORDS["bob"]))
        assert bob.status_code == 200

        # Failed sign-ins from one address are cut off after five (alice's wrong one above was the first),
        # whatever the name; then even a right one waits.
        answers = [httpx.get(f"{base}/", auth=("mallory", f"guess-{n}")).status_code for n in range(5)]
        assert answers == [401] * 4 + [429]
        refused = alice.get("/")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        alice.close()
    written = log.read_text()
    assert "serving" in written and not any(word in written for word in [*PASSWORDS.values(), "guess-"])


# ---------------------------------------------------------------------------- refusals


def test_serve_refuses_other_hosts_without_users_and_a_bad_users_file(
    library: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--storage", library.storage, "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: host: 0.0.0.0 is reachable from other machines") and "--users" in error
    bad = tmp_path / "users.txt"
    bad.write_text("alice:not-a-hash\n")
    assert main(["serve", "--storage", library.storage, "--users", str(bad)]) == 2
    assert f"error: users: {bad} line 1: the password of 'alice' is not a bcrypt hash" in capsys.readouterr().err
    bad.write_text("$2b$12$" + "x" * 53 + "\n")
    assert main(["serve", "--storage", library.storage, "--users", str(bad)]) == 2
    assert "is not a user name" in capsys.readouterr().err
    nowhere = f"http://127.0.0.1:{free_port()}/api"
    assert main(["serve", "--storage", library.storage, "--prefect-api", nowhere, "--port", str(free_port())]) == 2
    assert f"{nowhere} does not answer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=done", "status: Input should be 'completed', 'failed' or 'running'"),
        ("mode=zigzag", "mode: "),
        ("model=sora9", "model: 'sora9' is not a model of the catalogue (allowed: "),
        ("from=yesterday", "from: Input should be a valid date"),
        ("page=0", "page: "),
        ("colour=red", "colour: Extra inputs are not permitted"),
    ],
)
def test_unknown_filter_values_are_a_400_naming_them(library: Library, query: str, named: str) -> None:
    from starlette.testclient import TestClient

    from sora_extend.web.media_server import build_app

    with TestClient(build_app(library.storage)) as client:
        answer = client.get(f"/?{query}")
    assert answer.status_code == 400 and named in answer.text, answer.text


# ---------------------------------------------------------------------------- the index


@pytest.fixture(params=["local", "s3"])
def index_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.getfixturevalue("s3_storage")) if request.param == "s3" else f"file://{tmp_path / 'storage'}"


def _entry(job_id: str, status: str, storage: str, cost: float = 0.0) -> LibraryEntry:
    now = datetime.now(UTC)
    return LibraryEntry(
        job_id=job_id,
        storage=storage,
        prompt=f"prompt of {job_id}",
        status=status,  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
        segments=2,
        seconds=1,
        provider="preview",
        model="preview",
        continuity="chain",
        cost_usd=cost,
        request={"prompt": f"prompt of {job_id}"},
    )


def test_two_workers_and_two_compacting_readers_at_once_lose_nothing(index_storage: str) -> None:
    """Workers write entries (every job started, then finished; one job by both), readers fold notices
    into snapshots meanwhile, racing each other: a fresh reader still sees every job, finished, with
    both owners of the shared one; no job folder exists, so none was opened."""
    jobs = 12
    done = threading.Event()
    problems: list[BaseException] = []

    def worker(number: int) -> None:
        index = LibraryIndex(index_storage)
        for job in [f"job-{number}-{k:02d}" for k in range(jobs)] + ["shared-job"]:
            index.put(_entry(job, "running", index_storage), owner=f"user{number}")
            index.put(_entry(job, "completed", index_storage, cost=0.5), owner=f"user{number}")

    def reader() -> None:
        index = LibraryIndex(index_storage)
        while not done.is_set():
            index.compact(at_least=4)

    def guarded(target: Any, *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                problems.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    readers = [guarded(reader), guarded(reader)]
    writers = [guarded(worker, 0), guarded(worker, 1)]
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert problems == []
    fresh = LibraryIndex(index_storage)
    entries = fresh.entries()
    assert len(entries) == 2 * jobs + 1
    assert {entry.status for entry in entries.values()} == {"completed"}
    assert entries["shared-job"].owners == ["user0", "user1"]
    assert len(fresh.store.listdir(layout.LIBRARY_SNAPSHOTS_DIR)) <= 2  # older snapshots are removed

    fresh.forget("job-0-00")
    assert "job-0-00" not in fresh.entries() and "job-0-00" not in LibraryIndex(index_storage).entries()


def test_reindex_rebuilds_from_the_folders_and_purge_forgets(library: Library, tmp_path: Path) -> None:
    copy = tmp_path / "storage"
    shutil.copytree(library.folder / "storage", copy)
    storage = f"file://{copy}"
    shutil.rmtree(copy / layout.LIBRARY_DIR)  # folders without any index: as left by an earlier version
    assert LibraryIndex(storage).entries() == {}
    report = reindex(storage)
    assert sorted(report.added) == sorted(library.jobs.values()) and report.jobs == 3
    entries = LibraryIndex(storage).entries()
    korean, failed = entries[library.jobs["korean"]], entries[library.jobs["failed"]]
    assert korean.owners == ["alice"] and korean.status == "completed" and korean.poster == layout.POSTER
    assert korean.length_s == pytest.approx(probe(copy / korean.job_id / layout.FINAL).duration, abs=0.01)
    assert failed.status == "failed" and failed.failed_step == "segment-02" and failed.cost_usd == 0.05
    view = select(list(entries.values()), LibraryQuery(q="고양이"))
    assert [card.job_id for card in view.cards] == [library.jobs["korean"]]

    shutil.rmtree(copy / library.jobs["kite"])
    assert reindex(storage).dropped == [library.jobs["kite"]]
    later = datetime.now(UTC) + timedelta(days=30)
    purged = purge_outputs(storage, 1, now=later)
    assert sorted(purged.deleted) == sorted([library.jobs["korean"], library.jobs["failed"]])
    assert LibraryIndex(storage).entries() == {} and (copy / layout.LIBRARY_DIR).is_dir()


# ---------------------------------------------------------------------------- queries and figures


def test_figures_search_sort_and_pages() -> None:
    now = datetime(2026, 3, 15, tzinfo=UTC)
    entries = []
    for n in range(120):
        entry = _entry(f"job-{n:03d}", ["completed", "failed", "running"][n % 3], "memory://x", cost=n / 100)
        entry.created_at = now - timedelta(days=n)
        entry.wall_s, entry.rendered_s, entry.length_s = float(n), 2.0, float(n % 7)
        entry.prompt = "비 오는 밤 HANGANG bridge" if n == 7 else entry.prompt
        entries.append(entry)
    view = select(entries, LibraryQuery(), now=now)
    assert view.total == 120 and view.pages == 3 and len(view.cards) == 50 and view.cards[0].job_id == "job-000"
    stats = view.stats
    assert (stats.videos, stats.completed, stats.failed, stats.running) == (120, 40, 40, 40)
    assert stats.success_rate == 0.5 and stats.rendered_s == 240
    assert stats.spend_usd == pytest.approx(sum(n / 100 for n in range(120)))
    assert stats.spend_month_usd == pytest.approx(sum(n / 100 for n in range(15)))  # 1-15 March
    assert stats.median_wall_s == 58.5  # completed: 0, 3, ..., 117 s
    assert [c.job_id for c in select(entries, LibraryQuery(q="hangang 오는"), now=now).cards] == ["job-007"]
    assert select(entries, LibraryQuery(page=3), now=now).cards[-1].job_id == "job-119"
    by_cost = select(entries, LibraryQuery(sort="cost", order="asc"), now=now).cards
    assert by_cost[0].job_id == "job-000" and by_cost[1].cost_usd == 0.01
    window = LibraryQuery.model_validate({"from": "2026-03-10", "to": "2026-03-12", "status": ""})
    assert [c.job_id for c in select(entries, window, now=now).cards] == ["job-003", "job-004", "job-005"]
    with pytest.raises(ValidationError):
        LibraryQuery.model_validate({"sort": "colour"})


def test_run_links_point_to_the_library_card() -> None:
    assert card_link(None, "a-b-123") is None
    assert card_link("http://media:8765", "a-b-123") == "http://media:8765/?job=a-b-123"


def test_the_same_video_for_two_people_is_one_job() -> None:
    mine = ExtendRequest(prompt=KOREAN, owner="alice")
    assert mine.job_id() == ExtendRequest(prompt=KOREAN, owner="bob").job_id() == ExtendRequest(prompt=KOREAN).job_id()
    with pytest.raises(ValidationError, match=re.escape("owner: '../x' is not a user name")):
        ExtendRequest(prompt=KOREAN, owner="../x")


def test_make_again_refuses_another_sites_form_and_says_when_prefect_is_down(library: Library) -> None:
    from starlette.testclient import TestClient

    from sora_extend.library.remake import PrefectApi
    from sora_extend.web.media_server import build_app

    app = build_app(library.storage, prefect=PrefectApi(url=f"http://127.0.0.1:{free_port()}/api"))
    job, form = library.jobs["kite"], {"key": "kite-again-12345678"}
    with TestClient(app) as client:
        forged = client.post(f"/-/again/{job}", data=form, headers={"origin": "http://elsewhere.example"})
        assert forged.status_code == 403
        down = client.post(f"/-/again/{job}", data=form, headers={"origin": "http://testserver"})
        assert down.status_code == 502 and "did not answer" in down.text
        assert client.post("/-/again/no-such-job", data=form).status_code == 404
        assert client.post(f"/-/again/{job}", data={"key": "x"}).status_code == 400


def test_the_cli_and_the_summary_artifact_link_the_library_card(library: Library) -> None:
    from cli.main import _review_line
    from sora_extend.pipeline.assemble import Manifest
    from sora_extend.pipeline.report import Report
    from sora_extend.plan import ShotPlan
    from sora_extend.settings import Settings
    from sora_extend.storage.store import JobStore
    from tasks.report import summary_markdown

    job_id, settings = library.jobs["korean"], Settings(public_url="http://media.example:8765")
    store = JobStore(library.storage, job_id, settings)
    lines = _review_line(store).splitlines()
    assert lines == [
        f"review: http://media.example:8765/{job_id}/{layout.REVIEW_PAGE}",
        f"library: http://media.example:8765/?job={job_id}",
    ]
    manifest = store.read_model(layout.MANIFEST, Manifest)
    plan = store.read_model(layout.PLAN, ShotPlan)
    assert manifest is not None and plan is not None
    request = ExtendRequest.model_validate(manifest.request)
    summary = summary_markdown(Job(job_ref(request), settings), plan, Report(manifest=manifest))
    assert f"(http://media.example:8765/?job={job_id})" in summary
