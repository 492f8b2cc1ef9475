"""The cross-encoder reranker stage and ``A+B`` linker chains (tiny BERT built in-process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genbel.data.queries import Candidate, MentionQuery
from genbel.encoders import TextEncoder
from genbel.errors import ConfigError, FormatError
from genbel.linkers.base import Linker
from genbel.linkers.registry import chain_stages, create_linker, split_chain
from genbel.linkers.rerank import (
    HEAD_FILE,
    RERANKER_CONFIG,
    CrossEncoder,
    RerankLinker,
    load_reranker,
    mention_side,
)
from tests.helpers import raises_code


class FixedRetriever(Linker):
    """A retriever whose candidates are given (what the reranker sees is then exactly known)."""

    name = "fixed"

    def __init__(self, rows: dict[str, list[Candidate]]) -> None:
        self.rows = rows
        self.calls = 0

    def link(self, queries, k=5):
        self.calls += 1
        return [[Candidate(c.concept_id, c.name, c.score) for c in self.rows.get(q.text, [])][:k] for q in queries]


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> CrossEncoder:
    from tests.linkers.retrieval_fixtures import make_bert

    base = make_bert(tmp_path_factory.mktemp("ce-base"), hidden=32, layers=2)
    import torch

    torch.manual_seed(0)
    return CrossEncoder.from_encoder(TextEncoder.load(base), max_length=32, source=str(base))


ROWS = {
    "colon cancer": [Candidate("D001", "breast cancer", 0.9), Candidate("D002", "colon cancer", 0.8),
                     Candidate("D003", "APC", 0.1)],
    "ibuprofen": [Candidate("C004", "ibuprofen", 0.99), Candidate("D001", "breast tumor", 0.2)],
}


def test_mention_side_marks_the_mention_in_its_sentence():
    text = "First sentence here. Patients with colon cancer were seen today. Next one."
    s = text.index("colon cancer")
    q = MentionQuery("colon cancer", context=text, start=s, end=s + len("colon cancer"))
    assert mention_side(q, 0) == "colon cancer"
    assert mention_side(q, 2) == "Patients with [ colon cancer ] were seen"
    assert mention_side(q, 50) == "Patients with [ colon cancer ] were seen today."
    # an expanded abbreviation: the long form replaces the surface inside the context
    s2 = text.index("today")
    q2 = MentionQuery("this very day", surface="today", context=text, start=s2, end=s2 + 5)
    assert mention_side(q2, 1) == "seen [ this very day ] ."


def test_rerank_orders_by_cross_encoder_logits(tiny_kb, cross_encoder):
    linker = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=3)
    got = linker.link(["colon cancer"], k=3)[0]
    logits = cross_encoder.score(["colon cancer"] * 3, ["breast cancer", "colon cancer", "APC"])
    order = np.argsort(-logits, kind="stable")
    assert [c.concept_id for c in got] == [ROWS["colon cancer"][j].concept_id for j in order]
    assert [c.score for c in got] == pytest.approx(sorted(logits.tolist(), reverse=True), abs=1e-5)


def test_concept_score_is_best_of_its_names(tiny_kb, cross_encoder):
    linker = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=3, names_per_concept=3)
    got = {c.concept_id: c for c in linker.link(["colon cancer"], k=3)[0]}
    for cid in ("D001", "D002", "D003"):
        retrieved = next(c for c in ROWS["colon cancer"] if c.concept_id == cid)
        names = linker.names(retrieved)
        logits = cross_encoder.score(["colon cancer"] * len(names), names)
        assert got[cid].score == pytest.approx(float(logits.max()), abs=1e-5)
        # the retrieved name stays; the name that scored best is what the concept was matched by
        assert got[cid].name == retrieved.name and got[cid].matched == names[int(np.argmax(logits))]


def test_gate_cache_tail_and_empty(tiny_kb, cross_encoder):
    retriever = FixedRetriever(ROWS)
    linker = RerankLinker(tiny_kb, retriever, cross_encoder, n_candidates=2, gate_score=0.95, gate_margin=0.5)
    res = linker.link(["ibuprofen", "colon cancer", "colon cancer", "unknown"], k=3)
    assert res[0] == ROWS["ibuprofen"][:3]  # confident: the retriever's answer, untouched
    assert linker.stats["gated"] == 1
    assert res[1] == res[2] and len(res[1]) == 3
    assert res[1][2].concept_id == "D003"  # beyond n_candidates: retrieval order, below the reranked
    assert res[1][2].score == pytest.approx(res[1][1].score - 1.0)
    assert res[3] == []
    assert linker.stats["pairs_scored"] == 2 and linker.stats["pairs_cached"] == 2
    linker.link(["colon cancer"], k=2)
    assert linker.stats["pairs_scored"] == 2 and linker.stats["pairs_cached"] == 4


def test_nil_threshold_empties_unsure_mentions(tiny_kb, cross_encoder):
    plain = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=3)
    top = plain.link(["colon cancer"], k=1)[0][0].score
    above = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=3, nil=True,
                         nil_threshold=top + 1e-3)
    assert above.link(["colon cancer"], k=3) == [[]] and above.stats["nil"] == 1
    below = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=3, nil=True,
                         nil_threshold=top - 1e-3)
    assert below.link(["colon cancer"], k=1)[0][0].score == pytest.approx(top)
    off = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, nil=False, nil_threshold=1e9)
    assert off.link(["colon cancer"], k=1)[0]
    with raises_code("E471", ConfigError):
        RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, nil=True)


def test_save_load_round_trip_and_chain(tiny_kb, cross_encoder, tmp_path):
    d = cross_encoder.save(tmp_path / "rr", settings={"n_candidates": 3, "context_window": 0, "gate_score": None})
    assert (d / HEAD_FILE).is_file() and (d / RERANKER_CONFIG).is_file()
    loaded, cfg = CrossEncoder.load(d)
    pairs = (["colon cancer", "apc"], ["colon cancer", "breast tumor"])
    assert loaded.score(*pairs) == pytest.approx(cross_encoder.score(*pairs), abs=1e-5)
    assert cfg["n_candidates"] == 3 and cfg["layers"] == 2
    chained = create_linker(f"tfidf+rerank:{d}", tiny_kb)
    assert chained.spec == f"tfidf+rerank:{d}" and isinstance(chained, RerankLinker)
    assert chained.retriever.name in ("tfidf", "sparse") and chained.n_candidates == 3
    got = chained.link(["colon cancer"], k=2)[0]
    assert len(got) == 2 and {c.concept_id for c in got} <= {c.concept_id for c in chained.retriever.link(["colon cancer"], k=3)[0]}
    # options: unprefixed go to the last stage, prefixed to the named one
    opt = create_linker(f"tfidf+rerank:{d}", tiny_kb, n_candidates=2, **{"rerank.context_window": 4})
    assert opt.n_candidates == 2 and opt.context_window == 4
    with raises_code("E473", ConfigError):
        create_linker(f"tfidf+rerank:{d}", tiny_kb, **{"dense.n_candidates": 2})
    with raises_code("E475", ConfigError):
        load_reranker(d, tiny_kb, FixedRetriever(ROWS), colour="blue")


def test_fewer_layers_and_bad_directories(tiny_kb, cross_encoder, tmp_path):
    one = CrossEncoder.from_encoder(cross_encoder.encoder(), layers=1, head=cross_encoder.head_state())
    assert one.layers == 1 and len(one.model.base_model.encoder.layer) == 1
    d = one.save(tmp_path / "one")
    again, _ = CrossEncoder.load(d)
    assert again.layers == 1
    with raises_code("E023", ConfigError):
        CrossEncoder.from_encoder(cross_encoder.encoder(), layers=5)
    with raises_code("E300", FormatError):
        CrossEncoder.load(tmp_path)
    (tmp_path / "nohead").mkdir()
    (tmp_path / "nohead" / RERANKER_CONFIG).write_text(json.dumps({}))
    with raises_code("E300", FormatError):
        CrossEncoder.load(tmp_path / "nohead")


def test_chain_parsing_is_generic():
    assert split_chain("dense:default+rerank:default") == ["dense:default", "rerank:default"]
    assert split_chain("dense:runs/a+b+rerank") == ["dense:runs/a+b", "rerank"]
    assert split_chain("tfidf") == ["tfidf"]
    assert "rerank" in chain_stages()


def test_only_stages_follow_another_linker(tiny_kb):
    with raises_code("E472", ConfigError):
        create_linker("tfidf+exact", tiny_kb)
    with raises_code("E009", ConfigError):
        create_linker("nosuch+rerank", tiny_kb)


def test_rerank_needs_a_linker_as_retriever(tiny_kb, cross_encoder):
    with pytest.raises(ConfigError):
        RerankLinker(tiny_kb, "tfidf", cross_encoder)  # type: ignore[arg-type]
    with raises_code("E023", ConfigError):
        RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=0)


def test_shipped_reranker_missing_is_a_clear_error(tiny_kb, monkeypatch, tmp_path):
    import genbel.linkers.rerank as rr

    monkeypatch.setattr(rr, "shipped_reranker_path", lambda: tmp_path / "absent")
    with pytest.raises(FormatError) as e:
        create_linker("tfidf+rerank:default", tiny_kb)
    assert "E300" in str(e.value)


def test_pair_text_shows_the_matched_synonym(tiny_kb, cross_encoder):
    from genbel.linkers.rerank import candidate_text

    assert candidate_text("Colonic Neoplasms", "colon cancer", "name") == "Colonic Neoplasms"
    assert candidate_text("Colonic Neoplasms", "colon cancer", "matched") == "colon cancer"
    assert candidate_text("Colonic Neoplasms", "colon cancer", "both") == "colon cancer ; Colonic Neoplasms"
    assert candidate_text("Colonic Neoplasms", "colonic  neoplasms", "both") == "colonic  neoplasms"
    linker = RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, n_candidates=3, pair_text="both")
    got = linker.link(["colon cancer"], k=3)[0]
    assert {c.concept_id for c in got} == {c.concept_id for c in ROWS["colon cancer"]}
    with raises_code("E476", ConfigError):
        RerankLinker(tiny_kb, FixedRetriever(ROWS), cross_encoder, pair_text="synonym")
