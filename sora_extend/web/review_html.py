"""The review page as HTML: what a person judging a long AI video looks at, from a `ReviewPage` view.

One self-contained file (styles, a few lines of script and the font are inline; nothing is loaded from
the internet). Every media link is relative to the job folder, so the page works opened from disk, through
`sora-extend serve`, or from any static server over the storage.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, Field

from sora_extend.pipeline.review import DriftRecord, Verdict
from sora_extend.web.fonts import font_face
from sora_extend.web.page import escape, render

PieceState = Literal["rendered", "resumed", "failed", "pending"]


class Figure(BaseModel):
    label: str
    value: str


class JoinView(BaseModel):
    boundary: int = Field(..., description="Between segment `boundary` and `boundary + 1`.")
    transition: str
    at_s: float | None = Field(None, description="Where it is in the final video.")
    verdict: Verdict | None = Field(None, description="None when there is no final video to measure.")
    figures: list[Figure] = Field(default_factory=list)
    before: str | None = Field(None, description="Relative path of the last frame before the join.")
    after: str | None = Field(None, description="Relative path of the first new frame after the join.")


class TakeLine(BaseModel):
    """One take of a piece, as the quality gate judged it."""

    take: int
    in_use: bool
    passed: bool
    words: str = Field(..., description="'clean', or every flaw the judge found, in plain words.")
    judge: str
    cost_usd: float
    file: str = Field(..., description="Relative path of the take's clip or still.")
    command: str = Field("", description="The CLI command that puts this take in the video (segments).")
    api_call: str = ""


class PieceView(BaseModel):
    """A segment or a keyframe still."""

    step: str
    label: str
    state: PieceState
    prompt: str
    model: str = ""
    seconds: int | None = None
    request_id: str = ""
    cost_usd: float | None = None
    take: int = 1
    image: str | None = Field(None, description="Keyframes: the still's relative path.")
    drift: DriftRecord | None = None
    command: str = Field("", description="The CLI command that renders this piece again.")
    api_call: str = Field("", description="The same through the Prefect API.")
    gate_note: str = Field("", description="What the quality gate did with the piece, in plain words.")
    takes: list[TakeLine] = Field(default_factory=list, description="Every take the quality gate judged.")

    @property
    def verdict(self) -> TakeLine | None:
        return next((take for take in self.takes if take.in_use), None)


class ReviewPage(BaseModel):
    title: str
    language: str = "en"
    status: Literal["completed", "failed"]
    error: str | None = None
    failed_step: str | None = None
    facts: list[Figure]
    video: str | None = Field(None, description="Relative path of final.mp4, when it exists.")
    duration: float = 0.0
    joins: list[JoinView]
    segments: list[PieceView]
    keyframes: list[PieceView] = Field(default_factory=list)
    contact_sheet: str | None = None
    files: list[Figure] = Field(default_factory=list, description="label -> relative path of the job's records.")


_e = escape


def _timeline(page: ReviewPage) -> str:
    if not page.duration:
        return ""
    edges = [0.0] + [join.at_s for join in page.joins if join.at_s is not None] + [page.duration]
    share = [100 * edge / page.duration for edge in edges]
    spans = [
        f'<div class="seg" style="left:{start:.3f}%;width:{end - start:.3f}%">{index}</div>'
        for index, (start, end) in enumerate(itertools.pairwise(share), start=1)
    ]
    marks = [
        f'<button class="join {join.verdict.level if join.verdict else ""}" type="button" '
        f'style="left:{100 * join.at_s / page.duration:.3f}%" data-seek="{max(0.0, join.at_s - 1.0):.3f}" '
        f'title="join {join.boundary}: {_e(join.verdict.words if join.verdict else join.transition)}" '
        f'aria-label="play join {join.boundary}"></button>'
        for join in page.joins
        if join.at_s is not None
    ]
    return (
        f'<div class="timeline" role="group" aria-label="segments and joins">{"".join(spans + marks)}'
        '<div class="head"></div></div>'
        '<div class="legend">Segments numbered; the marks are the joins (click one to play it from 1 s before).</div>'
    )


def _video(page: ReviewPage) -> str:
    if page.video is None:
        where = f" at {_e(page.failed_step)}" if page.failed_step else ""
        return f'<div class="missing">No final video yet: the run stopped{where}. What exists so far is below.</div>'
    return (
        f'<video controls playsinline preload="metadata" src="{_e(page.video)}"></video>{_timeline(page)}'
        f'<p class="legend"><a href="{_e(page.video)}" download>download the video</a></p>'
    )


def _join(join: JoinView) -> str:
    frames = []
    sides = ((join.before, f"end of segment {join.boundary}"), (join.after, f"segment {join.boundary + 1}"))
    for path, caption in sides:
        if path:
            frames.append(
                f'<figure><img src="{_e(path)}" alt="{_e(caption)}" loading="lazy">'
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
        else:
            frames.append(f'<figure><div class="missing">{_e(caption)}: not rendered</div></figure>')
    verdict = (
        f'<p class="verdict {join.verdict.level}">{_e(join.verdict.words)}</p>'
        if join.verdict
        else '<p class="verdict unmeasured">not measured (no final video)</p>'
    )
    figures = "".join(f"<dt>{_e(f.label)}</dt><dd>{_e(f.value)}</dd>" for f in join.figures)
    play = (
        f'<p><button type="button" data-seek="{max(0.0, join.at_s - 1.0):.3f}">play the join</button></p>'
        if join.at_s is not None
        else ""
    )
    return (
        f'<section class="join-row" id="join-{join.boundary}" data-boundary="{join.boundary}">{"".join(frames)}'
        f'<div class="about"><h3>Join {join.boundary} → {join.boundary + 1} · {_e(join.transition)}</h3>'
        f'{verdict}<dl class="figures">{figures}</dl>{play}</div></section>'
    )


def _drift(drift: DriftRecord) -> str:
    # Bars are scaled so that a full bar is a change anyone would see (10 Lab units; SSIM down to 0.5).
    rows = (
        ("colour", min(1.0, drift.colour / 10), f"{drift.colour:.2f}"),
        ("structure", min(1.0, drift.structure / 0.5), f"{drift.structure:.3f}"),
        ("sharpness", min(1.0, abs(1 - drift.sharpness_ratio)), f"{drift.sharpness_ratio:.2f}x"),
    )
    cells = "".join(
        f'<span>{name}</span><div class="bar"><span style="width:{100 * share:.1f}%"></span></div>'
        f'<span class="num">{text}</span>'
        for name, share, text in rows
    )
    return f'<div class="drift" title="drift from segment 1">{cells}</div>'


def _piece(piece: PieceView, language: str) -> str:
    meta = [f"model <code>{_e(piece.model)}</code>" if piece.model else ""]
    if piece.seconds:
        meta.append(f"{piece.seconds} s")
    if piece.request_id:
        meta.append(f"request <code>{_e(piece.request_id)}</code>")
    if piece.cost_usd is not None:
        meta.append(f"${piece.cost_usd:.2f}")
    if piece.take > 1:
        meta.append(f"take {piece.take}")
    image = f'<img class="still" src="{_e(piece.image)}" alt="{_e(piece.label)}" loading="lazy">' if piece.image else ""
    verdict = piece.verdict
    judged = ""
    if verdict is not None:
        kind = "passed" if verdict.passed else "flawed"
        judged = f'<p class="judged {kind}">{"passed" if verdict.passed else "flawed"}: {_e(piece.gate_note)}</p>'
    takes = _takes(piece) if len(piece.takes) > 1 or (verdict and not verdict.passed) else ""
    drift = _drift(piece.drift) if piece.drift else ""
    redo = ""
    if piece.command:
        redo = (
            f"<details><summary>render {_e(piece.label.lower())} again</summary>"
            f"{_copyable(f'cmd-{piece.step}', 'command line', piece.command)}"
            f"{_copyable(f'api-{piece.step}', 'Prefect API (deployment extend-video)', piece.api_call)}</details>"
        )
    return (
        f'<section class="piece" id="{_e(piece.step)}" data-state="{piece.state}"><header>'
        f'<h3>{_e(piece.label)}</h3><span class="state {piece.state}">{piece.state}</span></header>'
        f'<div class="meta">{"".join(f"<span>{item}</span>" for item in meta if item)}</div>{judged}{image}'
        f'<p class="prompt" lang="{_e(language)}">{_e(piece.prompt)}</p>{drift}{takes}{redo}</section>'
    )


def _copyable(block: str, label: str, text: str) -> str:
    return (
        f'<div class="copy-row"><span>{_e(label)}</span><button type="button" data-copy="{_e(block)}">copy</button>'
        f'</div><pre id="{_e(block)}">{_e(text)}</pre>'
    )


def _takes(piece: PieceView) -> str:
    """Every take with what the judge found, a link to it, and how to put another one in the video."""
    rows = []
    for take in piece.takes:
        state = "in the video" if take.in_use else ("passed" if take.passed else "flawed")
        link = f'<a href="{_e(take.file)}">take {take.take}</a>'
        use = ""
        if take.command and not take.in_use:
            block = f"use-{piece.step}-take{take.take}"
            use = (
                f"<details><summary>use take {take.take} instead</summary>"
                f"{_copyable(f'{block}-cmd', 'command line (merges again, renders nothing)', take.command)}"
                f"{_copyable(f'{block}-api', 'Prefect API (deployment extend-video)', take.api_call)}</details>"
            )
        rows.append(
            f'<li class="take {"used" if take.in_use else ""}" data-take="{take.take}">{link} '
            f'<span class="take-state {"passed" if take.passed else "flawed"}">{state}</span> '
            f'<span>{_e(take.words)}</span> <span class="num">${take.cost_usd:.2f} · {_e(take.judge)}</span>{use}</li>'
        )
    return f'<ol class="takes" aria-label="takes of {_e(piece.label.lower())}">{"".join(rows)}</ol>'


def render_review_page(page: ReviewPage) -> str:
    """The page's HTML (the font inside is cut to the characters it uses)."""
    badge = f'<span class="status {page.status}">{page.status}</span>'
    facts = "".join(f"<li>{_e(f.label)} <b>{_e(f.value)}</b></li>" for f in page.facts)
    parts = [
        f'<header><h1 lang="{_e(page.language)}">{_e(page.title)}</h1>{badge}<ul class="facts">{facts}</ul></header>',
    ]
    if page.error:
        where = f"{_e(page.failed_step)}: " if page.failed_step else ""
        parts.append(
            f'<div class="error">{where}{_e(page.error)}<br>Every finished piece is kept: run the same command '
            "again to resume.</div>"
        )
    parts += ["<h2>Video</h2>", _video(page)]
    if page.joins:
        parts += ["<h2>Joins</h2>", *(_join(join) for join in page.joins)]
    parts += ["<h2>Segments</h2>", *(_piece(piece, page.language) for piece in page.segments)]
    if page.keyframes:
        parts += ["<h2>Keyframes</h2>", *(_piece(piece, page.language) for piece in page.keyframes)]
    if page.contact_sheet:
        parts += [
            "<h2>Contact sheet</h2>",
            f'<img class="sheet" src="{_e(page.contact_sheet)}" alt="first and last frame of every segment">',
        ]
    if page.files:
        links = " · ".join(f'<a href="{_e(f.value)}">{_e(f.label)}</a>' for f in page.files)
        parts.append(f"<footer>Records: {links}</footer>")
    content = "\n".join(parts)
    return render("review.html", title=_e(page.title), font_face=font_face(page.title + content), content=content)
