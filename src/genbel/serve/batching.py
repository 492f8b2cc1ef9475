"""Micro-batching: the mentions of requests from many clients go to the linker in one batch.

Each request puts its queries on one queue and awaits a future. One worker task takes the first
waiting request, then keeps collecting until ``max_batch`` mentions are gathered or ``max_wait``
seconds have passed since that first request arrived (10 ms by default), and runs
``linker.link(all queries, k)`` once, in a single compute thread (the linker is not called
concurrently; torch uses its own threads inside). While a batch runs, new requests queue up and
form the next batch, so under load batches grow toward ``max_batch`` and throughput approaches the
linker's batch throughput, while a lone request waits at most ``max_wait``.

A request that timed out or whose client left is skipped (its future is cancelled). When more than
``max_queue`` mentions are waiting, new requests are refused at once (429 E548) instead of queueing
without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import Errors
from genbel.serve.errors import RequestError

logger = logging.getLogger(__name__)


@dataclass
class _Item:
    queries: list[MentionQuery]
    k: int
    future: asyncio.Future
    arrived: float


class MicroBatcher:
    """Merge concurrent ``link`` calls into linker batches (see the module doc)."""

    def __init__(
        self, link: Callable[[Sequence[MentionQuery], int], list[list[Candidate]]], *,
        max_wait: float = 0.010, max_batch: int = 512, max_queue: int = 8192,
        executor: ThreadPoolExecutor | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._link = link
        self.max_wait = max_wait
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="genbel-link")
        self._own_executor = executor is None
        self._on_batch = on_batch
        self._items: deque[_Item] = deque()
        self._queued = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.last_batch_seconds = 0.05  # for a Retry-After estimate before any batch ran

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="genbel-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for item in self._items:
            if not item.future.done():
                item.future.cancel()
        self._items.clear()
        self._queued = 0
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def queued(self) -> int:
        """Mentions waiting for the linker."""
        return self._queued

    # ------------------------------------------------------------------ requests
    async def link(self, queries: list[MentionQuery], k: int) -> list[list[Candidate]]:
        """Candidates for ``queries`` (at most ``k`` each), linked together with other requests'."""
        if not queries:
            return []
        if self._task is None or self._wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        if self._queued + len(queries) > self.max_queue and self._queued > 0:
            retry = max(1.0, round(self.last_batch_seconds * (self._queued / max(1, self.max_batch) + 1), 1))
            raise RequestError(Errors.E548.format(queued=self._queued, limit=self.max_queue, retry=retry),
                               429, {"Retry-After": str(int(retry + 0.999))})
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._items.append(_Item(queries, k, future, time.monotonic()))
        self._queued += len(queries)
        self._wakeup.set()
        return await future

    async def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run other compute (mention detection) in the linker's thread, so it never competes with a
        running batch for the cores."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ------------------------------------------------------------------ the worker
    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._items:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._items[0].arrived + self.max_wait
            while self._pending_mentions() < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._take_batch()
            if not batch:
                continue
            queries = [q for item in batch for q in item.queries]
            k = max(item.k for item in batch)
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self._link, queries, k)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.future.done():
                        item.future.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - any linker failure goes to the requests, as JSON
                if len(batch) == 1:  # handed to the request (the app's handler turns it into JSON)
                    if not batch[0].future.done():
                        batch[0].future.set_exception(e)
                    continue
                # one request's mentions must not fail the others': link each request on its own
                logger.warning("a batch of %d requests failed (%s); linking them one by one", len(batch), e)
                for item in batch:
                    try:
                        part = await loop.run_in_executor(self.executor, self._link, item.queries, item.k)
                    except Exception as e1:  # noqa: BLE001
                        if not item.future.done():
                            item.future.set_exception(e1)
                    else:
                        if not item.future.done():
                            item.future.set_result([cands[:item.k] for cands in part])
                continue
            dt = time.perf_counter() - t0
            self.last_batch_seconds = dt
            if self._on_batch is not None:
                self._on_batch(len(queries), len(batch), dt)
            logger.debug("linked a batch of %d mentions from %d requests in %.3f s", len(queries), len(batch), dt)
            pos = 0
            for item in batch:
                part = results[pos:pos + len(item.queries)]
                pos += len(item.queries)
                if not item.future.done():
                    item.future.set_result([cands[:item.k] for cands in part])

    def _pending_mentions(self) -> int:
        return sum(len(i.queries) for i in self._items if not i.future.done())

    def _take_batch(self) -> list[_Item]:
        """Waiting requests in arrival order up to ``max_batch`` mentions (always at least one request;
        requests whose future is already done — timed out, client gone — are dropped)."""
        batch: list[_Item] = []
        n = 0
        while self._items:
            item = self._items[0]
            if item.future.done():
                self._items.popleft()
                self._queued -= len(item.queries)
                continue
            if batch and n + len(item.queries) > self.max_batch:
                break
            self._items.popleft()
            self._queued -= len(item.queries)
            batch.append(item)
            n += len(item.queries)
        return batch
