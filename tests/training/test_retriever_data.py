from __future__ import annotations

import random

import pytest

from genbel.linkers.nametable import NameTable
from genbel.training.retriever_data import synonym_pairs, training_mentions
from tests.training.retriever_fixtures import make_docs, make_kb


@pytest.fixture
def kb():
    return make_kb()


@pytest.fixture
def docs():
    return make_docs()


def test_training_mentions_resolve_ids_and_drop_what_cannot_be_used(kb, docs):
    table = NameTable.from_kb(kb)
    ments, rep = training_mentions(docs, kb, table, unique=True)
    pos = {cid: j for j, cid in enumerate(table.concept_ids)}
    got = {(m.key, tuple(sorted(table.concept_ids[j] for j in m.concepts))) for m in ments}
    assert ("colorectal carcinoma", ("D002",)) in got  # via the alternate id OMIM:114500
    assert ("breast and colon cancers", ("D001", "D002")) in got  # a composite keeps both positives
    assert (rep.kept, rep.duplicates, rep.nil, rep.not_in_kb) == (6, 1, 1, 1)  # "Mammary cancer" = duplicate
    assert all(j in pos.values() for m in ments for j in m.concepts)
    assert len(training_mentions(docs, kb, table, unique=False)[0]) == 7


def test_synonym_pairs_stay_within_a_concept(kb):
    table = NameTable.from_kb(kb)
    pairs = synonym_pairs(table, random.Random(0), pairs_per_name=2)
    # three concepts with 3 names (2 partners each) and D004 with 2 names (1 partner each)
    assert len(pairs) == 3 * 3 * 2 + 2 * 1
    assert len(set(pairs)) == len(pairs)
    assert len(synonym_pairs(table, random.Random(0), pairs_per_name=1)) == 3 * 3 + 2
    for a, b in pairs:
        assert a != b and table.row_concept[a] == table.row_concept[b]
    only = synonym_pairs(table, random.Random(0), 1, concepts={3})
    assert sorted(only) == [(9, 10), (10, 9)]
