"""Fixtures of the server tests: a tiny KB with real TF-IDF linking and dictionary detection, the app
(in process, through httpx) and a live ``genbel serve`` subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept

REPO = Path(__file__).resolve().parents[2]

ABSTRACT = (
    "Familial adenomatous polyposis (FAP) is an inherited colorectal cancer syndrome. "
    "Women with breast cancer were treated with ibuprofen; one had colon cancer. In FAP, polyps are many."
)


def serve_kb() -> KnowledgeBase:
    return KnowledgeBase(
        [
            Concept("D001943", "Breast Neoplasms", ["breast cancer", "breast tumor"],
                    semantic_groups=["Disorders"], definitions=["Tumors or cancer of the human breast."]),
            Concept("D015179", "Colorectal Neoplasms", ["colorectal cancer", "colon cancer"],
                    alt_ids=["OMIM:114500"], semantic_groups=["Disorders"], parents=["D009369", "MESH:D001943"],
                    tree_numbers=["C04.588.274.476.411.307"]),
            Concept("D011125", "Adenomatous Polyposis Coli", ["familial adenomatous polyposis", "FAP"],
                    semantic_groups=["Disorders"]),
            Concept("D007052", "Ibuprofen", ["ibuprofen"], semantic_groups=["Chemicals & Drugs"]),
            Concept("UMLS-LOCAL-1", "Local concept", ["local thing"], semantic_groups=["Disorders"]),
        ],
        name="serve-tiny",
    )


def make_service(**config):
    from genbel.linkers.registry import create_linker
    from genbel.ner import create_detector
    from genbel.serve import ServeConfig, Service

    kb = serve_kb()
    detector = create_detector("dictionary", kb) if config.pop("with_detector", True) else None
    linker = config.pop("linker", None) or create_linker("tfidf", kb)
    return Service(kb=kb, linker=linker, config=ServeConfig(kb="(in memory)", linker="tfidf", **config),
                   detector=detector)


@pytest.fixture
def make_client():
    """``make_client(**config)`` → a TestClient (httpx) over a fresh app; the lifespan runs."""
    from fastapi.testclient import TestClient

    from genbel.serve import create_app

    opened = []

    def make(**config):
        client = TestClient(create_app(make_service(**config)), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``genbel serve`` process (tiny KB store, tfidf, dictionary detector) on 127.0.0.1."""
    kb_dir = tmp_path_factory.mktemp("serve") / "kb"
    serve_kb().save(kb_dir)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genbel.cli.main", "serve", "--kb", str(kb_dir), "--linker", "tfidf",
             "--detector", "dictionary", "--port", str(port), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"genbel serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"genbel serve did not start in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
