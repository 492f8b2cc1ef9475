"""Shipped name vectors (a pack) and an output projection in the dense linker and trained retrievers."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np

from genbel.encoders import TextEncoder, encoder_fingerprint
from genbel.encoders.projection import fit_pca
from genbel.encoders.vector_pack import write_name_pack
from genbel.linkers import dense as ld
from genbel.linkers.dense import DenseLinker, cached_dense_linker, load_retriever
from genbel.linkers.nametable import NameTable
from genbel.linkers.registry import create_linker


def _names(kb):
    return sorted(set(NameTable.from_kb(kb, normalize=True).keys))


def _pack(encoder, texts, path, fingerprint=None):
    return write_name_pack(path, texts, encoder.encode(texts, desc="pack"), fingerprint or encoder_fingerprint(encoder))


def test_names_in_the_pack_are_not_embedded_and_link_as_before(encoder, tiny_kb, embedded, tmp_path):
    names = _names(tiny_kb)
    plain = DenseLinker(tiny_kb, encoder)
    embedded.clear()
    pack = _pack(encoder, names[:-2], tmp_path / "p.safetensors")
    linker = DenseLinker(tiny_kb, encoder, name_pack=pack)
    assert sorted(embedded) == names[-2:]
    stats = linker.embedding_stats
    assert (stats.embedded, stats.from_store, stats.from_pack) == (2, 0, len(names) - 2)
    assert "from the shipped name vectors" in str(stats)
    queries = ["breast tumour", "colon cancer", "APC", "ibuprofen tablets"]
    assert [[c.concept_id for c in cs] for cs in linker.candidates(queries, 3)] == \
        [[c.concept_id for c in cs] for cs in plain.candidates(queries, 3)]
    a, b = linker.index.reconstruct_n(0, linker.index.ntotal), plain.index.reconstruct_n(0, plain.index.ntotal)
    assert float((a * b).sum(1).min()) > 0.999  # int8 vectors, renormalised


def test_a_pack_of_another_encoder_is_ignored(encoder, tiny_kb, embedded, tmp_path, caplog):
    names = _names(tiny_kb)
    pack = _pack(encoder, names, tmp_path / "p.safetensors", fingerprint="0" * 64)
    with caplog.at_level(logging.WARNING):
        linker = DenseLinker(tiny_kb, encoder, name_pack=pack)
    assert "E461" in caplog.text and sorted(embedded) == names
    assert linker.embedding_stats.from_pack == 0


def test_the_store_comes_first_and_pack_vectors_are_not_copied_into_it(encoder, tiny_kb, embedded, tmp_path):
    names = _names(tiny_kb)
    pack = _pack(encoder, names, tmp_path / "p.safetensors")
    first = cached_dense_linker(tiny_kb, encoder, tmp_path / "c", name_pack=pack)
    assert embedded == [] and first.embedding_stats.from_pack == len(names)
    assert not any((tmp_path / "c" / "vectors").rglob("*.sqlite")) or \
        all(p.stat().st_size > 0 for p in (tmp_path / "c" / "vectors").rglob("*.sqlite"))
    again = cached_dense_linker(tiny_kb, encoder, tmp_path / "c", name_pack=pack)
    assert again.embedding_stats is None  # the index itself was cached


def _projected_run(run_dir, encoder_kb, tmp_path, k=8):
    """A copy of the trained run with an output projection and a pack, named in retriever.json."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    enc = TextEncoder.load(run / "encoder")
    names = _names(encoder_kb)
    proj = fit_pca(enc.encode(names + [n[::-1] for n in names] + [n + " x" for n in names]), k)
    proj.save(run / "projection.safetensors")
    projected = TextEncoder.load(run / "encoder", projection=run / "projection.safetensors")
    _pack(projected, names[:-1], run / "name_vectors.safetensors")
    cfg = json.loads((run / "retriever.json").read_text())
    cfg.update(projection="projection.safetensors", name_vectors="name_vectors.safetensors")
    (run / "retriever.json").write_text(json.dumps(cfg))
    return run, projected, names


def test_a_retriever_with_a_projection_and_a_pack(run_dir, tiny_kb, embedded, tmp_path):
    run, projected, names = _projected_run(run_dir, tiny_kb, tmp_path)
    linker = load_retriever(run, tiny_kb, cache_dir=tmp_path / "cache")
    assert linker.encoder.dim == 8 and linker.index.d == 8
    assert encoder_fingerprint(linker.encoder) == encoder_fingerprint(projected)
    assert embedded == names[-1:]  # only the name the pack lacks
    qv = linker.encoder.encode(["breast tumour"])  # queries go through the projection too
    np.testing.assert_allclose(qv, projected.encode(["breast tumour"]), atol=1e-6)
    assert linker.candidates(["breast tumour"], 1)[0][0].concept_id == "D001"
    # the cached index is found again by the projected encoder's fingerprint
    embedded.clear()
    again = load_retriever(run, tiny_kb, cache_dir=tmp_path / "cache")
    assert embedded == [] and again.index.d == 8
    # name_pack=None embeds every name
    fresh = load_retriever(run, tiny_kb, cache_dir=False, name_pack=None)
    assert fresh.embedding_stats.from_pack == 0 and fresh.embedding_stats.embedded == len(names)


def test_dense_default_uses_the_shipped_pack(run_dir, tiny_kb, embedded, tmp_path, monkeypatch):
    run, _, names = _projected_run(run_dir, tiny_kb, tmp_path)
    monkeypatch.setattr(ld, "shipped_retriever_dir", lambda: run)
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path / "home"))
    linker = create_linker("dense:default", tiny_kb)
    assert embedded == names[-1:] and linker.embedding_stats.from_pack == len(names) - 1
