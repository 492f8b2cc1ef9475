"""genbel.pipeline: what `genbel link`/`evaluate`/`build-index` do, as library functions."""

from __future__ import annotations

import json
from pathlib import Path

from genbel.data import write_corpus
from genbel.errors import ConfigError, InputError
from genbel.linkers.exact import ExactMatchLinker
from genbel.pipeline import (
    generative_options,
    linked_documents,
    linker_kb,
    load_augmented_kb,
    read_input,
    read_markup,
    write_linked,
)
from tests.conftest import make_doc
from tests.helpers import raises_code


def test_read_markup_and_auto_input(tmp_path: Path) -> None:
    p = tmp_path / "m.txt"
    p.write_text("# comment\n\nshe had [breast cancer]{Disorders} last year\n[APC]{}\n", encoding="utf-8")
    docs = read_markup(p)
    assert [d.document_id for d in docs] == ["3", "4"]
    assert docs[0].entities[0].mention == "breast cancer" and docs[0].entities[0].type == "Disorders"
    assert docs[1].entities[0].type == ""
    again, is_markup = read_input(p)
    assert is_markup and [d.text for d in again] == [d.text for d in docs]
    empty = tmp_path / "e.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with raises_code("E016", InputError) as e:
        read_markup(empty)
    assert str(e.value).startswith("[E016]")
    with raises_code("E006", InputError) as e:
        read_input(tmp_path / "missing.txt")
    assert str(e.value).startswith("[E006]")


def test_linked_documents_and_write(tiny_kb, tmp_path: Path) -> None:
    docs = [make_doc("1", "colon cancer and ibuprofen", [("colon cancer", "Disease", "D002"),
                                                         ("ibuprofen", "Chemical", "C004")])]
    results = ExactMatchLinker(tiny_kb).link_documents(docs, k=3, entity_types=["Disease"])
    out = linked_documents(docs, results, tiny_kb.name)
    ents = out[0]["entities"]
    assert ents[0]["candidates"] == [{"code": "D002", "name": "Colorectal Neoplasms", "score": 1.0}]
    assert ents[0]["normalized"][0]["db_id"] == "D002" and ents[0]["gold_normalized"]
    assert "candidates" not in ents[1]  # filtered out by entity type: unchanged
    write_linked(out, tmp_path / "o.jsonl", "jsonl")
    assert json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])["document_id"] == "1"
    with raises_code("E022", ConfigError):
        write_linked(out, tmp_path / "o.xml", "xml")


def test_generative_options() -> None:
    assert generative_options("tfidf", constrained=False, num_beams=3) == {}
    assert generative_options("generative:run", num_beams=3) == {
        "constrained": True, "restrict_to_group": True, "num_beams": 3,
    }


def test_linker_kb_and_augmented_kb(tiny_kb, tmp_path: Path) -> None:
    tiny_kb.save(tmp_path / "run" / "kb")
    assert linker_kb(None, None, f"generative:{tmp_path / 'run'}").fingerprint() == tiny_kb.fingerprint()
    assert linker_kb(str(tmp_path / "run" / "kb"), None, "tfidf").name == "tiny"
    with raises_code("E014", ConfigError) as e:
        linker_kb(None, None, "tfidf")
    assert str(e.value).startswith("[E014]")
    corpus = tmp_path / "train.json"
    write_corpus([make_doc("1", "big bowel cancer", [("big bowel cancer", "Disease", "D002")])], corpus)
    kb, added = load_augmented_kb(tmp_path / "run" / "kb", augment=[corpus])
    assert added == [(str(corpus), 1)] and kb.lookup("big bowel cancer") == ["D002"]
