"""The API in process (FastAPI's TestClient, i.e. httpx against the ASGI app) with a real tiny KB,
the TF-IDF linker and the dictionary detector."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest

from genbel.data.queries import Candidate
from genbel.linkers.base import Linker
from tests.serve.conftest import ABSTRACT


def assert_error(resp, status: int, code: str, *words: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert err["code"] == code and err["status"] == status
    assert err["message"].startswith(f"[{code}] ")
    assert "Traceback" not in resp.text
    for w in words:
        assert w in err["message"], err["message"]
    return err


# ----------------------------------------------------------------------------------------- endpoints
def test_link_strings_and_mentions_in_context(client) -> None:
    r = client.post("/link", json={"mentions": [
        "breast cancer",
        {"text": "FAP", "context": ABSTRACT},                      # first occurrence; abbreviation written out
        {"text": "colon cancer", "context": ABSTRACT, "start": ABSTRACT.index("colon"),
         "end": ABSTRACT.index("colon") + 12, "type": "Disease"},
    ], "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kb"] == "serve-tiny" and body["linker"] == "tfidf"
    first, fap, colon = body["results"]
    assert first["candidates"][0]["id"] == "D001943"
    assert first["candidates"][0]["name"] == "Breast Neoplasms"          # the preferred name
    assert first["candidates"][0]["matched"] == "breast cancer"
    assert first["candidates"][0]["url"] == "https://meshb.nlm.nih.gov/record/ui?ui=D001943"
    assert len(first["candidates"]) == 2
    assert (fap["start"], fap["end"]) == (ABSTRACT.index("FAP"), ABSTRACT.index("FAP") + 3)
    assert fap["linked_as"] == "Familial adenomatous polyposis"
    assert fap["candidates"][0]["id"] == "D011125"
    assert colon["type"] == "Disorders" and colon["candidates"][0]["id"] == "D015179"


def test_annotate_finds_offsets_types_and_concepts(client) -> None:
    r = client.post("/annotate", json={"text": ABSTRACT, "k": 3})
    assert r.status_code == 200, r.text
    ents = r.json()["entities"]
    by_text = {e["text"]: e for e in ents}
    for e in ents:
        assert ABSTRACT[e["start"]:e["end"]] == e["text"]
    assert by_text["breast cancer"]["id"] == "D001943"
    assert by_text["breast cancer"]["name"] == "Breast Neoplasms"
    assert by_text["breast cancer"]["type"] == "Disorders"
    assert by_text["ibuprofen"]["type"] == "Chemicals & Drugs"
    assert by_text["ibuprofen"]["id"] == "D007052"
    assert by_text["colorectal cancer"]["id"] == "D015179"
    assert 1 <= len(by_text["colorectal cancer"]["candidates"]) <= 3
    assert r.json()["text_length"] == len(ABSTRACT)


def test_annotate_is_absent_without_a_detector(make_client) -> None:
    c = make_client(with_detector=False)
    assert_error(c.post("/annotate", json={"text": ABSTRACT}), 404, "E550", "/annotate")
    assert c.get("/health").json()["annotate"] is False
    assert "/annotate" not in c.get("/openapi.json").json()["paths"]


def test_concepts_by_main_or_alternate_id(client) -> None:
    c = client.get("/concepts/D015179").json()
    assert c["name"] == "Colorectal Neoplasms" and "colon cancer" in c["synonyms"]
    assert c["alt_urls"] == {"OMIM:114500": "https://omim.org/entry/114500"}
    assert client.get("/concepts/OMIM:114500").json()["id"] == "D015179"
    # parents: one in the KB (by an alternate spelling of its id: named, main id), one not in it (id only)
    assert c["parents"] == [
        {"id": "D009369", "name": None, "url": "https://meshb.nlm.nih.gov/record/ui?ui=D009369"},
        {"id": "D001943", "name": "Breast Neoplasms", "url": "https://meshb.nlm.nih.gov/record/ui?ui=D001943"},
    ]
    assert c["tree_numbers"] == ["C04.588.274.476.411.307"]
    assert client.get("/concepts/D001943").json()["parents"] == []
    assert client.get("/concepts/MESH:D001943").json()["definitions"] == ["Tumors or cancer of the human breast."]
    assert client.get("/concepts/UMLS-LOCAL-1").json()["url"] is None
    assert_error(client.get("/concepts/D999999"), 404, "E549", "D999999", "serve-tiny")


def test_search_ranks_exact_then_prefix_then_contained(client) -> None:
    hits = client.get("/search", params={"q": "colon cancer"}).json()["results"]
    assert hits[0]["id"] == "D015179" and hits[0]["matched"] == "colon cancer"
    ids = [h["id"] for h in client.get("/search", params={"q": "cancer"}).json()["results"]]
    assert set(ids) == {"D001943", "D015179"}
    assert client.get("/search", params={"q": "nothing like it"}).json()["results"] == []
    assert_error(client.get("/search", params={"q": "x", "limit": 0}), 422, "E541", "limit")
    assert_error(client.get("/search"), 422, "E541", "q")


def test_health_metrics_and_openapi(client) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["kb"]["concepts"] == 5 and h["annotate"] is True
    client.post("/link", json={"mentions": ["breast cancer", "ibuprofen"]})
    client.post("/link", content=b"{", headers={"content-type": "application/json"})
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = text.text
    assert re.search(r'^genbel_http_requests_total\{method="POST",route="/link",status="200"\} 1$', m, re.MULTILINE)
    assert re.search(r'^genbel_http_requests_total\{method="POST",route="/link",status="400"\} 1$', m, re.MULTILINE)
    assert re.search(r'^genbel_http_request_duration_seconds_bucket\{route="/link",le="\+Inf"\} 2$', m, re.MULTILINE)
    assert re.search(r"^genbel_mentions_linked_total 2$", m, re.MULTILINE)
    assert re.search(r'^genbel_batch_mentions_bucket\{le="2"\} 1$', m, re.MULTILINE)
    assert re.search(r"^process_resident_memory_bytes \d+$", m, re.MULTILINE)
    # every sample line is NAME{labels} VALUE, every family has HELP and TYPE
    for line in m.splitlines():
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? [0-9.e+-]+', line), line
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/link", "/annotate", "/concepts/{concept_id}", "/search", "/health", "/metrics"} <= set(paths)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()  # offline: assets from the server
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_page_and_assets_are_served_from_the_package_only(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/", "/static/app.js", "/static/app.css"):
        text = client.get(path).text
        # no CDN: nothing is fetched from another origin (links to vocabulary pages come from the API)
        assert not re.search(r"(src|href)=[\"']https?://", text), path
        assert "//cdn" not in text and "googleapis" not in text
    assert_error(client.get("/static/../../pyproject.toml"), 404, "E550")
    assert_error(client.get("/static/%2e%2e/%2e%2e/pyproject.toml"), 404, "E550")


# ----------------------------------------------------------------------------------------- bad requests
def test_malformed_json_unknown_fields_and_wrong_types(client) -> None:
    assert_error(client.post("/link", content=b'{"mentions": [', headers={"content-type": "application/json"}),
                 400, "E540", "line 1")
    assert_error(client.post("/link", json={"mentions": ["x"], "kk": 3}), 422, "E542", "'kk'", "mentions")
    assert_error(client.post("/link", json={"mentions": [{"text": "x", "ctx": "y"}]}), 422, "E542",
                 "mentions[0]", "'ctx'", "context")
    assert_error(client.post("/link", json={"mentions": "breast cancer"}), 422, "E541", "mentions")
    assert_error(client.post("/link", json={"mentions": ["x"], "k": "5"}), 422, "E541", "k")
    assert_error(client.post("/link", json={"mentions": ["x"], "k": 0}), 422, "E541", "k")
    assert_error(client.post("/link", json={}), 422, "E541", "mentions", "missing")
    assert_error(client.post("/link", json=[1, 2]), 422, "E541")
    assert_error(client.post("/link", content=b"mentions=x", headers={"content-type": "text/plain"}),
                 415, "E552", "text/plain")
    assert_error(client.post("/annotate", json={"text": ABSTRACT, "mentions": []}), 422, "E542", "text")


def test_empty_text_and_mentions(client) -> None:
    assert_error(client.post("/annotate", json={"text": "   "}), 422, "E541", "empty text")
    assert_error(client.post("/link", json={"mentions": []}), 422, "E541", "empty list")
    assert_error(client.post("/link", json={"mentions": ["  "]}), 422, "E541", "mentions[0]", "empty")


def test_offsets_and_context_must_agree(client) -> None:
    assert_error(client.post("/link", json={"mentions": [{"text": "gout", "context": ABSTRACT}]}),
                 422, "E551", "'gout' does not occur")
    assert_error(client.post("/link", json={"mentions": [{"text": "FAP", "context": ABSTRACT, "start": 0, "end": 3}]}),
                 422, "E551", "context[0:3] is 'Fam'")
    assert_error(client.post("/link", json={"mentions": [{"text": "FAP", "context": ABSTRACT, "start": 5}]}),
                 422, "E551", "both start and end")
    assert_error(client.post("/link", json={"mentions": [{"text": "FAP", "start": 0, "end": 3}]}),
                 422, "E551", "without a context")
    assert_error(client.post("/link", json={"mentions": [{"text": "FAP", "context": "FAP", "start": 2, "end": 9}]}),
                 422, "E551", "not inside")
    assert_error(client.post("/link", json={"mentions": [{"text": "FAP", "type": "Starship"}]}), 422, "E250",
                 "Starship")


def test_size_limits(make_client) -> None:
    c = make_client(max_body_bytes=2000, max_text_chars=500, max_mentions=3, max_mention_chars=20,
                    max_token_chars=40)
    big = {"mentions": ["breast cancer " * 200]}
    assert_error(c.post("/link", json=big), 413, "E543", "2000 bytes")
    # a chunked body (no Content-Length) is counted while it is read

    def chunks():
        yield b'{"mentions": ["'
        for _ in range(100):
            yield b"x" * 100
        yield b'"]}'

    assert_error(c.post("/link", content=chunks(), headers={"content-type": "application/json"}), 413, "E543",
                 "while reading")
    assert_error(c.post("/annotate", json={"text": "word " * 101}), 413, "E544", "text", "500")
    assert_error(c.post("/link", json={"mentions": ["a", "b", "c", "d"]}), 413, "E545", "4 mentions", "3")
    assert_error(c.post("/link", json={"mentions": ["a" * 21]}), 422, "E541", "21 characters")
    assert_error(c.post("/annotate", json={"text": "a " + "x" * 41}), 422, "E553", "text[2:43]", "41")
    assert_error(c.post("/link", content=b'{"mentions": ["a\\ud800b"]}', headers={"content-type": "application/json"}),
                 422, "E541", "surrogate")
    assert c.post("/link", json={"mentions": ["breast cancer"]}).status_code == 200


def test_path_like_strings_are_only_text(client, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("breast cancer")
    for s in (str(secret), "../../../etc/passwd", "file:///etc/passwd", "C:\\Windows\\win.ini", "~/.ssh/id_rsa"):
        r = client.post("/link", json={"mentions": [s]})
        assert r.status_code == 200 and r.json()["results"][0]["text"] == s
        r = client.post("/annotate", json={"text": s})
        assert r.status_code == 200 and r.json()["entities"] == []   # the file's content is never read
        assert_error(client.get("/concepts/" + quote(s, safe="")), 404, "E549")
    assert_error(client.get("/concepts/..%2F..%2Fetc%2Fpasswd"), 404, "E549")


def test_rate_limit_per_client(make_client) -> None:
    c = make_client(rate_limit=0.5, rate_burst=2)
    ok = [c.get("/search", params={"q": "cancer"}).status_code for _ in range(2)]
    assert ok == [200, 200]
    err = assert_error(c.get("/search", params={"q": "cancer"}), 429, "E546", "testclient", "burst 2")
    assert "retry after" in err["message"]
    assert c.get("/search", params={"q": "cancer"}).headers["retry-after"] in ("1", "2")
    assert c.get("/health").status_code == 200          # health and metrics are outside the limit
    assert 'genbel_rejected_requests_total{reason="rate_limit"} 2' in c.get("/metrics").text


class _SlowLinker(Linker):
    """TF-IDF that takes its time, for the deadline test."""

    name = "slow-tfidf"

    def __init__(self, inner: Linker, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def link(self, queries, k: int = 5) -> list[list[Candidate]]:
        time.sleep(self.seconds)
        return self.inner.link(queries, k=k)


def test_timeout_is_408_and_the_server_goes_on(make_client) -> None:
    from genbel.linkers.registry import create_linker
    from tests.serve.conftest import serve_kb

    c = make_client(timeout_s=0.2, linker=_SlowLinker(create_linker("tfidf", serve_kb()), 0.6))
    assert_error(c.post("/link", json={"mentions": ["breast cancer"]}), 408, "E547", "0.2 s")
    assert c.get("/health").status_code == 200
    assert 'genbel_rejected_requests_total{reason="timeout"} 1' in c.get("/metrics").text


@pytest.mark.slow
def test_annotate_with_the_shipped_default_detector_over_the_bundled_kb() -> None:
    """The real defaults of /annotate: the shipped tagger + dictionary over the bundled MEDIC (linker tfidf)."""
    from fastapi.testclient import TestClient

    from genbel.serve import ServeConfig, create_app, load_service

    svc = load_service(ServeConfig(kb="default", linker="tfidf", detector="default"))
    text = ("Aspartylglucosaminuria (AGU) is a rare disorder of glycoprotein metabolism. "
            "AGU is inherited as an autosomal recessive trait.")
    with TestClient(create_app(svc)) as c:
        body = c.post("/annotate", json={"text": text, "k": 3}).json()
    assert body["detector"] == "default"
    agu = [e for e in body["entities"] if e["text"] == "AGU"]
    assert len(agu) == 2 and all(e["linked_as"] == "Aspartylglucosaminuria" for e in agu)
    # the main id is the MeSH one, as CTD defines it (OMIM:208400 is an alternate)
    assert all(e["id"] == "D054880" and e["url"] == "https://meshb.nlm.nih.gov/record/ui?ui=D054880" for e in agu)
    for e in body["entities"]:
        assert text[e["start"]:e["end"]] == e["text"] and e["type"] == "Disorders"
