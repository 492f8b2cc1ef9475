"""``genbel serve``: a REST API and a web page over a KB, a linker and a mention detector.

One module per job: :mod:`~genbel.serve.app` (the FastAPI application), :mod:`~genbel.serve.routes`
(endpoints), :mod:`~genbel.serve.schemas` (request and response JSON), :mod:`~genbel.serve.service`
(the loaded models), :mod:`~genbel.serve.batching` (micro-batching many clients' mentions into one
linker batch), :mod:`~genbel.serve.limits` (body size, text length, rate limit, timeouts),
:mod:`~genbel.serve.errors` (coded JSON errors), :mod:`~genbel.serve.metrics` (Prometheus text format),
:mod:`~genbel.serve.concepts` (concept records, vocabulary links, name search), :mod:`~genbel.serve.page`
(the page and its static assets). Needs ``pip install 'genbel[serve]'``.

    from genbel.serve import ServeConfig, Service, create_app
    app = create_app(Service(kb, linker, ServeConfig()))   # any ASGI server; `genbel serve` uses uvicorn
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genbel.serve.app import create_app
    from genbel.serve.config import ServeConfig
    from genbel.serve.service import Service, load_service

__all__ = ["ServeConfig", "Service", "create_app", "load_service"]

_WHERE = {"create_app": "genbel.serve.app", "ServeConfig": "genbel.serve.config",
          "Service": "genbel.serve.service", "load_service": "genbel.serve.service"}


def __getattr__(name: str) -> Any:  # lazy: importing genbel.serve does not import fastapi
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
