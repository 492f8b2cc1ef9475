"""The web page at ``/``: one HTML file, one script and one style sheet shipped in the package
(``genbel/serve/static``), no CDN. A Content-Security-Policy header keeps the page to its own origin
(scripts, styles, requests); links to vocabulary pages open in a new tab.

The API documentation at ``/docs`` is Swagger UI served from the ``swagger-ui-bundle`` package (the
``serve`` extra) instead of FastAPI's default CDN, so it works offline too."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
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


def mount_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI over ``/openapi.json`` with its assets under ``/docs-assets``
    (create the app with ``docs_url=None, redoc_url=None``: FastAPI's own pages load from a CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js", swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
