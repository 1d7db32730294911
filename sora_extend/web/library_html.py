"""The library page as HTML: the filter form, the figures over the filter, one card per job and the page
links, from a `LibraryView`. Served live by `sora-extend serve`; its links are absolute paths on that server."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args
from urllib.parse import quote

from pydantic import BaseModel

from sora_extend import layout
from sora_extend.commands import api_command, run_command
from sora_extend.library.entry import LibraryEntry
from sora_extend.library.query import LibraryQuery, LibraryView, Mode, Status
from sora_extend.library.remake import again_request
from sora_extend.web.fonts import linked_font_face
from sora_extend.web.page import escape, render

FONT_PATH = "/-/font"
AGAIN_PATH = "/-/again"


class PageContext(BaseModel):
    """Who looks, and what the page can offer them."""

    viewer: str | None = None
    signed_in: bool = False
    can_start_runs: bool = False
    token: str = ""  # a fresh part of this page's idempotency keys: a double click starts one run


def job_path(job_id: str, rel: str) -> str:
    return f"/{quote(job_id, safe='')}/{quote(rel)}"


def _options(name: str, label: str, choices: list[tuple[str, str]], chosen: str | None) -> str:
    options = "".join(
        f'<option value="{escape(value)}"{" selected" if value == (chosen or "") else ""}>{escape(words)}</option>'
        for value, words in choices
    )
    return f'<label>{escape(label)} <select name="{name}">{options}</select></label>'


def _filters(query: LibraryQuery, models: list[str]) -> str:
    any_ = [("", "any")]
    return (
        '<form class="filters" method="get" action="/" role="search" aria-label="search and filter the videos">'
        f'<label class="words">Search prompts <input type="search" name="q" value="{escape(query.q)}" '
        'placeholder="words of the prompt, any language"></label>'
        + _options("status", "Status", any_ + [(s, s) for s in get_args(Status)], query.status)
        + _options("model", "Model", any_ + [(m, m) for m in models], query.model)
        + _options("mode", "Continuity", any_ + [(m, m) for m in get_args(Mode)], query.mode)
        + f'<label>Made from <input type="date" name="from" value="{escape(query.date_from or "")}"></label>'
        f'<label>to <input type="date" name="to" value="{escape(query.date_to or "")}"></label>'
        + _options("sort", "Sort by", [("date", "date"), ("cost", "cost"), ("length", "length")], query.sort)
        + _options(
            "order", "Order", [("desc", "highest / newest first"), ("asc", "lowest / oldest first")], query.order
        )
        + '<button type="submit">Show</button> <a href="/">clear</a></form>'
    )


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _stats(view: LibraryView) -> str:
    stats = view.stats
    rate = f"{round(100 * stats.success_rate)}%" if stats.success_rate is not None else "–"
    wall = f"{stats.median_wall_s:.0f} s" if stats.median_wall_s is not None else "–"
    figures = [
        ("videos", str(stats.videos), "stat-videos"),
        ("success rate", rate, "stat-success"),
        ("seconds rendered", f"{stats.rendered_s:g} s", "stat-seconds"),
        ("spend", _money(stats.spend_usd), "stat-spend"),
        ("spend this month", _money(stats.spend_month_usd), "stat-month"),
        ("median wall time per video", wall, "stat-wall"),
    ]
    cells = "".join(f'<div><dt>{label}</dt><dd id="{key}">{escape(value)}</dd></div>' for label, value, key in figures)
    per_model = "".join(f"<li>{escape(model)}: {_money(spend)}</li>" for model, spend in stats.spend_by_model.items())
    return (
        '<section class="stats" aria-labelledby="stats-title"><h2 id="stats-title">Over this filter</h2>'
        f'<dl>{cells}</dl><p>Spend per model:</p><ul id="spend-by-model">{per_model}</ul></section>'
    )


def _status(entry: LibraryEntry) -> str:
    badge = f'<span class="status {entry.status}">{entry.status}</span>'
    if entry.status != "failed":
        return badge
    where = f"failed at {entry.failed_step}" if entry.failed_step else "failed"
    return badge + f'<p class="failed-at">{escape(where)}{": " + escape(entry.error) if entry.error else ""}</p>'


def _again(entry: LibraryEntry, context: PageContext) -> str:
    try:
        request = again_request(entry, context.viewer)
    except ValueError as exc:  # e.g. a model the catalogue has retired since
        return f'<details><summary>make again</summary><p class="error">{escape(exc)}</p></details>'
    key = f"{entry.job_id}-again-{context.token}"
    block = entry.job_id
    button = ""
    if context.can_start_runs:
        button = (
            f'<form method="post" action="{AGAIN_PATH}/{quote(entry.job_id, safe="")}">'
            f'<input type="hidden" name="key" value="{escape(key)}">'
            f'<button type="submit">make again now (Prefect run)</button></form>'
        )
    return (
        "<details><summary>make again</summary>"
        f'<div class="copy-row"><span>command line</span><button type="button" data-copy="cmd-{escape(block)}">'
        f'copy</button></div><pre id="cmd-{escape(block)}">{escape(run_command(request, entry.storage))}</pre>'
        f'<div class="copy-row"><span>Prefect API (deployment extend-video)</span><button type="button" '
        f'data-copy="api-{escape(block)}">copy</button></div>'
        f'<pre id="api-{escape(block)}">{escape(api_command(request, entry.storage, [], key))}</pre>{button}</details>'
    )


def _card(entry: LibraryEntry, context: PageContext) -> str:
    review = job_path(entry.job_id, layout.REVIEW_PAGE)
    picture = (
        f'<img src="{job_path(entry.job_id, entry.poster)}" alt="" width="320" height="180" loading="lazy">'
        if entry.poster
        else '<div class="nopic">no picture yet</div>'
    )
    facts = [
        f'made <time datetime="{entry.created_at.isoformat()}">{entry.created_at:%Y-%m-%d %H:%M} UTC</time>',
        f"length {entry.length_s:.1f} s" if entry.length_s is not None else "no video yet",
        f"{entry.segments} × {entry.seconds} s",
        f"{escape(entry.provider)}/{escape(entry.model)}",
        escape(entry.continuity),
        _money(entry.cost_usd),
    ]
    if context.signed_in and entry.owners and entry.owners != [context.viewer]:
        facts.append("for " + escape(", ".join(entry.owners)))
    download = (
        f'<p><a href="{job_path(entry.job_id, layout.FINAL)}" download>download the video</a></p>'
        if entry.video
        else ""
    )
    items = "".join(f"<li>{fact}</li>" for fact in facts)
    return (
        f'<li><article class="card" id="job-{escape(entry.job_id)}" data-status="{entry.status}">'
        f'<a class="open" href="{review}">{picture}<p class="prompt">{escape(entry.prompt)}</p></a>'
        f'<div class="about">{_status(entry)}<ul class="facts">{items}</ul>{download}{_again(entry, context)}</div>'
        "</article></li>"
    )


def _pages(view: LibraryView) -> str:
    if view.pages <= 1:
        return ""
    page = min(view.query.page, view.pages)
    back = f'<a href="{escape(view.query.url(page=page - 1))}" rel="prev">previous</a>' if page > 1 else ""
    ahead = f'<a href="{escape(view.query.url(page=page + 1))}" rel="next">next</a>' if page < view.pages else ""
    return f'<nav class="pages" aria-label="pages">{back}<span>page {page} of {view.pages}</span>{ahead}</nav>'


def render_library_page(
    view: LibraryView, models: list[str], context: PageContext, font_url: Callable[[str], str]
) -> str:
    """The page's HTML; its font comes from `font_url(characters)` on the same server."""
    who = f'<p class="who">signed in as {escape(context.viewer)}</p>' if context.signed_in else ""
    count = f"{view.total} video{'s' if view.total != 1 else ''}"
    cards = "".join(_card(entry, context) for entry in view.cards)
    listing = (
        f'<ul class="cards">{cards}</ul>'
        if cards
        else '<p class="empty">No videos here. Jobs made before the library existed appear after '
        "<code>sora-extend reindex</code>.</p>"
    )
    content = (
        f'<header class="top"><h1>Library</h1>{who}</header>{_filters(view.query, models)}{_stats(view)}'
        f'<h2 id="videos">{count}</h2>{listing}{_pages(view)}'
    )
    return render(
        "library.html", title="Sora Extend library", font_face=linked_font_face(content, font_url), content=content
    )


def render_message(title: str, message_html: str, font_url: Callable[[str], str]) -> str:
    """A short page in the library's look (a started run, a refusal)."""
    content = (
        f'<header class="top"><h1>{escape(title)}</h1></header><p>{message_html}</p>'
        '<p><a href="/">back to the library</a></p>'
    )
    return render("library.html", title=escape(title), font_face=linked_font_face(content, font_url), content=content)
