from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from genbel.data.queries import MentionQuery
from genbel.errors import ConfigError, FormatError, IndexMismatchError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.normalize import normalize_name
from genbel.linkers.nametable import TABLE_FILES, NameTable
from genbel.linkers.registry import create_linker
from genbel.linkers.sparse import SparseLinker
from genbel.linkers.sparse_index import POSTING_FILES, Postings
from tests.helpers import raises_code


def test_links_to_the_concept_of_the_nearest_name(tiny_kb):
    linker = SparseLinker(tiny_kb)
    res = linker.link(
        [MentionQuery("breast cancers"), MentionQuery("Colon-Cancer"), MentionQuery("APC")], k=3
    )
    assert [r[0].concept_id for r in res] == ["D001", "D002", "D003"]
    # the candidate shows the concept's preferred name and the KB spelling of the best-matching name
    assert (res[1][0].name, res[1][0].matched) == ("Colorectal Neoplasms", "colon cancer")
    assert res[1][0].score == pytest.approx(1.0, abs=1e-5)  # "Colon-Cancer" normalises to "colon cancer"
    # a 3-letter alias is indexed (no min_df pruning by default)
    assert (res[2][0].name, res[2][0].matched) == ("Adenomatous Polyposis Coli", "APC")
    for row in res:
        assert len({c.concept_id for c in row}) == len(row) <= 3
        assert all(a.score >= b.score for a, b in zip(row, row[1:]))
        assert all(0.0 < c.score <= 1.0 + 1e-6 for c in row)


def test_concept_score_is_the_max_cosine_over_its_names(tiny_kb):
    linker = SparseLinker(tiny_kb)
    table = NameTable.from_kb(tiny_kb)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
    names = vec.fit_transform(table.keys)
    query = "familial colorectal cancer"
    sims = (vec.transform([normalize_name(query)]) @ names.T).toarray()[0]
    expected = {}
    for row, j in enumerate(table.row_concept):
        cid = table.concept_ids[j]
        expected[cid] = max(expected.get(cid, 0.0), sims[row])
    got = linker.candidates([query], k=10)[0]
    ranked = sorted((v, c) for c, v in expected.items() if v > 0)[::-1]
    assert [c.concept_id for c in got] == [c for _, c in ranked]
    for c in got:
        assert c.score == pytest.approx(expected[c.concept_id], abs=1e-5)


def test_empty_and_unmatched_queries_get_no_candidates(tiny_kb):
    linker = SparseLinker(tiny_kb)
    assert linker.candidates([], k=5) == []
    assert linker.candidates(["", "!!!", "qqq", "breast"], k=5)[:3] == [[], [], []]
    assert linker.candidates(["breast"], k=0) == [[]]


def test_duplicates_batching_and_k_agree(tiny_kb):
    texts = ["breast tumour", "colon ca", "breast tumour", "polyposis", "ibuprofen", "colon ca"]
    one = SparseLinker(tiny_kb, batch_size=1).candidates(texts, k=4)
    big = SparseLinker(tiny_kb, batch_size=512).candidates(texts, k=4)
    assert one == big
    assert one[0] == one[2] and one[1] == one[5]
    assert one[0] is not one[2]  # callers may mutate their lists
    top2 = SparseLinker(tiny_kb).candidates(texts, k=2)
    assert top2 == [r[:2] for r in one]


def test_concepts_with_only_empty_names_are_skipped():
    kb = KnowledgeBase([Concept("X1", "--"), Concept("X2", "lung cancer", ["NSCLC"])], name="t")
    linker = SparseLinker(kb)
    assert linker.table.concept_ids == ["X2"]
    assert [c.concept_id for c in linker.candidates(["lung  cancer"], k=5)[0]] == ["X2"]


def test_empty_kb_links_nothing():
    linker = SparseLinker(KnowledgeBase([Concept("X1", "?")], name="t"))
    assert linker.candidates(["anything"], k=5) == [[]]


def test_search_names_and_pair_scores_agree(tiny_kb):
    linker = SparseLinker(tiny_kb)
    texts = ["colorectal neoplasm", "breast"]
    scores, rows = linker.search_names(texts, k=3)
    assert scores.shape == rows.shape == (2, 3)
    assert linker.table.keys[rows[0, 0]] == "colorectal neoplasms"
    assert np.all(np.diff(scores, axis=1) <= 1e-7)
    np.testing.assert_allclose(linker.pair_scores(texts, rows), scores, atol=1e-6)
    full = linker.name_scores(texts)
    np.testing.assert_allclose(np.sort(full, axis=1)[:, ::-1][:, :3], scores, atol=1e-6)
    with raises_code("E024", ConfigError):
        linker.pair_scores(texts, rows[:1])


def test_hyper_parameters_are_options(tiny_kb):
    a = SparseLinker(tiny_kb, ngram_range="3,3")
    assert a.params["ngram_range"] == (3, 3)
    assert all(len(t) == 3 for t in a.vectorizer.vocabulary_)
    b = SparseLinker(tiny_kb, min_df=2)
    assert len(b.vectorizer.vocabulary_) < len(SparseLinker(tiny_kb).vectorizer.vocabulary_)
    with raises_code("E023", ConfigError, match="ngram_range"):
        SparseLinker(tiny_kb, ngram_range=(4, 2))
    with raises_code("E025", ConfigError, match="unknown"):
        SparseLinker(tiny_kb, ngrams=3)
    with raises_code("E023", ConfigError, match="batch_size"):
        SparseLinker(tiny_kb, batch_size=0)


def test_save_load_round_trip(tiny_kb, tmp_path):
    linker = SparseLinker(tiny_kb, ngram_range=(2, 3), sublinear_tf=True)
    out = linker.save(tmp_path / "idx")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["idf.npy", "meta.json", "vocabulary.json", *POSTING_FILES, *TABLE_FILES])
    loaded = SparseLinker.load(out, tiny_kb, batch_size=2)
    assert loaded.params == linker.params
    texts = ["breast tumours", "familial polyposis", "apc", "colon"]
    assert loaded.candidates(texts, k=3) == linker.candidates(texts, k=3)
    # saving over an existing index replaces it and leaves no temp dirs
    SparseLinker(tiny_kb).save(out)
    assert SparseLinker.load(out, tiny_kb).params["ngram_range"] == (2, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]
    with raises_code("E026", ConfigError, match="rebuild"):
        SparseLinker.load(out, tiny_kb, min_df=3)


def test_index_refuses_another_kb(tiny_kb, tmp_path):
    SparseLinker(tiny_kb).save(tmp_path / "idx")
    other = KnowledgeBase([Concept("D001", "Breast Neoplasms")], name="other")
    with raises_code("E010", IndexMismatchError, match="rebuild the index"):
        SparseLinker.load(tmp_path / "idx", other)


def test_missing_files_and_failed_saves(tiny_kb, tmp_path, monkeypatch):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{}")
    with raises_code("E300", FormatError, match="missing vocabulary.json, idf.npy, postings.indptr.npy"):
        SparseLinker.load(tmp_path / "bad", tiny_kb)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Postings, "save", boom)
    with pytest.raises(OSError):
        SparseLinker(tiny_kb).save(tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_registry_names(tiny_kb, tmp_path):
    sparse = create_linker("sparse", tiny_kb)
    assert isinstance(sparse, SparseLinker) and sparse.name == "sparse"
    sparse.save(tmp_path / "idx")
    tfidf = create_linker(f"tfidf:{tmp_path / 'idx'}", tiny_kb)
    assert tfidf.name == "tfidf"
    assert tfidf.candidates(["colon cancer"], 1)[0][0].concept_id == "D002"


def test_saved_index_directory_has_ordinary_permissions(tiny_kb, tmp_path):
    import os
    import stat

    out = SparseLinker(tiny_kb).save(tmp_path / "idx")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask


def test_concept_prior_breaks_ties_between_concepts_sharing_a_name(tmp_path):
    from genbel.linkers.nametable import TIE_BREAK, concept_prior, read_prior
    from tests.conftest import make_doc

    kb = KnowledgeBase([Concept("OMIM:160900", "Myotonic Dystrophy 1", ["DM"]),
                        Concept("D009223", "Myotonic Dystrophy", ["DM", "dystrophia myotonica"]),
                        Concept("D003920", "Diabetes Mellitus")], name="t")
    linker = SparseLinker(kb)
    assert [c.concept_id for c in linker.candidates(["DM"], 2)[0]] == ["OMIM:160900", "D009223"]  # KB order
    mentions = [("DM", "Disease", "D009223"), ("DM", "Disease", "D009223"),
                ("diabetes", "Disease", "D003920")]
    docs = [make_doc("1", "DM and DM and diabetes", mentions)]
    prior = concept_prior(docs, kb)
    assert prior == {"D009223": 2, "D003920": 1}
    linker.set_prior(prior)
    top = linker.candidates(["DM"], 2)[0]
    assert [c.concept_id for c in top] == ["D009223", "OMIM:160900"]
    assert top[0].score - top[1].score == pytest.approx(TIE_BREAK, abs=2e-7)  # only a tie-breaker (float32)
    # a weight adds weight * log(1 + count): here enough to beat a better-matching name
    linker.set_prior(prior, weight=0.5)
    assert linker.candidates(["myotonic dystrophy 1"], 1)[0][0].concept_id == "D009223"
    # the prior is saved with the index and read back; a JSON file works as well
    linker.save(tmp_path / "idx")
    assert read_prior(tmp_path / "idx" / "concept_prior.json") == {"D009223": 2.0, "D003920": 1.0}
    loaded = SparseLinker.load(tmp_path / "idx", kb)
    assert loaded.prior_weight == 0.5 and loaded.candidates(["DM"], 1) == linker.candidates(["DM"], 1)
    assert SparseLinker.load(tmp_path / "idx", kb, prior=None).prior is None
    (tmp_path / "bad.json").write_text("[1, 2]")
    with raises_code("E016", FormatError, match="concept_id"):
        SparseLinker(kb, prior=tmp_path / "bad.json")


def test_read_index_meta(tmp_path):
    """The CLI reads an index's KB fingerprint through read_index_meta (E300 when absent)."""

    from genbel.errors import FormatError
    from genbel.kb import KnowledgeBase
    from genbel.kb.concept import Concept
    from genbel.linkers.nametable import read_index_meta
    from genbel.linkers.sparse import SparseLinker

    kb = KnowledgeBase([Concept("D1", "heart attack", ["myocardial infarction"])], name="t")
    SparseLinker(kb).save(tmp_path / "idx")
    assert read_index_meta(tmp_path / "idx")["kb_fingerprint"] == kb.fingerprint()
    with raises_code("E300", FormatError) as e:
        read_index_meta(tmp_path / "nothing", kind="dense")
    assert str(e.value).startswith("[E300]") and "dense" in str(e.value)


# ---------------------------------------------------------------------- the streamed, memory-mapped index
def _sklearn_reference(kb, **params):
    """What SparseLinker built before the streamed index: one TfidfVectorizer.fit_transform over the
    table's keys (the name matrix), scored with a sparse product."""
    table = NameTable.from_kb(kb)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=True, dtype=np.float32, **params)
    return table, vec, vec.fit_transform(table.keys).tocsr()


@pytest.mark.parametrize("params", [{}, {"sublinear_tf": True, "min_df": 2}, {"max_features": 300}])
def test_streamed_build_gives_scikit_learns_matrix(tiny_kb, tmp_path, params):
    table, vec, matrix = _sklearn_reference(tiny_kb, **params)
    out = SparseLinker.build(tiny_kb, tmp_path / "idx", chunk_names=3, **params)  # several chunks
    linker = SparseLinker.load(out, tiny_kb)
    assert linker.vectorizer.vocabulary_ == vec.vocabulary_
    np.testing.assert_array_equal(linker.vectorizer.idf_, vec.idf_)
    got = sp.csr_matrix((np.asarray(linker.postings.weights), np.asarray(linker.postings.rows),
                         np.asarray(linker.postings.indptr)), shape=matrix.T.shape).T.toarray()
    np.testing.assert_allclose(got, matrix.toarray(), rtol=0, atol=1e-7)
    assert list(linker.table.keys) == table.keys and list(linker.table.names) == table.names
    assert list(linker.table.concept_ids) == table.concept_ids
    assert isinstance(linker.postings.rows, np.memmap) and linker.postings.weights.dtype == np.float32
    assert json.loads((out / "meta.json").read_text())["nnz"] == matrix.nnz


def test_same_top_k_as_the_in_memory_index_on_the_bundled_kb(tmp_path):
    """The streamed index, memory-mapped, ranks like the one-shot scikit-learn matrix it replaces."""
    import random

    from genbel.kb.loaders import open_kb

    kb = open_kb("default")
    table, vec, matrix = _sklearn_reference(kb)
    rng = random.Random(0)
    texts = []
    for name in rng.sample(list(table.names), 150):
        words = name.split()
        if len(words) > 1 and rng.random() < 0.5:
            del words[rng.randrange(len(words))]
        texts.append(" ".join(words).lower())
    texts += ["breast cancer", "DM", "hereditary nonpolyposis colorectal cancer", "qqq"]
    linker = SparseLinker.load(SparseLinker.build(kb, tmp_path / "idx", chunk_names=20_000), kb)
    got = linker.candidates(texts, k=10)
    sims = (vec.transform([normalize_name(t) for t in texts]) @ matrix.T).toarray()
    expected = table.top_concepts(sims.astype(np.float32), 10, min_score=0.0)
    assert [[c.concept_id for c in r] for r in got] == [[c.concept_id for c in r] for r in expected]
    for r, e in zip(got, expected):
        np.testing.assert_allclose([c.score for c in r], [c.score for c in e], atol=1e-6)
        assert [c.matched for c in r] == [c.matched for c in e]


def test_a_version_1_index_is_still_read(tiny_kb, tmp_path):
    _, vec, matrix = _sklearn_reference(tiny_kb)
    d = tmp_path / "v1"
    d.mkdir()
    linker = SparseLinker(tiny_kb)
    sp.save_npz(d / "names.npz", matrix)
    (d / "vocabulary.json").write_text(json.dumps({t: int(i) for t, i in vec.vocabulary_.items()}))
    np.save(d / "idf.npy", vec.idf_.astype(np.float64))
    meta = {"kind": "sparse", "version": 1, "kb_fingerprint": tiny_kb.fingerprint(), "kb_name": tiny_kb.name,
            "params": {**linker.params, "ngram_range": [2, 4]}, "prior_weight": 0.0}
    (d / "meta.json").write_text(json.dumps(meta))
    texts = ["breast tumours", "familial polyposis", "apc", "colon"]
    assert SparseLinker.load(d, tiny_kb).candidates(texts, k=3) == linker.candidates(texts, k=3)


def test_pruning_that_keeps_nothing_is_a_config_error(tiny_kb, tmp_path):
    with raises_code("E023", ConfigError, match="min_df/max_df"):
        SparseLinker.build(tiny_kb, tmp_path / "idx", min_df=10_000)
    assert not (tmp_path / "idx").exists()
