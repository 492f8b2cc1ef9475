from __future__ import annotations

import pytest

from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import ConfigError
from genbel.linkers.base import Linker
from genbel.linkers.generative import GenerativeLinker
from genbel.linkers.hybrid import HybridLinker
from genbel.linkers.registry import create_linker
from genbel.linkers.sparse import SparseLinker
from tests.helpers import raises_code
from tests.linkers.generative_tiny import tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def kb():
    return tiny_kb()


@pytest.fixture(scope="module")
def generator(kb):
    tok = tiny_tokenizer(kb)
    return GenerativeLinker(tiny_model("llama", len(tok)), tok, kb, num_beams=4)


class FixedRetriever(Linker):
    """Returns preset candidates per mention text."""

    name = "fixed"

    def __init__(self, table: dict[str, list[Candidate]]) -> None:
        self.table = table

    def link(self, queries, k=5):
        return [list(self.table.get(q.text, []))[:k] for q in queries]


QUERIES = [
    MentionQuery("breast cancer", type="Disorders"), MentionQuery("colon cancer"), MentionQuery("nothing")
]


def _retriever():
    """Candidates as retrievers return them: the preferred name, and the synonym that matched."""
    return FixedRetriever({
        "breast cancer": [Candidate("D001", "Breast Neoplasms", 0.9, matched="breast cancer"),
                          Candidate("D002", "Colorectal Neoplasms", 0.5, matched="colorectal cancer"),
                          Candidate("D004", "Pain", 0.1, matched="ache")],
        "colon cancer": [Candidate("D002", "Colorectal Neoplasms", 1.0, matched="colon cancer"),
                         Candidate("D003", "Adenomatous Polyposis Coli", 0.2, matched="APC")],
    })


def test_rerank_scores_retrieved_names_with_the_generator(kb, generator):
    hybrid = HybridLinker(kb, generator, _retriever(), mode="rerank", n_candidates=3)
    res = hybrid.link(QUERIES, k=5)
    assert res[2] == []
    retrieved = _retriever().link(QUERIES, k=3)
    for q, row, cands in zip(QUERIES[:2], res, retrieved):
        assert {c.concept_id for c in row} == {c.concept_id for c in cands}
        # the generator scores the names the retriever matched, not the preferred names
        want = generator.score_candidates([q], [[c.matched for c in cands]])[0]
        assert want != generator.score_candidates([q], [[c.name for c in cands]])[0]
        expected = sorted(((s, c.concept_id) for s, c in zip(want, cands)), key=lambda t: -t[0])
        assert [c.concept_id for c in row] == [cid for _, cid in expected]
        for c, (s, _) in zip(row, expected):
            assert c.score == pytest.approx(s, abs=1e-5)
        by_id = {c.concept_id: c for c in cands}
        assert [(c.name, c.matched) for c in row] == [(by_id[c.concept_id].name, by_id[c.concept_id].matched)
                                                      for c in row]
    top1 = hybrid.link(QUERIES, k=1)
    assert [len(r) for r in top1] == [1, 1, 0]


def test_rerank_adds_weighted_retrieval_scores_and_more_names(kb, generator):
    plain = HybridLinker(kb, generator, _retriever(), mode="rerank")
    mixed = HybridLinker(kb, generator, _retriever(), mode="rerank", retriever_weight=2.0)
    a = {c.concept_id: c.score for c in plain.link(QUERIES[:1], k=5)[0]}
    b = {c.concept_id: c.score for c in mixed.link(QUERIES[:1], k=5)[0]}
    retrieval = {c.concept_id: c.score for c in _retriever().link(QUERIES[:1])[0]}
    for cid in a:
        assert b[cid] == pytest.approx(a[cid] + 2.0 * retrieval[cid], abs=1e-5)
    many = HybridLinker(kb, generator, _retriever(), mode="rerank", names_per_concept=3)
    assert many._names(Candidate("D001", "Breast Neoplasms", 1.0, matched="breast cancer")) == [
        "breast cancer", "Breast Neoplasms", "breast tumor"
    ]
    row = many.link(QUERIES[:1], k=5)[0]
    d001 = next(c for c in row if c.concept_id == "D001")
    names = ["breast cancer", "Breast Neoplasms", "breast tumor"]
    scores = generator.score_candidates(QUERIES[:1], [names])[0]
    assert d001.score == pytest.approx(max(scores), abs=1e-5)
    assert (d001.name, d001.matched) == ("Breast Neoplasms", names[scores.index(max(scores))])


def test_constrain_generates_only_retrieved_concepts_then_falls_back(kb, generator):
    hybrid = HybridLinker(kb, generator, _retriever(), mode="constrain", n_candidates=3)
    res = hybrid.link(QUERIES, k=3)
    assert res[2] == []
    retrieved = _retriever().link(QUERIES[:2], k=3)
    direct = generator.link(QUERIES[:2], k=3, candidates=[[c.concept_id for c in r] for r in retrieved])
    for row, gen, cands in zip(res, direct, retrieved):
        assert row[: len(gen)] == gen
        assert [c.concept_id for c in row[len(gen):]] == [
            c.concept_id for c in cands if c.concept_id not in {g.concept_id for g in gen}][: 3 - len(gen)]
        assert {c.concept_id for c in row} <= {c.concept_id for c in cands}
        assert len(row) == min(3, len(cands))


def test_factory_and_bad_settings(kb, generator, tmp_path):
    generator.save(tmp_path / "gen")
    hybrid = create_linker(
        f"hybrid:{tmp_path / 'gen'}", kb, retriever="sparse", mode="constrain", n_candidates=4
    )
    assert isinstance(hybrid, HybridLinker) and isinstance(hybrid.retriever, SparseLinker)
    assert hybrid.mode == "constrain" and hybrid.n_candidates == 4
    row = hybrid.link([MentionQuery("colon cancer")], k=2)[0]
    retrieved = hybrid.retrieve([MentionQuery("colon cancer")])[0]
    assert {c.concept_id for c in row} <= {c.concept_id for c in retrieved}
    with raises_code("E022", ConfigError, match="mode"):
        HybridLinker(kb, generator, _retriever(), mode="vote")
    with raises_code("E311", ConfigError, match="hybrid"):
        create_linker("hybrid", kb)
