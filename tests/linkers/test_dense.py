from __future__ import annotations

import json

import numpy as np
import pytest

from genbel.data.queries import MentionQuery
from genbel.encoders import TextEncoder
from genbel.errors import ConfigError, FormatError, IndexMismatchError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers.dense import DenseLinker
from genbel.linkers.dense_index import build_faiss_index
from genbel.linkers.registry import create_linker
from genbel.linkers.sparse import SparseLinker
from tests.helpers import raises_code


def test_exact_names_link_to_their_concept(tiny_kb, encoder):
    linker = DenseLinker(tiny_kb, encoder)
    queries = [MentionQuery("Colon cancer"), MentionQuery("familial adenomatous polyposis"), MentionQuery("")]
    res = linker.link(queries, k=3)
    top = res[0][0]
    assert (top.concept_id, top.name, top.matched) == ("D002", "Colorectal Neoplasms", "colon cancer")
    assert res[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert res[1][0].concept_id == "D003"
    assert res[2] == []
    for row in res[:2]:
        assert len(row) == 3 and len({c.concept_id for c in row}) == 3
        assert all(a.score >= b.score for a, b in zip(row, row[1:]))


def test_concept_score_is_best_name_and_fusion_adds_sparse(tiny_kb, encoder):
    sparse = SparseLinker(tiny_kb)
    dense = DenseLinker(tiny_kb, encoder, n_candidates=50)
    fused = DenseLinker(tiny_kb, encoder, sparse=sparse, sparse_weight=0.7, n_candidates=50)
    query = "colorectal tumour"
    qv = encoder.encode([query])[0]
    names = encoder.encode(dense.table.keys)
    d = names @ qv
    s = sparse.name_scores([query])[0]
    for linker, score in ((dense, d), (fused, d + 0.7 * s)):
        expected = {}
        for row, j in enumerate(linker.table.row_concept):
            cid = linker.table.concept_ids[j]
            expected[cid] = max(expected.get(cid, -9.0), float(score[row]))
        got = linker.candidates([query], k=4)[0]
        assert [c.concept_id for c in got] == sorted(expected, key=lambda c: -expected[c])
        for c in got:
            assert c.score == pytest.approx(expected[c.concept_id], abs=1e-4)


def test_hnsw_and_flat_agree_on_a_small_kb(tiny_kb, encoder):
    flat = DenseLinker(tiny_kb, encoder, index="flat")
    hnsw = DenseLinker(tiny_kb, encoder, index="auto", hnsw_threshold=1, hnsw_m=8)
    assert (flat.index_type, hnsw.index_type) == ("flat", "hnsw")
    texts = ["breast tumour", "colon ca", "polyposis coli", "ibuprofen"]
    a, b = flat.candidates(texts, k=4), hnsw.candidates(texts, k=4)
    assert [[c.concept_id for c in r] for r in a] == [[c.concept_id for c in r] for r in b]
    with raises_code("E022", ConfigError, match="index"):
        DenseLinker(tiny_kb, encoder, index="ivf")
    with raises_code("E022", ConfigError):
        build_faiss_index(np.zeros((1, 4), np.float32), "ivf")


def test_save_load_round_trip(tiny_kb, encoder, encoder_dir, tmp_path):
    linker = DenseLinker(tiny_kb, encoder, sparse_weight=0.5)
    texts = ["breast tumour", "colon ca", "polyposis coli"]
    want = linker.candidates(texts, k=3)
    linker.save(tmp_path / "ref")  # the encoder is referenced by path
    meta = json.loads((tmp_path / "ref" / "meta.json").read_text())
    assert meta["encoder"] == str(encoder_dir.resolve()) and meta["sparse_weight"] == 0.5
    from genbel.kb.strings import StringArray
    from genbel.linkers.nametable import TABLE_FILES

    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == sorted(
        ["faiss.index", "meta.json", "sparse", *TABLE_FILES])
    loaded = DenseLinker.load(tmp_path / "ref", tiny_kb)
    assert loaded.candidates(texts, k=3) == want
    assert isinstance(loaded.table.names, StringArray)  # the name table is mapped, not rebuilt from the KB
    for f in TABLE_FILES:  # an index saved before the table was: the table comes from the KB
        (tmp_path / "ref" / f).unlink()
    assert DenseLinker.load(tmp_path / "ref", tiny_kb).candidates(texts, k=3) == want
    linker.save(tmp_path / "full", include_encoder=True)
    loaded = create_linker(f"biosyn:{tmp_path / 'full'}", tiny_kb)  # biosyn keeps the saved λ
    assert loaded.sparse_weight == 0.5 and loaded.candidates(texts, k=3) == want
    # dense: dense scores only
    assert create_linker(f"dense:{tmp_path / 'full'}", tiny_kb).sparse_weight == 0.0
    dense_only = DenseLinker.load(tmp_path / "full", tiny_kb, sparse_weight=0.0)
    assert dense_only.sparse is None
    with raises_code("E026", ConfigError, match="rebuild"):
        DenseLinker.load(tmp_path / "full", tiny_kb, index="hnsw")


def test_index_refuses_another_kb_and_bad_dirs(tiny_kb, encoder, tmp_path):
    DenseLinker(tiny_kb, encoder).save(tmp_path / "idx")
    other = KnowledgeBase([Concept("D001", "Breast Neoplasms")], name="other")
    with raises_code("E010", IndexMismatchError, match="rebuild the index"):
        DenseLinker.load(tmp_path / "idx", other)
    (tmp_path / "empty").mkdir()
    with raises_code("E300", FormatError, match="missing meta.json, faiss.index"):
        DenseLinker.load(tmp_path / "empty", tiny_kb)


def test_registry_names(tiny_kb, encoder_dir):
    dense = create_linker(f"dense:{encoder_dir}", tiny_kb)
    assert isinstance(dense, DenseLinker) and dense.name == "dense" and dense.sparse is None
    biosyn = create_linker(f"biosyn:{encoder_dir}", tiny_kb)
    assert biosyn.name == "biosyn" and biosyn.sparse_weight == 1.0 and biosyn.sparse is not None
    assert biosyn.candidates(["colon cancer"], 1)[0][0].concept_id == "D002"


@pytest.mark.slow
def test_minilm_links_a_paraphrase():
    kb = KnowledgeBase([Concept("D1", "Myocardial Infarction", ["heart attack"]),
                        Concept("D2", "Migraine Disorders"),
                        Concept("D3", "Breast Neoplasms", ["breast cancer"])], name="mini")
    linker = DenseLinker(kb, "minilm")
    assert linker.encoder.pooling == "mean" and linker.encoder.dim == 384
    res = linker.candidates(["cardiac infarction", "tumour of the breast"], k=1)
    assert [r[0].concept_id for r in res] == ["D1", "D3"]


def test_dense_prior_breaks_ties_and_is_saved(encoder, tmp_path):
    kb = KnowledgeBase([Concept("OMIM:106210", "ANIRIDIA"), Concept("D015783", "Aniridia"),
                        Concept("D003920", "Diabetes Mellitus")], name="t")
    linker = DenseLinker(kb, encoder)
    assert [c.concept_id for c in linker.candidates(["aniridia"], 2)[0]] == ["OMIM:106210", "D015783"]
    linker.set_prior({"D015783": 3})
    assert [c.concept_id for c in linker.candidates(["aniridia"], 2)[0]] == ["D015783", "OMIM:106210"]
    linker.save(tmp_path / "idx")
    loaded = DenseLinker.load(tmp_path / "idx", kb)
    assert loaded.prior == {"D015783": 3.0}
    assert loaded.candidates(["aniridia"], 1)[0][0].concept_id == "D015783"


def test_a_shared_name_is_embedded_once_so_its_concepts_tie_exactly(encoder_dir, monkeypatch):
    enc = TextEncoder.load(encoder_dir)
    enc.batch_size = 1  # every name in its own batch
    embedded: list[list[str]] = []
    encode = enc.encode
    monkeypatch.setattr(enc, "encode", lambda texts, **kw: embedded.append(list(texts)) or encode(texts, **kw))
    kb = KnowledgeBase([Concept("OMIM:101400", "SAETHRE-CHOTZEN SYNDROME", ["acrocephalosyndactyly"]),
                        Concept("OMIM:101200", "Apert syndrome", ["Saethre Chotzen Syndrome"])], name="t")
    linker = DenseLinker(kb, enc)
    keys = linker.table.keys
    (shared,) = {k for k in keys if keys.count(k) == 2}
    assert len(keys) == 4 and sorted(embedded[0]) == sorted(set(keys))  # 3 distinct names embedded
    rows = [i for i, k in enumerate(keys) if k == shared]
    v = linker.index.reconstruct_batch(np.array(rows, dtype=np.int64))
    assert np.array_equal(v[0], v[1])
    top = linker.candidates(["Saethre-Chotzen syndrome"], 2)[0]
    assert top[0].score == top[1].score
    assert [c.concept_id for c in top] == ["OMIM:101400", "OMIM:101200"]  # KB order decides an exact tie
    linker.set_prior({"OMIM:101200": 1})
    assert linker.candidates(["Saethre-Chotzen syndrome"], 1)[0][0].concept_id == "OMIM:101200"


def test_ivfpq_is_built_streamed_each_name_embedded_once(encoder_dir, monkeypatch, tmp_path):
    """index="ivfpq" (UMLS size) embeds a chunk of distinct names at a time (the training sample first)
    and adds their rows under their ids: never all float vectors at once, each name embedded once."""
    from genbel.linkers.dense_index import build_faiss_index as exact_index

    enc = TextEncoder.load(encoder_dir)
    concepts = [Concept(f"C{i:03d}", f"disease number {i} of organ {i % 7}", [f"syndrome {i % 13} type {i}"])
                for i in range(90)]
    concepts.append(Concept("C999", "shared name", ["disease number 5 of organ 5"]))  # a name of C005 too
    kb = KnowledgeBase(concepts, name="ivf")
    embedded: list[list[str]] = []

    def encode(texts, **kw):  # well-separated vectors (a random tiny encoder maps every name close together)
        out = np.stack([np.random.default_rng(list(t.encode())).normal(size=enc.dim) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(enc, "encode", lambda texts, **kw: embedded.append(list(texts)) or encode(texts, **kw))
    monkeypatch.setattr(DenseLinker, "IVFPQ_CHUNK", 40)
    linker = DenseLinker(kb, enc, index="ivfpq")
    keys = list(linker.table.keys)
    assert linker.index.ntotal == len(keys) == 182
    assert max(map(len, embedded)) <= 40 and sorted(t for b in embedded for t in b) == sorted(set(keys))  # once each
    assert linker.embedding_stats.embedded == len(set(keys))
    # rows keep their ids: a row's code reconstructs close to its own name's vector
    vectors = encode(keys)
    rec = linker.index.reconstruct_batch(np.arange(len(keys), dtype=np.int64))
    assert np.mean(np.sum(rec * vectors, axis=1)) > 0.5
    shared = [i for i, k in enumerate(keys) if k == "disease number 5 of organ 5"]
    assert len(shared) == 2 and np.array_equal(rec[shared[0]], rec[shared[1]])
    # and it links like an exact index over the same vectors, mostly
    _, exact = exact_index(vectors, "flat").search(vectors[:40], 1)
    got = [linker.candidates([k], 1)[0][0].concept_id for k in keys[:40]]
    want = [linker.table.concept_ids[linker.table.row_concept[r]] for r in exact[:, 0]]
    assert np.mean([a == b for a, b in zip(got, want)]) >= 0.8
    linker.save(tmp_path / "idx")
    assert DenseLinker.load(tmp_path / "idx", kb, enc).candidates(keys[:5], 3) == linker.candidates(keys[:5], 3)
