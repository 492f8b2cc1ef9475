"""The name-vector store of the dense linker: a KB that differs by a few names embeds only those."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genbel.encoders import TextEncoder
from genbel.encoders.text_encoder import encoder_fingerprint
from genbel.encoders.vector_store import STORE_FILE, NameVectorStore, embed_with_store, text_key
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers.dense import DenseLinker, cached_dense_linker
from tests.linkers.retrieval_fixtures import make_tiny_encoder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    # batch_size 4: a chunk of the store is 4 × 32 = 128 names, so the KB below spans several chunks
    return TextEncoder.load(make_tiny_encoder(tmp_path_factory.mktemp("enc")), batch_size=4)


@pytest.fixture(scope="module")
def other_encoder(tmp_path_factory):
    return TextEncoder.load(make_tiny_encoder(tmp_path_factory.mktemp("enc2"), seed=1), batch_size=4)


def _kb(n: int = 100, extra: int = 0, name: str = "kb") -> KnowledgeBase:
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    concepts = []
    for i in range(n):
        words = ["".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(int(rng.integers(1, 4)))]
        concepts.append(Concept(f"D{i:04d}", " ".join(words), [f"{words[0]} disease"]))
    for j in range(extra):  # training mentions added as synonyms (--augment-kb)
        concepts[j].synonyms.append(f"mention number {j} of zz")
    return KnowledgeBase(concepts, name=name)



def _vectors(linker: DenseLinker) -> np.ndarray:
    return linker.index.reconstruct_n(0, linker.index.ntotal)


def test_a_kb_with_a_few_more_names_embeds_only_those(encoder, embedded, tmp_path):
    base, augmented = _kb(), _kb(extra=5)
    first = cached_dense_linker(base, encoder, tmp_path / "c")
    n_base = len(set(first.table.keys))
    assert len(embedded) == n_base and first.embedding_stats.embedded == n_base
    embedded.clear()
    second = cached_dense_linker(augmented, encoder, tmp_path / "c")
    new = set(second.table.keys) - set(first.table.keys)
    assert len(new) == 5 and sorted(embedded) == sorted(new)
    assert (second.embedding_stats.embedded, second.embedding_stats.from_store) == (5, n_base)
    assert "5 names embedded" in str(second.embedding_stats)
    # a whole-index hit still loads without touching the store or the encoder
    embedded.clear()
    again = cached_dense_linker(augmented, encoder, tmp_path / "c")
    assert embedded == [] and again.embedding_stats is None
    assert np.array_equal(_vectors(again), _vectors(second))


def test_stored_vectors_are_the_fresh_vectors_bit_for_bit(encoder, tmp_path):
    kb = _kb()
    fresh = DenseLinker(kb, encoder)  # no store: every name embedded, as before the store existed
    distinct = list(dict.fromkeys(fresh.table.keys))
    assert np.array_equal(fresh_vectors := encoder.encode(distinct), _vectors(fresh)[
        [fresh.table.keys.index(t) for t in distinct]])
    cold = DenseLinker(kb, encoder, vector_store=tmp_path / "v")  # chunked through the store
    warm = DenseLinker(kb, encoder, vector_store=tmp_path / "v")  # every vector read back
    assert warm.embedding_stats.embedded == 0 and warm.embedding_stats.from_store == len(distinct)
    assert np.array_equal(_vectors(cold), _vectors(fresh)) and np.array_equal(_vectors(warm), _vectors(fresh))
    store = NameVectorStore.for_encoder(tmp_path / "v", encoder)
    got, found = store.get(distinct)
    assert found.all() and got.dtype == np.float32 and np.array_equal(got, fresh_vectors)


def test_another_encoder_never_reuses_the_vectors(encoder, other_encoder, embedded, tmp_path, caplog):
    kb = _kb(n=40)
    a = DenseLinker(kb, encoder, vector_store=tmp_path / "v")
    embedded.clear()
    b = DenseLinker(kb, other_encoder, vector_store=tmp_path / "v")
    assert b.embedding_stats.from_store == 0 and len(embedded) == len(set(kb_keys := b.table.keys))
    assert not np.array_equal(_vectors(a), _vectors(b))
    stores = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert stores == sorted([encoder_fingerprint(encoder), encoder_fingerprint(other_encoder)])
    # a store whose recorded encoder is not its folder's is set aside, never read
    with sqlite3.connect(tmp_path / "v" / stores[0] / STORE_FILE) as db:
        db.execute("UPDATE meta SET v = ? WHERE k = 'encoder'", ["0" * 64])
    db.close()
    with caplog.at_level(logging.WARNING):
        store = NameVectorStore(tmp_path / "v", stores[0], encoder.dim)
    assert "[E312]" in caplog.text and store.get(list(kb_keys))[1].sum() == 0


def test_a_damaged_row_is_embedded_again_never_returned(encoder, embedded, tmp_path, caplog):
    kb = _kb(n=40)
    fresh = DenseLinker(kb, encoder, vector_store=tmp_path / "v")
    texts = list(dict.fromkeys(fresh.table.keys))
    path = tmp_path / "v" / encoder_fingerprint(encoder) / STORE_FILE
    with sqlite3.connect(path) as db:  # a flipped byte, a truncated vector
        blob = bytearray(db.execute("SELECT vec FROM vectors WHERE key = ?", [text_key(texts[0])]).fetchone()[0])
        blob[5] ^= 0x40
        db.execute("UPDATE vectors SET vec = ? WHERE key = ?", [bytes(blob), text_key(texts[0])])
        db.execute("UPDATE vectors SET vec = substr(vec, 1, 10) WHERE key = ?", [text_key(texts[1])])
    embedded.clear()
    with caplog.at_level(logging.WARNING):
        again = DenseLinker(kb, encoder, vector_store=tmp_path / "v")
    assert "[E313]" in caplog.text and "2 stored name vector(s) are damaged" in caplog.text
    assert sorted(embedded) == sorted(texts[:2]) and again.embedding_stats.embedded == 2
    assert np.allclose(_vectors(again), _vectors(fresh), atol=1e-6)
    caplog.clear()
    embedded.clear()
    DenseLinker(kb, encoder, vector_store=tmp_path / "v")  # the rows were replaced
    assert embedded == [] and "E313" not in caplog.text


def test_a_store_that_is_not_a_database_is_set_aside(encoder, tmp_path, caplog):
    kb = _kb(n=20)
    path = tmp_path / "v" / encoder_fingerprint(encoder) / STORE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage, not SQLite" * 100)
    with caplog.at_level(logging.WARNING):
        linker = DenseLinker(kb, encoder, vector_store=tmp_path / "v")
    assert "[E312]" in caplog.text and "starting a new one" in caplog.text
    assert linker.embedding_stats.embedded == len(set(linker.table.keys))
    assert len(NameVectorStore.for_encoder(tmp_path / "v", encoder)) == linker.embedding_stats.embedded
    assert len(list(path.parent.glob(f"{STORE_FILE}.damaged-*"))) == 1


def test_an_unwritable_store_only_costs_the_saving(encoder, tmp_path, caplog):
    (tmp_path / "v").write_text("a file where the store folder should be")
    with caplog.at_level(logging.WARNING):
        linker = DenseLinker(_kb(n=20), encoder, vector_store=tmp_path / "v")
    assert "[E312]" in caplog.text and "embedding without it" in caplog.text
    assert linker.embedding_stats.embedded == len(set(linker.table.keys))


def test_embed_with_store_without_a_store_embeds_everything(encoder):
    texts = ["b", "aaa", "cc", "b"]
    vectors, stats = embed_with_store(encoder, texts, None)
    assert np.array_equal(vectors, encoder.encode(texts)) and (stats.embedded, stats.from_store) == (4, 0)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from genbel.encoders.vector_store import NameVectorStore
    root, start = sys.argv[1], int(sys.argv[2])
    store = NameVectorStore(root, "f" * 64, 16)
    def vec(i):
        return np.random.default_rng(i).standard_normal(16).astype(np.float32)
    texts = [f"name {i}" for i in range(start, start + 1000)]
    for s in range(0, len(texts), 100):
        part = texts[s:s + 100]
        assert store.put(part, np.stack([vec(int(t.split()[1])) for t in part]))
        got, found = store.get([f"name {i}" for i in range(0, 2000)])
        for i in np.flatnonzero(found):
            assert np.array_equal(got[i], vec(int(i))), i  # a row read is always a whole, right vector
    print("ok")
""")


def test_two_processes_can_share_a_store(tmp_path):
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(start)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for start in (0, 500)]  # overlapping names: both write rows 500-999
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    store = NameVectorStore(tmp_path, "f" * 64, 16)
    assert len(store) == 1500
    got, found = store.get([f"name {i}" for i in range(1500)])
    assert found.all()
    assert np.array_equal(got[1234], np.random.default_rng(1234).standard_normal(16).astype(np.float32))


def test_genbel_evaluate_says_how_the_setup_got_its_vectors(encoder, tmp_path):
    from typer.testing import CliRunner

    from genbel.cli.main import app
    from genbel.data import write_corpus
    from tests.conftest import make_doc

    kb = KnowledgeBase([Concept("D001", "Breast Neoplasms", ["breast cancer"]),
                        Concept("D002", "Colorectal Neoplasms", ["colon cancer"])], name="tiny")
    kb.save(tmp_path / "kb")
    write_corpus([make_doc("d1", "breast cancer and colon cancer",
                           [("breast cancer", "Disease", "D001"), ("colon cancer", "Disease", "D002")])],
                 tmp_path / "test.json")
    write_corpus([make_doc("t1", "mammary tumour", [("mammary tumour", "Disease", "D001")])],
                 tmp_path / "train.json")
    encoder.save(tmp_path / "enc")
    base = ["evaluate", str(tmp_path / "test.json"), "--kb", str(tmp_path / "kb"), "--linker",
            f"dense:{tmp_path / 'enc'}", "--set", f"cache_dir={tmp_path / 'cache'}", "--bootstrap", "10"]
    first = CliRunner().invoke(app, base)
    assert first.exit_code == 0, first.output
    assert "setup: 4 names embedded in" in first.output and "0 from the name-vector store" in first.output
    second = CliRunner().invoke(app, [*base, "--augment-kb", str(tmp_path / "train.json")])
    assert second.exit_code == 0, second.output
    assert "setup: 1 name embedded in" in second.output and "4 from the name-vector store" in second.output


def test_an_interrupted_build_keeps_the_chunks_already_embedded(encoder, embedded, monkeypatch, tmp_path):
    kb = _kb()  # ~200 names: chunks of 128
    encode = TextEncoder.encode
    calls = []

    def failing(self, batch, progress=None, desc="embedding"):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user stops the first build during its second chunk
        return encode(self, batch, progress=progress, desc=desc)

    monkeypatch.setattr(TextEncoder, "encode", failing)
    with pytest.raises(KeyboardInterrupt):
        DenseLinker(kb, encoder, vector_store=tmp_path / "v")
    monkeypatch.setattr(TextEncoder, "encode", encode)
    linker = DenseLinker(kb, encoder, vector_store=tmp_path / "v")
    n = len(set(linker.table.keys))
    assert (linker.embedding_stats.from_store, linker.embedding_stats.embedded) == (128, n - 128)
    assert np.array_equal(_vectors(linker), _vectors(DenseLinker(kb, encoder)))


def test_cached_linker_options_for_the_store(encoder, embedded, tmp_path):
    kb = _kb(n=20)
    cached_dense_linker(kb, encoder, tmp_path / "c", vector_store=False)
    assert not (tmp_path / "c" / "vectors").exists()
    store = NameVectorStore.for_encoder(tmp_path / "mine", encoder)
    linker = cached_dense_linker(kb, encoder, tmp_path / "c2", vector_store=store)
    assert len(store) == linker.embedding_stats.embedded  # a store given is used and left open
