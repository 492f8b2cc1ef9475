"""The FastAPI application: routes, middlewares (metrics, limits), error handlers, the page at ``/``.

``create_app(service)`` builds it around loaded models (tests build a :class:`Service` from a tiny KB
and linker); ``app_from_environment()`` is the factory each ``genbel serve --workers N`` worker calls
(the settings come in ``$GENBEL_SERVE_CONFIG``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from genbel._version import __version__
from genbel.serve.config import CONFIG_ENV, ServeConfig
from genbel.serve.errors import install_error_handlers
from genbel.serve.limits import RequestLimits
from genbel.serve.metrics import MetricsMiddleware
from genbel.serve.page import mount_docs, mount_page
from genbel.serve.routes import annotate_router, router
from genbel.serve.schemas import KNOWN_FIELDS
from genbel.serve.service import Service, load_service

DESCRIPTION = """Biomedical entity linking as a service: link given mentions (`POST /link`), find and link
the mentions of a raw text (`POST /annotate`, when the server has a mention detector), look concepts up
(`GET /concepts/{id}`, `GET /search`). Every error is JSON with a genbel code:
`{"error": {"code": "E545", "status": 413, "message": "[E545] …"}}`."""


def create_app(service: Service) -> FastAPI:
    """The application serving ``service`` (whose models are already loaded)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.batcher.start()
        try:
            yield
        finally:
            await service.batcher.stop()

    app = FastAPI(title="genbel", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # /docs is served offline by mount_docs
    app.state.service = service
    app.include_router(router)
    if service.detector is not None:
        app.include_router(annotate_router)
    mount_page(app)
    mount_docs(app)
    install_error_handlers(app, KNOWN_FIELDS)
    # added last = outermost: metrics see every answer, limits run before routing and body parsing
    app.add_middleware(RequestLimits, config=service.config, metrics=service.metrics)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def app_from_environment() -> FastAPI:
    """The factory of ``genbel serve --workers N``: each worker process loads the models itself."""
    config = ServeConfig.from_json(os.environ[CONFIG_ENV])
    return create_app(load_service(config))
