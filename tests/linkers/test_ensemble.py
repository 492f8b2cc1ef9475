"""Ensembles of input configurations: fusion by summed normalised probabilities."""

from __future__ import annotations

import pytest

from genbel.data.queries import Candidate
from genbel.errors import ConfigError
from genbel.linkers.document import DocumentLinker
from genbel.linkers.ensemble import EnsembleLinker, default_ensemble, fuse
from tests.helpers import raises_code
from tests.linkers.document_fixtures import build, docs
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def dl():
    return DocumentLinker(build("llama"), max_prompt_tokens=48)


def test_fuse_sums_normalised_probabilities():
    a = [Candidate("X", "x", 1.0), Candidate("Y", "y", 0.5), Candidate("Z", "z", 0.5)]
    b = [Candidate("Y", "y", 1.0), Candidate("X", "x", 0.25)]
    out = fuse([a, b], [1.0, 1.0], k=5)
    # a: X .5, Y .25, Z .25 ; b: Y .8, X .2
    assert [c.concept_id for c in out] == ["Y", "X", "Z"]
    assert [c.score for c in out] == pytest.approx([1.05, 0.7, 0.25])
    out = fuse([a, b], [3.0, 1.0], k=2)
    assert [c.concept_id for c in out] == ["X", "Y"]
    assert [c.score for c in out] == pytest.approx([1.7, 1.55])


def test_fuse_edge_cases():
    assert fuse([[], []], [1.0, 1.0], k=5) == []
    zero = [Candidate("A", "a", 0.0), Candidate("B", "b", 0.0)]
    assert [(c.concept_id, c.score) for c in fuse([zero], [1.0], 5)] == [("A", 0.5), ("B", 0.5)]
    dup = [Candidate("A", "a", 1.0), Candidate("A", "a", 1.0), Candidate("B", "b", 2.0)]
    out = fuse([dup], [1.0], 5)
    assert [c.concept_id for c in out] == ["B", "A"] and [c.score for c in out] == pytest.approx([0.5, 0.25])


def test_ensemble_of_one_configuration_equals_that_configuration(dl):
    ds = docs()
    single = dl.link_documents(ds, k=5)
    ens = EnsembleLinker([dl]).link_documents(ds, k=5)
    assert [q.entity_id for q, _ in single] == [q.entity_id for q, _ in ens]
    for (_, a), (_, b) in zip(single, ens):
        assert [(c.concept_id, c.name) for c in a] == [(c.concept_id, c.name) for c in b]
        z = sum(c.score for c in a)
        assert [c.score for c in b] == pytest.approx([c.score / z for c in a])


def test_ensemble_of_memory_and_no_memory(dl):
    ds = docs()
    ens = default_ensemble(dl)
    assert [m.use_memory for m in ens.members] == [True, False]
    with_mem = dl.link_documents(ds, k=5)
    without = dl.variant(use_memory=False).link_documents(ds, k=5)
    fused = ens.link_documents(ds, k=3)
    for (q, f), (_, a), (_, b) in zip(fused, with_mem, without):
        assert 1 <= len(f) <= 3 and len({c.concept_id for c in f}) == len(f)
        assert [c.concept_id for c in f] == [c.concept_id for c in fuse([a, b], [1.0, 1.0], 3)]
    # link() fuses the same way
    from genbel.data.queries import queries_from_documents

    via_link = ens.link(queries_from_documents(ds), k=3)
    assert [[c.concept_id for c in cs] for cs in via_link] == [[c.concept_id for c in f] for _, f in fused]


@pytest.mark.parametrize(
    "kw", [{"members": []}, {"weights": [1.0, 2.0]}, {"weights": [0.0]}, {"weights": [-1.0]}]
)
def test_invalid_ensembles(dl, kw):
    members = kw.pop("members", [dl])
    with raises_code("E400", ConfigError, match="invalid ensemble"):
        EnsembleLinker(members, **kw)


def test_members_must_link_the_same_mentions(dl):
    class Other(DocumentLinker):
        def link_documents(self, documents, k=5, expand_abbreviations=False, entity_types=None):
            return super().link_documents(documents[:1], k, expand_abbreviations, entity_types)

    other = Other(dl.generator, max_prompt_tokens=48)
    with raises_code("E400", ConfigError, match="member 1"):
        EnsembleLinker([dl, other]).link_documents(docs(), k=3)
