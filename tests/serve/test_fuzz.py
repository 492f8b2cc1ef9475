"""A fuzzed request body never yields a 500: any JSON value, mutated valid bodies and raw bytes get a
2xx answer or a 4xx JSON error with a genbel code."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import mutated
from tests.serve.conftest import ABSTRACT

SEEDS = [
    json.dumps({"mentions": ["breast cancer", {"text": "FAP", "context": ABSTRACT, "type": "Disease"}], "k": 3}).encode(),
    json.dumps({"mentions": [{"text": "FAP", "context": ABSTRACT, "start": 31, "end": 34}]}).encode(),
    json.dumps({"text": ABSTRACT, "k": 2, "abbreviations": False}).encode(),
]

_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["mentions", "text", "context", "start", "end", "type", "k", "abbreviations", "x"]) | _text,
        children, max_size=5),
    max_leaves=20,
)
mention = st.one_of(
    _text,
    st.fixed_dictionaries({"text": _text}, optional={
        "context": _text | st.just(ABSTRACT), "start": st.integers(-5, 400), "end": st.integers(-5, 400),
        "type": _text | st.sampled_from(["Disease", "Chemical", "Disorders"]),
    }),
)
link_bodies = st.fixed_dictionaries({"mentions": st.lists(mention, max_size=6)},
                                    optional={"k": st.integers(-3, 30), "abbreviations": st.booleans()})
annotate_bodies = st.fixed_dictionaries({"text": _text | st.just(ABSTRACT)}, optional={"k": st.integers(-3, 30)})


def _check(resp) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        err = resp.json()["error"]
        assert err["message"].startswith(f"[{err['code']}] ") and err["status"] == resp.status_code


@pytest.fixture(scope="module")
def fuzz_client():
    from fastapi.testclient import TestClient

    from genbel.serve import create_app
    from tests.serve.conftest import make_service

    with TestClient(create_app(make_service(rate_limit=0, max_body_bytes=4000)), raise_server_exceptions=False) as c:
        yield c


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=json_values, path=st.sampled_from(["/link", "/annotate"]))
def test_any_json_value(fuzz_client, body, path) -> None:
    raw = json.dumps(body).encode()  # lone surrogates are escaped as \ud800 and reach the server as such
    _check(fuzz_client.post(path, content=raw, headers={"content-type": "application/json"}))


@FUZZ
@given(body=link_bodies)
def test_link_shaped_bodies(fuzz_client, body) -> None:
    _check(fuzz_client.post("/link", content=json.dumps(body).encode(), headers={"content-type": "application/json"}))


@FUZZ
@given(body=annotate_bodies)
def test_annotate_shaped_bodies(fuzz_client, body) -> None:
    _check(fuzz_client.post("/annotate", content=json.dumps(body).encode(),
                            headers={"content-type": "application/json"}))


@FUZZ
@given(raw=mutated(SEEDS), path=st.sampled_from(["/link", "/annotate"]))
def test_mutated_bytes(fuzz_client, raw, path) -> None:
    _check(fuzz_client.post(path, content=raw, headers={"content-type": "application/json"}))


@FUZZ
@given(q=_text, cid=_text, limit=st.integers(-5, 80))
def test_query_strings_and_ids(fuzz_client, q, cid, limit) -> None:
    from urllib.parse import quote

    _check(fuzz_client.get("/search", params={"q": q.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
                                              "limit": limit}))
    _check(fuzz_client.get("/concepts/" + quote(cid.encode("utf-8", "surrogatepass"), safe="")))
