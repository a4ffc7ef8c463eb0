"""Answers meant for a person's eyes: the links Berth mails or hands out (the verification
link, the ACL file link) are opened in a browser, so a browser gets a small HTML page instead
of the JSON a program gets. Which one is decided by the request's ``Accept`` header alone
(a browser prefers ``text/html``; curl, scripts and the API clients do not), so the JSON
answers of these routes are unchanged.
"""
from __future__ import annotations

from html import escape

from flask import Response, request

from berth.errors import BerthError
from berth.settings import get_settings

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Berth</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f6f8; color: #1c2530; margin: 0; }}
main {{ max-width: 34rem; margin: 12vh auto; background: #fff; border-radius: 10px;
        padding: 2rem 2.25rem; box-shadow: 0 2px 12px rgba(0, 0, 0, .08); }}
h1 {{ font-size: 1.4rem; margin: 0 0 1rem; }}
h1.ok {{ color: #1b7a3a; }} h1.problem {{ color: #b3261e; }}
p {{ line-height: 1.5; }} a {{ color: #1f5fbf; }}
</style></head>
<body><main><h1 class="{tone}">{title}</h1>{paragraphs}</main></body></html>
"""


def wants_html() -> bool:
    """Whether the caller is a browser: it ranks ``text/html`` above ``application/json``."""
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def page(title: str, *paragraphs: str, status: int = 200, ok: bool = True,
         links: tuple[tuple[str, str], ...] = ()) -> Response:
    """A self-contained page (no script, no file from elsewhere); every text is escaped."""
    body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    body += "".join(f'<p><a href="{escape(href, quote=True)}">{escape(label)}</a></p>'
                    for label, href in links)
    html = _PAGE.format(title=escape(title), tone="ok" if ok else "problem", paragraphs=body)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def home_links() -> tuple[tuple[str, str], ...]:
    base = get_settings().public_url.rstrip("/")
    return (("Sign in to the Berth console", f"{base}/login"),
            ("Berth API documentation", f"{base}/api/docs"))


def dead_link(exc: BerthError, title: str, *paragraphs: str) -> Response:
    """A link that did not work, explained to a browser with the error's status; a program
    (or a failure of Berth's own, 5xx) gets the usual JSON error."""
    if exc.status >= 500 or not wants_html():
        raise exc
    return page(title, *paragraphs, status=exc.status, ok=False, links=home_links())
