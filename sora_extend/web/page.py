"""What the project's pages share (the review page and the library): one way to escape text, the base
styles, the copy-button script and the templates, all inline so a page loads nothing from the internet."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template


def escape(value: object) -> str:
    """Text (or an attribute value in double quotes) as HTML: the one escaping every page uses."""
    return html.escape(str(value), quote=True)


@cache
def _resource(name: str) -> str:
    return resources.files("sora_extend.web").joinpath(name).read_text(encoding="utf-8")


def render(template: str, *, title: str, font_face: str, content: str) -> str:
    """A page from one of the templates beside this module: the shared head (title, font, base styles), the
    page's own styles and `content`, and the shared copy-button script."""
    head = Template(_resource("head.html")).substitute(title=title, font_face=font_face, base_css=_resource("base.css"))
    script = f"<script>\n{_resource('copy.js')}</script>"
    return Template(_resource(template)).substitute(head=head, content=content, copy_script=script)
