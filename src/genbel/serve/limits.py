"""The limits every request is held to, as ASGI middlewares and checks of request values.

* :class:`RequestLimits` (one middleware, outermost after metrics): a per-client rate limit (token
  bucket per client address, 429 E546), the request body size (413 E543, from ``Content-Length`` before
  reading, else while reading), a JSON content type for bodies (415 E552) and a deadline for the whole
  request, body upload included (408 E547);
* :func:`check_text`, :func:`check_mention_text`: text length (413 E544), a run without whitespace
  (422 E553), lone surrogates and empty text (422 E541).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import OrderedDict
from typing import Any

from genbel.errors import Errors
from genbel.serve.config import ServeConfig
from genbel.serve.errors import RequestError, send_error

#: paths outside the rate limit: cheap and polled by monitors
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})

_LONG_RUN = re.compile(r"\S+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class TokenBuckets:
    """``rate`` tokens per second up to ``burst`` per key; the least recently seen keys are forgotten
    beyond ``max_keys`` (a forgotten client starts again with a full bucket)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when a request of ``key`` may go now (a token is spent), else the seconds until it may."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class RequestLimits:
    """ASGI middleware: rate limit, body size, content type and deadline (see the module doc)."""

    def __init__(self, app: Any, config: ServeConfig, metrics: Any = None) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.buckets = TokenBuckets(config.rate_limit, config.rate_burst) if config.rate_limit > 0 else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if self.buckets is not None and path not in UNLIMITED_PATHS:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.buckets.take(client)
            if wait > 0:
                self._rejected("rate_limit")
                retry = max(wait, 0.01)
                await send_error(send, Errors.E546.format(
                    client=client, rate=self.config.rate_limit, burst=self.config.rate_burst, retry=retry,
                ), 429, {"Retry-After": str(math.ceil(retry))})
                return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self._limited(scope, receive, tracking_send), self.config.timeout_s)
        except asyncio.TimeoutError:
            self._rejected("timeout")
            if not started:
                await send_error(send, Errors.E547.format(seconds=self.config.timeout_s), 408)
        except RequestError as e:
            self._rejected(_reason(e.status))
            if not started:
                await send_error(send, str(e), e.status, e.headers)

    async def _limited(self, scope: dict, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        limit = self.config.max_body_bytes
        if method in ("POST", "PUT", "PATCH"):
            declared = headers.get("content-length")
            if declared is not None:
                if not declared.strip().isdigit():
                    raise RequestError(Errors.E541.format(field="Content-Length", reason="not a number"), 400)
                if int(declared) > limit:
                    raise RequestError(Errors.E543.format(size=int(declared), limit=limit), 413)
            ctype = headers.get("content-type", "")
            if ctype.split(";")[0].strip().lower() != "application/json":
                raise RequestError(Errors.E552.format(content_type=ctype[:100]), 415)
            body = await _read_body(receive, limit)
            receive = _replay(body)
        await self.app(scope, receive, send)

    def _rejected(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected(reason)


def _reason(status: int) -> str:
    return {413: "body_size", 415: "content_type", 400: "bad_request"}.get(status, f"http_{status}")


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(Errors.E543.format(size=size, limit=limit) + " (counted while reading)", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that keeps the connection open: wait to be cancelled
        return {"type": "http.disconnect"}

    return receive


# ------------------------------------------------------------------------------------ request values
def check_text(text: str, field: str, config: ServeConfig, *, allow_empty: bool = False) -> None:
    """Length, empty text, lone surrogates and over-long tokens of a text or context field."""
    if len(text) > config.max_text_chars:
        raise RequestError(Errors.E544.format(field=field, size=len(text), limit=config.max_text_chars), 413)
    if not allow_empty and not text.strip():
        raise RequestError(Errors.E541.format(field=field, reason="empty text"), 422)
    _check_unicode(text, field)
    longest = max((m for m in _LONG_RUN.finditer(text)), key=lambda m: m.end() - m.start(), default=None)
    if longest is not None and longest.end() - longest.start() > config.max_token_chars:
        raise RequestError(Errors.E553.format(
            field=f"{field}[{longest.start()}:{longest.end()}]", size=longest.end() - longest.start(),
            limit=config.max_token_chars,
        ), 422)


def check_mention_text(text: str, field: str, config: ServeConfig) -> None:
    if not text.strip():
        raise RequestError(Errors.E541.format(field=field, reason="empty mention"), 422)
    if len(text) > config.max_mention_chars:
        raise RequestError(Errors.E541.format(
            field=field, reason=f"a mention of {len(text):,} characters is over the limit of "
            f"{config.max_mention_chars} (genbel serve --max-mention)",
        ), 422)
    _check_unicode(text, field)


def _check_unicode(text: str, field: str) -> None:
    m = _SURROGATE.search(text)
    if m is not None:
        raise RequestError(Errors.E541.format(
            field=field, reason=f"not valid Unicode (a lone surrogate \\u{ord(m.group()):04x} at {m.start()})"
        ), 422)
