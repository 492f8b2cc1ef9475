"""Request counts, latency and batch histograms in the Prometheus text format (version 0.0.4).

``prometheus_client`` is not a dependency: the exposition format of counters, gauges and histograms
is a few lines (https://prometheus.io/docs/instrumenting/exposition_formats/), written here. Label
values are routes (templates such as ``/concepts/{id}``), never raw paths, so their number is bounded.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict
from typing import Any

#: latency buckets (seconds) of requests and linker batches
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: mentions per linker batch
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        out = []
        cumulative = 0
        for bound, n in zip([*map(_num, self.buckets), "+Inf"], self.counts):
            cumulative += n
            out.append(f"{name}_bucket{_labels({**labels, 'le': bound})} {cumulative}")
        out.append(f"{name}_sum{_labels(labels)} {_num(self.sum)}")
        out.append(f"{name}_count{_labels(labels)} {self.count}")
        return out


class Metrics:
    """The server's counters and histograms; :meth:`render` gives the ``/metrics`` text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.rejections: dict[str, int] = defaultdict(int)
        self.batch_mentions = Histogram(SIZE_BUCKETS)
        self.batch_requests = Histogram(SIZE_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.mentions_linked = 0
        self.texts_annotated = 0
        self.queue_depth: Any = lambda: 0  # set by the app to the batcher's queue length
        self.started = time.time()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def rejected(self, reason: str) -> None:
        with self._lock:
            self.rejections[reason] += 1

    def batch(self, n_mentions: int, n_requests: int, seconds: float) -> None:
        with self._lock:
            self.batch_mentions.observe(n_mentions)
            self.batch_requests.observe(n_requests)
            self.batch_seconds.observe(seconds)
            self.mentions_linked += n_mentions

    def annotated(self, n: int = 1) -> None:
        with self._lock:
            self.texts_annotated += n

    def render(self) -> str:
        with self._lock:
            out: list[str] = []
            out += _head("genbel_http_requests_total", "counter", "HTTP requests answered, by route and status.")
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f"genbel_http_requests_total{_labels({'method': method, 'route': route, 'status': status})} {n}")
            out += _head("genbel_http_request_duration_seconds", "histogram", "Time to answer a request.")
            for route, h in sorted(self.latency.items()):
                out += h.lines("genbel_http_request_duration_seconds", {"route": route})
            out += _head("genbel_rejected_requests_total", "counter", "Requests refused by a limit, by limit.")
            for reason, n in sorted(self.rejections.items()):
                out.append(f"genbel_rejected_requests_total{_labels({'reason': reason})} {n}")
            out += _head("genbel_batch_mentions", "histogram", "Mentions per linker batch.")
            out += self.batch_mentions.lines("genbel_batch_mentions", {})
            out += _head("genbel_batch_requests", "histogram", "Requests merged into one linker batch.")
            out += self.batch_requests.lines("genbel_batch_requests", {})
            out += _head("genbel_batch_duration_seconds", "histogram", "Time the linker took per batch.")
            out += self.batch_seconds.lines("genbel_batch_duration_seconds", {})
            out += _head("genbel_mentions_linked_total", "counter", "Mentions linked.")
            out.append(f"genbel_mentions_linked_total {self.mentions_linked}")
            out += _head("genbel_texts_annotated_total", "counter", "Texts annotated by /annotate.")
            out.append(f"genbel_texts_annotated_total {self.texts_annotated}")
        out += _head("genbel_queue_mentions", "gauge", "Mentions waiting for the linker.")
        out.append(f"genbel_queue_mentions {int(self.queue_depth())}")
        rss = resident_bytes()
        if rss is not None:
            out += _head("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
            out.append(f"process_resident_memory_bytes {rss}")
        out += _head("process_start_time_seconds", "gauge", "Start time of the process since the epoch.")
        out.append(f"process_start_time_seconds {_num(self.started)}")
        return "\n".join(out) + "\n"


def resident_bytes() -> int | None:
    """This process' resident memory (Linux ``/proc/self/statm``), ``None`` elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _head(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else str(int(x)) if abs(x) < 1e15 else repr(float(x))


class MetricsMiddleware:
    """ASGI middleware (outermost): counts every answered request by route template and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def counting_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request(scope.get("method", "GET"), route, status, time.perf_counter() - t0)
