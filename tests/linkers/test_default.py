"""The linker genbel uses when none is named (DEFAULT_LINKER), the aliases of the registry, and the
preferred + matched names that every linker returns.

The tests hold for whatever spec DEFAULT_LINKER names: they compare against the constant, or set it
(with the ``default`` alias) to a fast linker to check the plumbing around it.
"""

from __future__ import annotations

import logging

import pytest

from genbel.data.queries import Candidate, MentionQuery
from genbel.deps import MissingDependencyError, missing_dependency
from genbel.errors import ConfigError
from genbel.kb.base import KnowledgeBase
from genbel.linkers import default as default_module
from genbel.linkers import registry
from genbel.linkers.default import DEFAULT_LINKER, FALLBACK_LINKER, default_linker
from genbel.linkers.dense import DenseLinker
from genbel.linkers.ensemble import fuse
from genbel.linkers.exact import ExactMatchLinker
from genbel.linkers.registry import ALIASES, available_linkers, create_linker, resolve_alias
from genbel.linkers.sparse import SparseLinker
from tests.helpers import raises_code


@pytest.fixture
def default_is(monkeypatch: pytest.MonkeyPatch):
    """Make ``spec`` the default pipeline for one test (the constant and the ``default`` alias)."""

    def use(spec: str) -> None:
        monkeypatch.setattr(default_module, "DEFAULT_LINKER", spec)
        monkeypatch.setitem(ALIASES, "default", spec)

    return use


# ------------------------------------------------------------------------------------------ aliases
def test_aliases_name_the_shipped_models() -> None:
    assert resolve_alias("default") == DEFAULT_LINKER
    assert resolve_alias("dense") == "dense:default"
    assert resolve_alias("biosyn") == "biosyn:default"
    assert resolve_alias("generative") == "generative:default"
    for spec in ("tfidf", "exact", "dense:runs/x", "generative:default", "hybrid:runs/g"):
        assert resolve_alias(spec) == spec  # names with a path and other names are unchanged
    for alias, spec in ALIASES.items():  # every alias stands for registered linkers
        assert all(part.partition(":")[0] in available_linkers() for part in spec.split("+")), alias


def test_an_unknown_name_lists_the_names_and_aliases(tiny_kb: KnowledgeBase) -> None:
    with raises_code("E009", ConfigError) as e:
        create_linker("bm25", tiny_kb)
    msg = str(e.value)
    assert "'bm25'" in msg and "NAME:PATH" in msg
    assert all(name in msg for name in available_linkers())
    assert all(f"{alias} = {spec}" in msg for alias, spec in ALIASES.items())


def test_create_linker_resolves_an_alias_and_records_the_spec(tiny_kb: KnowledgeBase, default_is) -> None:
    default_is("tfidf")
    lk = create_linker("default", tiny_kb)
    assert isinstance(lk, SparseLinker) and lk.spec == "tfidf"
    assert create_linker("sparse", tiny_kb).spec == "sparse"


# ------------------------------------------------------------------------------------------ default_linker
def test_default_linker_is_the_constant_over_the_bundled_kb(default_is) -> None:
    default_is("exact")
    lk = default_linker()
    assert isinstance(lk, ExactMatchLinker) and lk.spec == "exact" and lk.kb.name == "MEDIC"
    (top,), = lk.link(["Attack, Panic"], k=1)
    assert (top.concept_id, top.name, top.matched) == ("D016584", "Panic Disorder", "Attack, Panic")


def test_default_linker_takes_a_kb_path_and_any_spec(tiny_kb: KnowledgeBase, tmp_path) -> None:
    tiny_kb.save(tmp_path / "kb")
    lk = default_linker(tmp_path / "kb", "tfidf")
    assert isinstance(lk, SparseLinker) and lk.kb.fingerprint() == tiny_kb.fingerprint()
    assert default_linker(tiny_kb, "exact").spec == "exact"


def test_default_linker_falls_back_when_an_extra_is_missing(
    tiny_kb: KnowledgeBase, default_is, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def needs_torch(kb, path=None, **options):
        raise missing_dependency(["torch"], "models", "the test linker", "No module named 'torch'")

    monkeypatch.setitem(registry._FACTORIES, "needs-extra", needs_torch)
    default_is("needs-extra")
    with caplog.at_level(logging.WARNING, logger="genbel.linkers.default"):
        lk = default_linker(tiny_kb)
    assert lk.spec == FALLBACK_LINKER
    assert "[E450]" in caplog.text and "genbel[models]" in caplog.text
    with raises_code("E450", MissingDependencyError):  # a linker the caller names is never replaced
        default_linker(tiny_kb, "needs-extra")


@pytest.mark.slow
def test_the_real_default_links_with_preferred_names(tiny_kb: KnowledgeBase, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path))  # the shipped models' caches stay in the test
    lk = default_linker(tiny_kb)
    assert lk.spec == DEFAULT_LINKER
    rows = lk.link(["mammary carcinoma", "cancer of the colon"], k=2)
    assert [r[0].concept_id for r in rows] == ["D001", "D002"]
    for row in rows:
        for c in row:
            assert c.name == tiny_kb[c.concept_id].name and c.matched in tiny_kb[c.concept_id].names


# ---------------------------------------------------------------------------------- preferred + matched
def _check_names(kb: KnowledgeBase, rows: list[list[Candidate]]) -> None:
    """Every candidate: ``name`` is its concept's preferred name, ``matched`` one of the concept's names."""
    assert any(rows)
    for row in rows:
        for c in row:
            assert c.name == kb[c.concept_id].name
            assert c.matched in kb[c.concept_id].names


def test_candidate_keeps_its_three_field_constructor() -> None:
    c = Candidate("D1", "Panic Disorder", 0.5)
    assert c.matched == "Panic Disorder"
    assert Candidate("D1", "Panic Disorder", 0.5, "Attack, Panic").to_dict() == {
        "code": "D1", "name": "Panic Disorder", "matched": "Attack, Panic", "score": 0.5,
    }


def test_exact_returns_the_kb_spelling_it_matched(tiny_kb: KnowledgeBase) -> None:
    rows = ExactMatchLinker(tiny_kb).link(["COLON CANCER", MentionQuery("xyz", surface="breast tumor")], k=1)
    assert [(c.name, c.matched) for r in rows for c in r] == [
        ("Colorectal Neoplasms", "colon cancer"), ("Breast Neoplasms", "breast tumor"),
    ]


@pytest.mark.parametrize("spec", ["tfidf", "sparse"])
def test_sparse_returns_preferred_and_matched_names(tiny_kb: KnowledgeBase, spec: str) -> None:
    lk = create_linker(spec, tiny_kb)
    rows = lk.link(["colon cancers", "breast tumour", "familial adenomatous polyps"], k=3)
    _check_names(tiny_kb, rows)
    assert [(r[0].name, r[0].matched) for r in rows] == [
        ("Colorectal Neoplasms", "colon cancer"), ("Breast Neoplasms", "breast tumor"),
        ("Adenomatous Polyposis Coli", "familial adenomatous polyposis"),
    ]


@pytest.mark.parametrize("sparse_weight", [0.0, 1.0])  # dense and biosyn
def test_dense_returns_preferred_and_matched_names(tiny_kb: KnowledgeBase, encoder, sparse_weight) -> None:
    lk = DenseLinker(tiny_kb, encoder, sparse_weight=sparse_weight)
    rows = lk.link(["colon cancer", "breast tumor", "familial adenomatous polyposis"], k=2)
    _check_names(tiny_kb, rows)
    # a mention spelled as a synonym scores that synonym highest (identical vectors, identical n-grams)
    assert [(r[0].concept_id, r[0].name, r[0].matched) for r in rows] == [
        ("D002", "Colorectal Neoplasms", "colon cancer"), ("D001", "Breast Neoplasms", "breast tumor"),
        ("D003", "Adenomatous Polyposis Coli", "familial adenomatous polyposis"),
    ]


def test_ensemble_keeps_the_names_of_its_members() -> None:
    a = [Candidate("D1", "Panic Disorder", 0.9, "Attack, Panic"), Candidate("D2", "Phobia", 0.1, "fear")]
    b = [Candidate("D2", "Phobia", 0.8, "phobias"), Candidate("D1", "Panic Disorder", 0.2, "panic")]
    fused = fuse([a, b], [1.0, 1.0], k=2)
    assert {(c.concept_id, c.name, c.matched) for c in fused} == {
        ("D1", "Panic Disorder", "Attack, Panic"), ("D2", "Phobia", "fear"),
    }
