"""The synthetic UMLS-shaped KB: deterministic, streaming, loadable in every output format."""

from __future__ import annotations

import json

import pytest

from genbel.errors import ConfigError, InputError
from genbel.kb.loaders import load_jsonl, load_tsv
from genbel.kb.synthetic import NameStatistics, SyntheticKB, SyntheticKBConfig, write_synthetic_kb
from genbel.kb.umls import load_umls
from tests.helpers import raises_code

REAL = [
    "Malignant neoplasm of breast",
    "Breast Neoplasms",
    "hereditary nonpolyposis colorectal cancer",
    "Colorectal Neoplasms",
    "Huntington disease",
    "type 2 diabetes mellitus",
    "ataxia telangiectasia",
    "Myocardial Infarction",
    "acute myeloid leukemia",
    "neoplasm",
]


@pytest.fixture
def stats() -> NameStatistics:
    return NameStatistics.from_names(REAL)


def small(stats: NameStatistics, seed: int = 0, concepts: int = 300) -> SyntheticKB:
    return SyntheticKB(stats, SyntheticKBConfig(concepts=concepts, seed=seed, block=70, new_words=500))


def test_statistics(stats: NameStatistics) -> None:
    assert stats.words[0] in {"neoplasm", "Neoplasms"} or stats.word_counts[0] >= stats.word_counts[-1]
    assert sum(stats.length_counts) == len(REAL) and stats.length_counts[1] == 1
    assert NameStatistics.from_json(json.loads(json.dumps(stats.to_json()))) == stats
    with raises_code("E600", InputError):
        NameStatistics.from_names(["", "  "])


def test_deterministic_and_shaped(stats: NameStatistics) -> None:
    a = [c.to_dict() for c in small(stats)]
    b = [c.to_dict() for c in small(stats)]
    assert a == b
    assert [c.to_dict() for c in small(stats, seed=1)] != a
    kb = small(stats)  # block ranges (parallel generation) concatenate to the full run
    parts = [c.to_dict() for r in ((0, 2), (2, 3), (3, None)) for b in kb.blocks(*r) for c in b]
    assert parts == a
    assert len(a) == 300 and len({c["id"] for c in a}) == 300
    names = [n for c in a for n in [c["name"], *c["synonyms"]]]
    assert 1.6 < len(names) / len(a) < 2.5  # ~2.06 names per concept
    assert all(c["semantic_types"] and c["semantic_groups"] for c in a)
    assert all(c["name"] not in c["synonyms"] for c in a)
    real_words = set(stats.words)
    words = [w for n in names for w in n.replace(",", " ").split()]
    assert 0.6 < sum(w in real_words for w in words) / len(words) < 1  # mostly real words, some new ones


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "rrf"])
def test_write_and_load(tmp_path, stats: NameStatistics, fmt: str) -> None:
    kb = small(stats, concepts=120)
    out = tmp_path / ("kb." + fmt if fmt != "rrf" else "META")
    counts = write_synthetic_kb(out, kb, fmt, show_progress=False)
    expected = list(kb)
    assert counts == {"concepts": 120, "names": sum(len(c.names) for c in expected)}
    loaded = {"jsonl": load_jsonl, "tsv": load_tsv, "rrf": load_umls}[fmt](out)
    assert len(loaded) == 120
    first = loaded.get(expected[0].id)
    assert first is not None and first.name == expected[0].name
    assert set(first.synonyms) == set(expected[0].synonyms)
    if fmt != "tsv":
        assert first.semantic_types == expected[0].semantic_types


def test_bad_settings(tmp_path, stats: NameStatistics) -> None:
    with raises_code("E601", ConfigError):
        SyntheticKB(stats, SyntheticKBConfig(concepts=0))
    with raises_code("E602", ConfigError):
        write_synthetic_kb(tmp_path / "x", small(stats), "csv")
    assert not (tmp_path / "x").exists()
