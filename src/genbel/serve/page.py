"""The web page at ``/``: one HTML file, one script and one style sheet shipped in the package
(``genbel/serve/static``), no CDN. A Content-Security-Policy header keeps the page to its own origin
(scripts, styles, requests); links to vocabulary pages open in a new tab."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: the page and its assets may only load from the server itself
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def mount_page(app: FastAPI) -> None:
    """``GET /`` (the page) and ``/static/*`` (its script and styles)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
