"""Trained retriever directories: the KB index cache and the retriever shipped with genbel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genbel.encoders import TextEncoder
from genbel.errors import FormatError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers import dense as ld
from genbel.linkers.dense import load_retriever
from genbel.linkers.registry import create_linker
from tests.helpers import raises_code


@pytest.fixture
def kb_embeddings(monkeypatch):
    """Counts the KB-name embeddings (the slow part a cache must skip)."""
    calls: list[int] = []
    encode = TextEncoder.encode

    def counting(self, texts, progress=None, desc="embedding"):
        if desc == "embedding KB names":
            calls.append(len(texts))
        return encode(self, texts, progress=progress, desc=desc)

    monkeypatch.setattr(TextEncoder, "encode", counting)
    return calls


def _entries(cache):
    return [p for p in cache.iterdir() if p.name != "vectors"]


def test_the_index_cache_embeds_a_kb_once(run_dir, tiny_kb, kb_embeddings, tmp_path):
    cache = tmp_path / "cache"
    first = load_retriever(run_dir, tiny_kb, cache_dir=cache)
    n_names = len(set(first.table.keys))
    assert kb_embeddings == [n_names]
    (entry,) = _entries(cache)
    assert tiny_kb.fingerprint() in entry.name and (entry / "faiss.index").is_file()
    again = load_retriever(run_dir, tiny_kb, cache_dir=cache)
    assert kb_embeddings == [n_names]
    assert again.sparse_weight == 0.5 and again.prior == {"D002": 3.0}  # from the retriever, as before
    queries = ["breast tumour", "colon carcinoma", "apc"]
    assert again.candidates(queries, 3) == first.candidates(queries, 3)
    # options that do not shape the index may differ
    narrow = load_retriever(run_dir, tiny_kb, cache_dir=cache, n_candidates=3, sparse_weight=0.0, prior=None)
    assert kb_embeddings == [n_names]
    assert (narrow.n_candidates, narrow.sparse_weight, narrow.prior) == (3, 0.0, None)
    # another KB, or a setting that changes the stored index, is another entry
    other = KnowledgeBase([Concept("D9", "migraine", ["hemicrania"])], name="other")
    load_retriever(run_dir, other, cache_dir=cache)
    load_retriever(run_dir, tiny_kb, cache_dir=cache, normalize=False)
    assert len(kb_embeddings) == 3 and len(_entries(cache)) == 3
    assert sum(other.fingerprint() in p.name for p in _entries(cache)) == 1
    assert (cache / "vectors").is_dir()  # the name vectors of a custom cache live beside its indexes


def test_no_cache_unless_asked_and_a_broken_entry_is_rebuilt(run_dir, tiny_kb, kb_embeddings, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path / "home"))
    load_retriever(run_dir, tiny_kb)
    load_retriever(run_dir, tiny_kb, cache_dir=False)
    assert len(kb_embeddings) == 2 and not (tmp_path / "home").exists()
    load_retriever(run_dir, tiny_kb, cache_dir=True)  # True: the default folder
    (entry,) = (tmp_path / "home" / "indexes").iterdir()
    (entry / "faiss.index").write_bytes(b"not a faiss index")
    linker = load_retriever(run_dir, tiny_kb, cache_dir=True)
    # the index is rebuilt from the name-vector store ($GENBEL_CACHE/vectors): nothing is embedded again
    assert len(kb_embeddings) == 3 and linker.candidates(["breast cancer"], 1)[0][0].concept_id == "D001"
    assert linker.embedding_stats.embedded == 0 and linker.embedding_stats.from_store == len(set(linker.table.keys))
    assert (tmp_path / "home" / "vectors").is_dir()
    load_retriever(run_dir, tiny_kb, cache_dir=True)
    assert len(kb_embeddings) == 3


def test_default_names_the_shipped_retriever_and_caches_its_index(run_dir, tiny_kb, kb_embeddings, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(ld, "shipped_retriever_dir", lambda: run_dir)
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path / "home"))
    dense = create_linker("dense:default", tiny_kb)
    biosyn = create_linker("biosyn:default", tiny_kb)
    assert (dense.sparse_weight, biosyn.sparse_weight) == (0.0, 0.5)  # biosyn keeps the trained λ
    assert kb_embeddings == [len(set(dense.table.keys))]
    assert len(list((tmp_path / "home" / "indexes").iterdir())) == 1
    monkeypatch.setattr(ld, "shipped_retriever_dir", lambda: None)
    with raises_code("E300", FormatError, match="not a genbel shipped retriever .*missing retriever.json"):
        create_linker("dense:default", tiny_kb)


def test_an_encoder_alias_can_use_the_cache_too(base_dir, tiny_kb, kb_embeddings, tmp_path):
    for _ in range(2):
        linker = create_linker(f"dense:{base_dir}", tiny_kb, cache_dir=tmp_path / "c")
    assert len(kb_embeddings) == 1 and linker.index.ntotal == len(linker.table)


# ------------------------------------------------------------------------------------------ shipped copy
def test_the_shipped_retriever_is_a_small_int8_delta_of_minilm():
    d = ld.shipped_retriever_dir()
    assert d is not None and (d / "README.md").is_file() and (d / "concept_prior.json").is_file()
    size = sum(f.stat().st_size for f in (d / "encoder").rglob("*") if f.is_file())
    assert size <= 6_000_000
    cfg = json.loads((d / "retriever.json").read_text())
    assert cfg["name_vectors"] == "name_vectors.safetensors" and "projection" not in cfg
    assert (d / cfg["name_vectors"]).stat().st_size <= 8_000_000  # the bundled KB's names, PQ 96 bytes each
    info = json.loads((d / "encoder" / "genbel_encoder.json").read_text())
    got = (info["weights"], info["base"], info["pooling"], info["max_length"])
    assert got == ("delta-int8", "minilm", "mean", 25)
    assert sorted(p.name for p in (d / "encoder").iterdir()) == ["delta.safetensors", "genbel_encoder.json"]


@pytest.mark.slow
def test_the_shipped_name_vectors_are_the_shipped_encoders_for_the_bundled_kb():
    from genbel.encoders import encoder_fingerprint
    from genbel.encoders.vector_pack import NameVectorPack
    from genbel.kb import open_kb
    from genbel.linkers.nametable import NameTable

    d = ld.shipped_retriever_dir()
    pack = NameVectorPack.load(d / "name_vectors.safetensors")
    enc = TextEncoder.load(d / "encoder")
    assert pack is not None and pack.codec == "pq" and pack.fingerprint == encoder_fingerprint(enc)
    kb = open_kb("default")
    # built from the bundled KB before its main ids changed (fingerprint 2ba10d40…): the ids moved, the
    # names did not, and the pack is keyed by name, so it still covers every name of the bundled KB
    names = sorted(set(NameTable.from_kb(kb, normalize=True).keys))
    assert len(pack) == len(names)
    assert pack.get(names)[1].all()
    sample = names[::4000]
    got, found = pack.get(sample)
    cos = (got * enc.encode(sample)).sum(1)
    assert float(cos.min()) > 0.9, cos  # product-quantised: close to, not equal to, the float vectors


@pytest.mark.slow
def test_the_shipped_retriever_loads_over_minilm_and_links(tiny_kb, tmp_path):
    linker = create_linker("dense:default", tiny_kb, cache_dir=tmp_path)
    got = linker.candidates(["mammary carcinoma", "cancer of the colon"], 1)
    assert [c[0].concept_id for c in got] == ["D001", "D002"]
    base = TextEncoder.load("minilm")
    v, b = linker.encoder.encode(["breast cancer"]), base.encode(["breast cancer"])
    cos = float(v[0] @ b[0])
    assert np.isclose(np.linalg.norm(v), 1.0) and 0.5 < cos < 0.9999, cos  # the delta moved the base
