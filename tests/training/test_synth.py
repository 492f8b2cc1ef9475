from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from genbel.data import load_corpus
from genbel.errors import ConfigError, GenbelError
from genbel.training.generators import OpenAIGenerator, SynthRequest, TemplateGenerator, make_generator
from genbel.training.synth import clean_generation, concept_order, find_span, synthesize
from tests.helpers import raises_code


class ScriptedGenerator:
    """Answers from a function of the request (and counts calls)."""

    name = "scripted"

    def __init__(self, fn, fail_after: int | None = None):
        self.fn = fn
        self.calls = 0
        self.fail_after = fail_after

    def generate(self, requests):
        out = []
        for r in requests:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise GenbelError("simulated crash")
            self.calls += 1
            out.append(self.fn(r))
        return out


def test_clean_and_find_span():
    assert (
        clean_generation('Sentence: "Patients with DM were seen."\nMore text')
        == "Patients with DM were seen."
    )
    assert (
        clean_generation("1. The [Breast Cancer]{Disorders} cohort grew.") == "The Breast Cancer cohort grew."
    )
    assert find_span("Patients with breast cancer.", "Breast Cancer") == (14, 27)
    assert find_span("Patients with breast cancer.", "Breast Cancer", case_sensitive=True) is None
    assert find_span("Patients with breast cancers.", "breast cancer") is None  # inside a longer word
    assert find_span("A DM-related case and DM.", "DM") == (22, 24)


def test_unseen_concepts_come_first(kb):
    order = [c.id for c in concept_order(kb, seen_ids=["D001943", "OMIM:222100"], seed=0)]
    assert set(order[:3]) == {"D010051", "D006432", "D002318"}
    assert set(order[3:]) == {"D001943", "D003920"}


def test_template_generation_writes_valid_bigbio(tmp_path, kb):
    out = tmp_path / "synth.jsonl"
    res = synthesize(
        kb, TemplateGenerator(seed=1), out, n=4, seen_ids=["D001943"], seed=0, show_progress=False
    )
    assert res.stats.accepted == 4 and len(res.documents) == 4
    assert not (tmp_path / "synth.jsonl.partial").exists()
    docs = load_corpus(out)
    assert len(docs) == 4
    ids = []
    for d in docs:
        d.validate()
        (e,) = d.entities
        assert e.type == "Disorders"
        assert e.mention.lower() in {n.lower() for n in kb[e.gold_ids[0]].names}
        ids.append(e.gold_ids[0])
    assert "D001943" not in ids  # the seen concept comes last, after 4 unseen ones
    # deterministic
    again = synthesize(
        kb,
        TemplateGenerator(seed=1),
        tmp_path / "again.jsonl",
        n=4,
        seen_ids=["D001943"],
        seed=0,
        show_progress=False,
    )
    assert [d.text for d in again.documents] == [d.text for d in res.documents]


def test_altered_or_missing_spans_are_rejected_and_duplicates_dropped(tmp_path, kb):
    def answer(r: SynthRequest) -> str:
        if r.concept_id == "D001943":
            return "Patients with breast tumour were enrolled in this study."  # altered name
        if r.concept_id == "D010051":
            return "The study enrolled many women with a serious disease."  # name missing
        return "This sentence is always the same and mentions nothing."

    gen = ScriptedGenerator(answer)
    res = synthesize(
        kb,
        gen,
        tmp_path / "s.jsonl",
        n=5,
        concepts=["D001943", "D010051"],
        max_attempts=2,
        show_progress=False,
    )
    assert res.documents == []
    assert res.stats.rejected_span == 4 and res.stats.requested == 4

    # a case change is accepted by default (the span keeps the generated spelling), not when case-sensitive
    gen = ScriptedGenerator(lambda r: f"Patients with {r.term.lower()} were enrolled in this study.")
    res = synthesize(kb, gen, tmp_path / "c.jsonl", n=1, concepts=["D006432"], show_progress=False)
    assert [d.entities[0].mention for d in res.documents] == ["hemochromatosis"]
    res = synthesize(
        kb, gen, tmp_path / "cs.jsonl", n=1, concepts=["D006432"], case_sensitive=True, show_progress=False
    )
    assert res.documents == [] and res.stats.rejected_span == 2


def test_duplicate_text_is_dropped(tmp_path, kb):
    # "Hemochromatosis" has one name, so both requests get the same term and the same sentence
    gen = ScriptedGenerator(lambda r: "Hemochromatosis was frequent in this cohort of patients.")
    res = synthesize(
        kb,
        gen,
        tmp_path / "x.jsonl",
        n=5,
        per_concept=2,
        concepts=["D006432"],
        max_attempts=1,
        show_progress=False,
    )
    assert len(res.documents) == 1
    assert res.stats.requested == 2 and res.stats.accepted == 1 and res.stats.duplicates == 1


def test_resume_after_a_crash(tmp_path, kb):
    out = tmp_path / "r.jsonl"
    fn = lambda r: f"In this cohort, {r.term} was observed in {len(r.term)} patients."  # noqa: E731
    with pytest.raises(GenbelError, match="simulated crash"):
        synthesize(kb, ScriptedGenerator(fn, fail_after=2), out, n=5, batch_size=1, show_progress=False)
    partial = tmp_path / "r.jsonl.partial"
    assert partial.exists() and not out.exists()
    assert len(partial.read_text().splitlines()) == 2
    gen = ScriptedGenerator(fn)
    res = synthesize(kb, gen, out, n=5, batch_size=1, show_progress=False)
    assert gen.calls == 3  # only the 3 missing concepts were requested
    assert res.stats.skipped_done == 2
    assert len(load_corpus(out)) == 5 and not partial.exists()
    assert len({d.entities[0].gold_ids[0] for d in res.documents}) == 5


# ---------------------------------------------------------------- OpenAI-compatible endpoint
class _Handler(BaseHTTPRequestHandler):
    mode = "good"
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        if type(self).mode == "garbage":
            payload = b"<html>not json</html>"
        elif type(self).mode == "nochoices":
            payload = json.dumps({"error": "overloaded"}).encode()
        else:
            term = re.search(r'the term "(.+?)"', body["messages"][-1]["content"]).group(1)
            payload = json.dumps(
                {
                    "choices": [
                        {"message": {"role": "assistant", "content": f"We studied {term} in 40 patients."}}
                    ]
                }
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.mode, _Handler.seen = "good", []
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_openai_endpoint_good(server, tmp_path, kb):
    gen = make_generator(f"openai:{server}", model="tiny", retries=1)
    assert isinstance(gen, OpenAIGenerator) and gen.url == f"{server}/v1/chat/completions"
    res = synthesize(kb, gen, tmp_path / "o.jsonl", n=3, show_progress=False)
    assert res.stats.accepted == 3
    path, body = _Handler.seen[0]
    assert path == "/v1/chat/completions" and body["model"] == "tiny"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_openai_endpoint_down_then_resumed(server, tmp_path, kb):
    out = tmp_path / "o.jsonl"
    good = OpenAIGenerator(server, retries=1)
    synthesize(kb, good, out, n=2, show_progress=False)  # 2 documents exist
    out.rename(tmp_path / "o.jsonl.partial")  # as if the run had been interrupted
    down = OpenAIGenerator(f"http://127.0.0.1:{_closed_port()}", retries=2, backoff=0.0, timeout=2)
    with raises_code("E353", 
        GenbelError,
        match=r"E?generator endpoint http://127\.0\.0\.1:\d+/v1/chat/completions: "
        r"unreachable after 2 tries",
    ):
        synthesize(kb, down, out, n=4, show_progress=False)
    assert len((tmp_path / "o.jsonl.partial").read_text().splitlines()) == 2
    res = synthesize(kb, good, out, n=4, show_progress=False)
    assert res.stats.skipped_done == 2 and res.stats.accepted == 2
    assert len(load_corpus(out)) == 4


@pytest.mark.parametrize("mode,reason", [("garbage", "not JSON"), ("nochoices", "no choices")])
def test_openai_endpoint_garbage(server, tmp_path, kb, mode, reason):
    _Handler.mode = mode
    gen = OpenAIGenerator(server, retries=2, backoff=0.0)
    with raises_code("E354", GenbelError, match=f"returned unusable output after 2 tries: .*{reason}"):
        synthesize(kb, gen, tmp_path / "g.jsonl", n=2, show_progress=False)
    assert len(_Handler.seen) == 2


def test_unknown_generator():
    with raises_code("E355", ConfigError, match="unknown generator 'gpt'"):
        make_generator("gpt")
    with raises_code("E355", ConfigError, match="unknown generator"):
        make_generator("openai:")


def test_answers_about_the_task_are_rejected(tmp_path, kb):
    answers = iter(
        [
            'Here is a sentence that uses the term "Hemochromatosis" (Disorders) exactly as written:',
            "This sentence is a realistic representation of Hemochromatosis (Disorders) in an abstract.",
            "Iron overload due to Hemochromatosis was confirmed by liver biopsy in 3 patients.",
        ]
    )
    gen = ScriptedGenerator(lambda r: next(answers))
    res = synthesize(
        kb, gen, tmp_path / "m.jsonl", n=1, concepts=["D006432"], max_attempts=3, show_progress=False
    )
    assert res.stats.rejected_meta == 2 and res.stats.accepted == 1
    assert res.documents[0].text.startswith("Iron overload")
