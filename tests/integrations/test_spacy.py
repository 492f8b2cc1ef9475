"""The spaCy components genbel_ner and genbel_linker on spacy.blank("en") (no model download)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")

import genbel.integrations.spacy as gs
from genbel.annotate import annotate
from genbel.errors import ConfigError, InputError
from tests.helpers import raises_code

TEXT = "Colorectal cancer (CRC) and breast cancer were found. CRC is common; ibuprofen helped."


@pytest.fixture
def kb_dir(tiny_kb, tmp_path):
    return str(tiny_kb.save(tmp_path / "kb"))


def _linked(doc):
    return [(e.text, e.label_, e._.kb_ents[0][0] if e._.kb_ents else None) for e in doc.ents]


def test_linker_after_an_entity_ruler_links_its_entities_with_long_forms(kb_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "DISEASE", "pattern": "CRC"},
                                               {"label": "ORG", "pattern": "breast cancer"}])
    nlp.add_pipe("genbel_linker", config={"kb": kb_dir, "linker": "tfidf", "max_entities_per_mention": 2})
    doc = nlp(TEXT)
    assert _linked(doc) == [("CRC", "DISEASE", "D002"), ("breast cancer", "ORG", "D001"), ("CRC", "DISEASE", "D002")]
    assert all(len(e._.kb_ents) <= 2 and isinstance(e._.kb_ents[0][1], float) for e in doc.ents)
    plain = spacy.blank("en")
    plain.add_pipe("entity_ruler").add_patterns([{"label": "DISEASE", "pattern": "CRC"}])
    plain.add_pipe("genbel_linker", config={"kb": kb_dir, "linker": "tfidf", "resolve_abbreviations": False,
                                            "threshold": 0.5})
    # "CRC" alone shares no character trigram with a KB name above the threshold
    assert [e._.kb_ents for e in plain(TEXT).ents] == [[], []]


def test_ner_and_linker_give_what_genbel_annotate_gives(kb_dir, tiny_kb):
    nlp = spacy.blank("en")
    nlp.add_pipe("genbel_ner", config={"kb": kb_dir, "detector": "dictionary"})
    linker = nlp.add_pipe("genbel_linker", config={"kb": kb_dir, "linker": "tfidf", "k": 5})
    docs = list(nlp.pipe([TEXT, "Nothing here.", "APC."], batch_size=2))
    expected = annotate([TEXT, "Nothing here.", "APC."], tiny_kb, detector="dictionary", linker="tfidf")
    for doc, ann in zip(docs, expected):
        assert [(e.start_char, e.end_char, e._.kb_ents) for e in doc.ents] == [
            (a.entity.start, a.entity.end, [(c.id, c.score) for c in a.candidates]) for a in ann.entities
        ]
    assert linker.kb["D002"].name == "Colorectal Neoplasms"


def test_ner_keeps_the_entities_of_an_earlier_component(kb_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "MINE", "pattern": "cancer were"}])
    nlp.add_pipe("genbel_ner", config={"kb": kb_dir, "detector": "dictionary"})
    assert [(e.text, e.label_) for e in nlp(TEXT).ents] == [
        ("Colorectal cancer", "Disorders"), ("cancer were", "MINE"), ("ibuprofen", "Chemicals & Drugs"),
    ]


def test_to_disk_and_spacy_load_without_the_original_kb(kb_dir, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("genbel_ner", config={"kb": kb_dir, "detector": "dictionary"})
    nlp.add_pipe("genbel_linker", config={"kb": kb_dir, "linker": "tfidf"})
    before = _linked(nlp(TEXT))
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(kb_dir)
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["genbel_ner", "genbel_linker"]
    assert _linked(loaded(TEXT)) == before
    (tmp_path / "pipeline" / "genbel_linker" / "genbel_component.json").unlink()
    with raises_code("E527", InputError, match="genbel_component.json"):
        spacy.load(tmp_path / "pipeline")


def test_invalid_settings_are_coded_errors():
    nlp = spacy.blank("en")
    with raises_code("E528", ConfigError, match="max_entities_per_mention"):
        nlp.add_pipe("genbel_linker", config={"max_entities_per_mention": 0})


def test_entry_points_name_the_factories():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    eps = project["project"]["entry-points"]["spacy_factories"]
    assert set(eps) == {"genbel_ner", "genbel_linker"}
    for name, target in eps.items():
        module, attr = target.split(":")
        assert getattr(importlib.import_module(module), attr) is getattr(gs, f"make_{name}")
        assert spacy.registry.factories.get(name) is not None


def test_a_kb_object_from_python_is_saved_with_the_pipeline(tiny_kb, tmp_path):
    nlp = spacy.blank("en")
    linker = nlp.add_pipe("genbel_linker", config={"linker": "exact"})
    linker.set_kb(tiny_kb)
    nlp.add_pipe("entity_ruler", before="genbel_linker").add_patterns([{"label": "X", "pattern": "colon cancer"}])
    assert _linked(nlp("A colon cancer.")) == [("colon cancer", "X", "D002")]
    nlp.to_disk(tmp_path / "p")
    assert _linked(spacy.load(tmp_path / "p")("A colon cancer.")) == [("colon cancer", "X", "D002")]
