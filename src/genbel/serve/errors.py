"""Every error the server answers is JSON with a genbel code, never a traceback.

``{"error": {"code": "E545", "status": 413, "message": "[E545] mentions: 300 mentions is over …"}}``.
:class:`RequestError` carries the HTTP status next to the coded message from :class:`genbel.errors.Errors`;
:func:`install_error_handlers` maps FastAPI's own errors (malformed JSON, a wrong field, an unknown route)
to the same shape.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from genbel.errors import Errors, GenbelError, InputError

logger = logging.getLogger(__name__)


class RequestError(InputError):
    """A request the server refuses: the message is an ``Errors.E5xx`` text, ``status`` the HTTP status."""

    def __init__(self, message: str, status: int = 422, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def error_body(message: str, status: int) -> dict[str, Any]:
    m = re.match(r"\[(E\d{3})\] ", message)
    return {"error": {"code": m.group(1) if m else None, "status": status, "message": message}}


def error_bytes(message: str, status: int) -> bytes:
    return json.dumps(error_body(message, status)).encode()


async def send_error(send: Any, message: str, status: int, headers: dict[str, str] | None = None) -> None:
    """Answer an ASGI request with a JSON error (for middlewares that run before FastAPI)."""
    body = error_bytes(message, status)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _field(loc: tuple | list) -> str:
    """``("body", "mentions", 3, "text")`` → ``mentions[3].text``."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "MentionIn", "function-after[...]") or str(part).startswith(("function-", "tagged")):
            continue  # pydantic's union-branch names add nothing for a user
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_error(
    errors: list[dict[str, Any]], body: Any, known_fields: dict[str, list[str]], path: str = "",
) -> RequestError:
    """One clear :class:`RequestError` for FastAPI's validation errors (the first one is named)."""
    if not errors:
        return RequestError(Errors.E541.format(field="body", reason="invalid request"), 422)
    for e in errors:
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            reason = str(ctx.get("error", "invalid JSON"))
            pos = e.get("loc", ("body", 0))[-1]
            line, column = _line_column(body, pos if isinstance(pos, int) else 0)
            return RequestError(Errors.E540.format(reason=reason, line=line, column=column), 400)
    # an unknown field is the most useful thing to say; then the first other error
    for e in errors:
        if e.get("type") == "extra_forbidden":
            loc = list(e.get("loc", ()))
            name = str(loc[-1]) if loc else "?"
            parent = _field(loc[:-1])
            known = known_fields.get(f"{path}:{_shape(loc[:-1])}", [])
            return RequestError(Errors.E542.format(field=parent, name=name, known=", ".join(known) or "-"), 422)
    e = errors[0]
    loc = list(e.get("loc", ()))
    reason = str(e.get("msg", "invalid value"))
    if e.get("type") == "missing":
        reason = "missing required field"
    return RequestError(Errors.E541.format(field=_field(loc), reason=reason), 422)


def _shape(loc: list) -> str:
    """``["body", "mentions", 0]`` → ``mentions[]``: the key of :data:`known_fields`."""
    parts = [p for p in loc if p not in ("body",) and not str(p).startswith(("function-", "tagged"))
             and p not in ("str", "MentionIn")]
    return "".join("[]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(parts))


def _line_column(body: Any, pos: int) -> tuple[int, int]:
    if not isinstance(body, (bytes, str)):
        return 1, pos + 1
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    before = text[:pos]
    return before.count("\n") + 1, pos - (before.rfind("\n") + 1) + 1


def install_error_handlers(app: Any, known_fields: dict[str, list[str]]) -> None:
    """JSON answers with codes for FastAPI's and Starlette's errors and anything unexpected."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def respond(err: RequestError) -> JSONResponse:
        return JSONResponse(error_body(str(err), err.status), status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return respond(exc)

    @app.exception_handler(GenbelError)
    async def _genbel_error(request: Request, exc: GenbelError) -> JSONResponse:
        # a library error caused by the request's values (e.g. E155: a mention not in its context)
        return respond(RequestError(str(exc), 422))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(validation_error(
            list(exc.errors()), getattr(exc, "body", None), known_fields, request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            msg = Errors.E550.format(method=request.method, path=request.url.path[:200])
        elif exc.status_code == 400 and "parsing the body" in str(exc.detail):
            msg = Errors.E540.format(reason=str(exc.detail), line=1, column=1)
        else:
            msg = Errors.E541.format(field="request", reason=str(exc.detail))
        return JSONResponse(error_body(msg, exc.status_code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error answering %s %s", request.method, request.url.path)
        msg = Errors.E554.format(method=request.method, path=request.url.path[:200], kind=type(exc).__name__)
        return JSONResponse(error_body(msg, 500), status_code=500)
