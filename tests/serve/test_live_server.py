"""A real ``genbel serve`` process on 127.0.0.1 (a free port), called over HTTP with httpx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx

from tests.serve.conftest import ABSTRACT, REPO


def test_live_server_links_annotates_and_refuses_cleanly(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as c:
        h = c.get("/health").json()
        assert h["kb"]["name"] == "serve-tiny" and h["linker"] == "tfidf" and h["annotate"] is True
        r = c.post("/link", json={"mentions": ["colon cancer", {"text": "FAP", "context": ABSTRACT}]})
        assert [x["candidates"][0]["id"] for x in r.json()["results"]] == ["D015179", "D011125"]
        ents = c.post("/annotate", json={"text": ABSTRACT}).json()["entities"]
        assert {e["id"] for e in ents} >= {"D001943", "D015179", "D007052"}
        bad = c.post("/link", content=b"{nope", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "E540"
        big = c.post("/link", content=b"x" * 1_000_001, headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "E543"
        assert "genbel_http_requests_total" in c.get("/metrics").text
        assert c.get("/").headers["content-security-policy"].startswith("default-src 'self'")


def test_live_server_answers_concurrent_clients(live_server: str) -> None:
    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server, timeout=30) as c:
            rs = await asyncio.gather(*[c.post("/link", json={"mentions": ["breast cancer", "ibuprofen"]})
                                        for _ in range(12)])
            return [r.status_code for r in rs]

    assert asyncio.run(main()) == [200] * 12


def _genbel(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "genbel.cli.main", *args], check=False, capture_output=True,
                          text=True, env=env, timeout=300)


def test_bad_settings_fail_before_serving(tmp_path) -> None:
    r = _genbel("serve", "--kb", str(tmp_path / "missing.txt"), "--linker", "tfidf", "--detector", "none")
    assert r.returncode == 2 and "[E006]" in r.stderr and "Traceback" not in r.stderr
    r = _genbel("serve", "--linker", "tfidf", "--port", "70000", "--detector", "none")
    assert r.returncode == 2 and "[E555] --port" in r.stderr


def test_workers_each_load_the_models(tmp_path) -> None:
    """``--workers 2``: uvicorn starts two processes from the factory, each answering with its own models."""
    import time

    from tests.serve.conftest import free_port, serve_kb

    kb_dir = tmp_path / "kb"
    serve_kb().save(kb_dir)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genbel.cli.main", "serve", "--kb", str(kb_dir), "--linker", "exact",
             "--detector", "none", "--port", str(port), "--workers", "2", "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "log").read_text()[-2000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "log").read_text()[-2000:]
            time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(6):
                r = c.post("/link", json={"mentions": ["colon cancer"]})
                assert r.json()["results"][0]["candidates"][0]["id"] == "D015179"
            assert c.get("/health").json()["annotate"] is False
    finally:
        proc.terminate()
        proc.wait(timeout=30)
