"""Dense index files: reading the stored name vectors back (index_vectors); index kinds chosen by size and
the streamed IVF-PQ index (UMLS scale, issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from genbel.encoders import TextEncoder
from genbel.errors import ConfigError, IndexMismatchError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.loaders import augment_kb
from genbel.linkers.dense import DenseLinker
from genbel.linkers.dense_index import (
    build_faiss_index,
    build_ivfpq_index,
    choose_index_kind,
    index_vectors,
    ivfpq_settings,
)
from genbel.linkers.nametable import NameTable
from tests.conftest import make_doc
from tests.helpers import raises_code
from tests.training.retriever_fixtures import make_kb


@pytest.fixture
def kb():
    return make_kb()


def test_index_vectors_of_an_augmented_kb_map_back_by_name(kb, encoder_dir, tmp_path):
    aug = KnowledgeBase([Concept.from_dict(c.to_dict()) for c in kb], name="aug")
    augment_kb(aug, [make_doc("1", "mammary cancer", [("mammary cancer", "Disease", "D001")])])
    assert aug.n_names() == kb.n_names() + 1
    DenseLinker(aug, str(encoder_dir)).save(tmp_path / "aug")
    mapped = index_vectors(tmp_path / "aug", kb, index_kb=aug)
    direct = TextEncoder.load(encoder_dir).encode(NameTable.from_kb(kb).keys)
    np.testing.assert_allclose(mapped, direct, atol=1e-5)
    with raises_code("E010", IndexMismatchError):
        index_vectors(tmp_path / "aug", aug, index_kb=kb)  # the index was not built for `kb`
    with raises_code("E302", IndexMismatchError):  # names of the wanted KB missing from the index
        lobular = KnowledgeBase([Concept("D001", "lobular carcinoma")])
        index_vectors(tmp_path / "aug", lobular, index_kb=aug)

def test_choose_by_size() -> None:
    assert choose_index_kind(10_000, 384) == "flat"
    assert choose_index_kind(1_000_000, 384) == "hnsw"  # 1.5 GB of floats
    assert choose_index_kind(7_000_000, 384) == "ivfpq"  # 10.7 GB of floats: codes instead
    cfg = ivfpq_settings(7_000_000, 384)
    assert cfg["m"] == 48 and cfg["nlist"] & (cfg["nlist"] - 1) == 0 and cfg["train"] <= 262_144


def unit(rng: np.random.Generator, n: int, d: int = 32) -> np.ndarray:
    centers = rng.normal(size=(20, d))
    x = centers[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivfpq_streamed_equals_in_memory_and_finds_neighbours() -> None:
    rng = np.random.default_rng(0)
    x = unit(rng, 3000)
    streamed = build_ivfpq_index((x[i : i + 700] for i in range(0, len(x), 700)), 32, len(x))
    whole = build_faiss_index(x, "ivfpq")
    assert streamed.ntotal == whole.ntotal == 3000
    q = unit(np.random.default_rng(5), 50)
    _, a = streamed.search(q, 10)
    _, b = whole.search(q, 10)
    assert np.array_equal(a, b)  # same training sample, same codes
    _, truth = build_faiss_index(x, "flat").search(q, 1)
    assert np.mean([truth[i, 0] in a[i] for i in range(50)]) > 0.7  # 1-recall@10
    assert streamed.reconstruct(3).shape == (32,)


def test_small_and_unknown() -> None:
    rng = np.random.default_rng(1)
    tiny = build_faiss_index(unit(rng, 40), "ivfpq")  # fewer vectors than the training sample
    assert tiny.ntotal == 40
    assert build_faiss_index(unit(rng, 40), "auto").ntotal == 40
    with pytest.raises(ConfigError):
        build_faiss_index(unit(rng, 4), "lsh")
