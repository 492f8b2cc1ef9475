"""The lazily-read KB store: the KnowledgeBase read interface without materialising the concepts."""

from __future__ import annotations

import sqlite3

import pytest

from genbel.errors import KBError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.lazy import LazyKnowledgeBase
from tests.conftest import make_tiny_kb
from tests.helpers import raises_code


def _kb() -> KnowledgeBase:
    kb = make_tiny_kb()
    kb.add(Concept("D005", "Hérédité", ["heredity"], alt_ids=["MESH:D005", "OMIM:114500"],
                   semantic_types=["T032"], semantic_groups=["Physiology"], definitions=["Inheritance."],
                   parents=["D001"], tree_numbers=["G05.420"]))
    return kb


@pytest.fixture
def stored(tmp_path):
    kb = _kb()
    kb.save(tmp_path / "kb")
    return kb, tmp_path / "kb"


def test_reads_what_the_in_memory_kb_reads(stored):
    _, path = stored
    lazy = KnowledgeBase.load(path, lazy=True, verify=True)
    whole = KnowledgeBase.load(path)
    assert isinstance(lazy, LazyKnowledgeBase) and isinstance(lazy, KnowledgeBase)
    assert len(lazy) == len(whole) and lazy.name == whole.name
    assert [c.to_dict() for c in lazy] == [c.to_dict() for c in whole]
    assert lazy.concept_ids == whole.concept_ids and lazy.semantic_groups == whole.semantic_groups
    assert list(lazy.name_pairs()) == list(whole.name_pairs()) and lazy.n_names() == whole.n_names()
    assert lazy.fingerprint() == whole.fingerprint() and lazy.content_fingerprint() == whole.content_fingerprint()
    assert lazy.has_hierarchy and lazy.summary()["alt_ids"] == whole.summary()["alt_ids"]
    for cid in ["D001", "MESH:D001", "OMIM:114500", "114500", "D005", "MESH:D005", "C004", "nope", "", "OMIM:1"]:
        assert lazy.resolve_id(cid) == whole.resolve_id(cid), cid
        assert (cid in lazy) == (cid in whole)
        assert lazy.ids_of(cid) == whole.ids_of(cid)
        got, want = lazy.get(cid), whole.get(cid)
        assert (got.to_dict() if got else None) == (want.to_dict() if want else None)
    assert lazy["D002"] is lazy["D002"]  # cached
    assert lazy.lookup("colon cancer") == whole.lookup("colon cancer") == ["D002"]
    with pytest.raises(KeyError):
        lazy["nope"]


def test_linkers_give_the_same_candidates(stored):
    from genbel.linkers.registry import create_linker

    _, path = stored
    lazy, whole = KnowledgeBase.load(path, lazy=True), KnowledgeBase.load(path)
    texts = ["colon cancer", "breast tumours", "apc", "heredity"]
    for spec in ("tfidf", "exact"):
        assert create_linker(spec, lazy).link(texts, k=3) == create_linker(spec, whole).link(texts, k=3)


def test_read_only(stored):
    _, path = stored
    lazy = KnowledgeBase.load(path, lazy=True)
    with raises_code("E606", KBError, match="add_synonyms"):
        lazy.add_synonyms("D001", ["x"])
    with raises_code("E606", KBError):
        lazy.add(Concept("X", "x"))
    with raises_code("E606", KBError):
        lazy.deduplicate_synonyms()
    assert lazy.filter(groups=["Physiology"]).concept_ids == ["D005"]  # a copy in memory


def test_a_store_without_concept_indexes_is_refused(stored):
    _, path = stored
    con = sqlite3.connect(path / "kb.sqlite")
    con.execute("DROP INDEX names_concept")
    con.commit()
    con.close()
    with raises_code("E605", KBError, match="save it again"):
        KnowledgeBase.load(path, lazy=True)
    assert len(KnowledgeBase.load(path)) == 5  # read whole as before


def test_verify_notices_a_changed_name(stored):
    _, path = stored
    con = sqlite3.connect(path / "kb.sqlite")
    con.execute("UPDATE names SET name = 'changed' WHERE name = 'APC'")
    con.commit()
    con.close()
    assert KnowledgeBase.load(path, lazy=True, verify=False).fingerprint()  # opened without the check
    with raises_code("E101", KBError):
        KnowledgeBase.load(path, lazy=True)  # checked by default, in one streamed pass
