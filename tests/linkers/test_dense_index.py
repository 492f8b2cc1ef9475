"""Dense index files: reading the stored name vectors back (index_vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from genbel.encoders import TextEncoder
from genbel.errors import IndexMismatchError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.loaders import augment_kb
from genbel.linkers.dense import DenseLinker
from genbel.linkers.dense_index import index_vectors
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
