"""Micro-batching: concurrent requests reach the linker as one batch, results go back to their owners."""

from __future__ import annotations

import asyncio
import threading

import pytest

from genbel.data.queries import Candidate, MentionQuery
from genbel.serve.batching import MicroBatcher
from genbel.serve.errors import RequestError


class Recorder:
    """Links by echoing: each query's candidate is its own text; records every batch it is given."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def __call__(self, queries, k):
        texts = [q.text for q in queries]
        self.batches.append(texts)
        self.threads.add(threading.current_thread().name)
        if self.fail_on in texts:
            raise ValueError(f"cannot link {self.fail_on}")
        return [[Candidate(t, t, 1.0 - i / 10) for i in range(k)] for t in texts]


def _q(*texts: str) -> list[MentionQuery]:
    return [MentionQuery(text=t) for t in texts]


def test_concurrent_requests_form_one_batch() -> None:
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_wait=0.5, max_batch=100)
        await b.start()
        try:
            return await asyncio.gather(*[b.link(_q(f"a{i}", f"b{i}"), k=1 + i % 3) for i in range(8)])
        finally:
            await b.stop()

    results = asyncio.run(main())
    assert len(rec.batches) == 1 and len(rec.batches[0]) == 16
    for i, res in enumerate(results):
        assert [c[0].concept_id for c in res] == [f"a{i}", f"b{i}"]
        assert all(len(c) == 1 + i % 3 for c in res)          # each request gets its own k
    assert rec.threads == {"genbel-link_0"}


def test_max_batch_splits_and_keeps_request_order() -> None:
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_wait=0.5, max_batch=5)
        await b.start()
        try:
            return await asyncio.gather(*[b.link(_q(*[f"m{i}.{j}" for j in range(3)]), k=1) for i in range(4)])
        finally:
            await b.stop()

    results = asyncio.run(main())
    assert [len(x) for x in rec.batches] == [3, 3, 3, 3]      # 3 + 3 > 5: one request per batch
    assert [[c[0].concept_id for c in r] for r in results] == [[f"m{i}.{j}" for j in range(3)] for i in range(4)]


def test_a_lone_request_waits_at_most_max_wait() -> None:
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_wait=0.01, max_batch=100)
        await b.start()
        try:
            first = await b.link(_q("x"), k=1)
            second = await b.link(_q("y"), k=1)
            return first, second
        finally:
            await b.stop()

    first, second = asyncio.run(main())
    assert rec.batches == [["x"], ["y"]]
    assert first[0][0].concept_id == "x" and second[0][0].concept_id == "y"


def test_a_failing_request_does_not_fail_the_others() -> None:
    rec = Recorder(fail_on="bad")

    async def main():
        b = MicroBatcher(rec, max_wait=0.5, max_batch=100)
        await b.start()
        try:
            return await asyncio.gather(b.link(_q("good1"), 1), b.link(_q("bad"), 1), b.link(_q("good2"), 1),
                                        return_exceptions=True)
        finally:
            await b.stop()

    good1, bad, good2 = asyncio.run(main())
    assert good1[0][0].concept_id == "good1" and good2[0][0].concept_id == "good2"
    assert isinstance(bad, ValueError)


def test_a_full_queue_refuses_at_once() -> None:
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_wait=0.5, max_batch=100, max_queue=4)
        await b.start()
        try:
            waiting = asyncio.ensure_future(b.link(_q("a", "b", "c"), 1))
            await asyncio.sleep(0)
            with pytest.raises(RequestError) as info:
                await b.link(_q("d", "e"), 1)
            assert info.value.status == 429 and str(info.value).startswith("[E548] ")
            return await waiting
        finally:
            await b.stop()

    assert len(asyncio.run(main())) == 3


def test_cancelled_requests_are_skipped() -> None:
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_wait=0.3, max_batch=100)
        await b.start()
        try:
            gone = asyncio.ensure_future(b.link(_q("gone"), 1))
            await asyncio.sleep(0)
            gone.cancel()
            return await b.link(_q("kept"), 1)
        finally:
            await b.stop()

    assert asyncio.run(main())[0][0].concept_id == "kept"
    assert rec.batches == [["kept"]]


def test_concurrent_http_requests_share_a_linker_batch(make_client) -> None:
    """Through the app: 8 clients at once (threads over one TestClient) land in fewer linker batches."""
    c = make_client(batch_wait_ms=1000)
    out: dict[int, list] = {}

    def call(i: int) -> None:
        r = c.post("/link", json={"mentions": ["breast cancer", "colon cancer"] if i % 2 else ["ibuprofen"]})
        out[i] = r.json()["results"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, res in out.items():
        assert [r["candidates"][0]["id"] for r in res] == (["D001943", "D015179"] if i % 2 else ["D007052"])
    metrics = c.get("/metrics").text
    n_batches = int(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("genbel_batch_mentions_count")))
    assert n_batches < 8
