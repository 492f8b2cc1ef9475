from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbel.data.bigbio import (
    document_from_dict,
    read_bigbio,
    read_bigbio_json,
    read_bigbio_jsonl,
    write_bigbio_json,
    write_bigbio_jsonl,
)
from genbel.data.model import Document, Entity, Passage
from genbel.data.pubtator import format_pubtator, parse_pubtator, read_pubtator, write_pubtator
from genbel.errors import FormatError, InputError
from tests.conftest import shared
from tests.data.test_pubtator import FIXTURE
from tests.helpers import raises_code


def _doc_dict() -> dict:
    return {
        "id": "1",
        "document_id": "1",
        "passages": [
            {"id": "p", "type": "abstract", "text": ["Colon cancer in APC carriers."], "offsets": [[0, 29]]}
        ],
        "entities": [
            {
                "id": "e1",
                "type": "Disease",
                "text": ["Colon cancer"],
                "offsets": [[0, 12]],
                "normalized": [{"db_name": "MESH", "db_id": "D003110"}],
            },
        ],
        "events": [],
        "coreferences": [],
        "relations": [],
    }


def test_json_list_and_single_document(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text(json.dumps([_doc_dict()]), encoding="utf-8")
    (d,) = read_bigbio_json(p)
    assert d.to_dict() == _doc_dict()
    assert d.entities[0].gold_ids == ["D003110"]
    p.write_text(json.dumps(_doc_dict()), encoding="utf-8")
    assert [x.to_dict() for x in read_bigbio_json(p)] == [_doc_dict()]


def test_text_as_plain_string_and_missing_normalized() -> None:
    obj = _doc_dict()
    obj["passages"][0]["text"] = "Colon cancer in APC carriers."
    del obj["entities"][0]["normalized"]
    d = document_from_dict(obj)
    assert d.passages[0].text == ["Colon cancer in APC carriers."] and d.entities[0].normalized == []


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text('[\n{"id": "1",\n "passages": [}\n]', encoding="utf-8")
    with raises_code("E013", FormatError, match=rf"^\[E013\] {p}:3: invalid JSON: "):
        read_bigbio_json(p)
    q = tmp_path / "a.jsonl"
    q.write_text(json.dumps(_doc_dict()) + "\n\n{broken\n", encoding="utf-8")
    with raises_code("E013", FormatError, match=rf"^\[E013\] {q}:3: invalid JSON: "):
        read_bigbio_jsonl(q)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.pop("passages"), "document #0 (document 1): missing required field 'passages'"),
        (lambda o: o.pop("entities"), "document #0 (document 1): missing required field 'entities'"),
        (lambda o: (o.pop("id"), o.pop("document_id")), "document #0: missing required field 'document_id'"),
        (
            lambda o: o["entities"][0].pop("offsets"),
            "document #0 (document 1) entity 'e1': missing required field 'offsets'",
        ),
        (
            lambda o: o["entities"][0].pop("id"),
            "document #0 (document 1) entity #0: missing required field 'id'",
        ),
        (
            lambda o: o["entities"][0]["normalized"][0].pop("db_id"),
            "document #0 (document 1) entity 'e1' normalized #0: missing required field 'db_id'",
        ),
        (
            lambda o: o["passages"][0].pop("text"),
            "document #0 (document 1) passage #0: missing required field 'text'",
        ),
    ],
)
def test_missing_fields(tmp_path: Path, mutate, message: str) -> None:
    obj = _doc_dict()
    mutate(obj)
    p = tmp_path / "a.json"
    p.write_text(json.dumps([obj]), encoding="utf-8")
    with raises_code("E014", FormatError) as exc:
        read_bigbio_json(p)
    assert str(exc.value) == f"[E014] {p}: {message}"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o["entities"][0].__setitem__("offsets", [[0]]), "must hold [start, end] integer pairs"),
        (lambda o: o["entities"][0].__setitem__("offsets", [[5, 2]]), "must hold [start, end] integer pairs"),
        (lambda o: o["entities"][0].__setitem__("text", [1]), "must be a string or a list of strings"),
        (lambda o: o.__setitem__("entities", {}), "field 'entities' must be list, got dict"),
        (
            lambda o: o["passages"][0].__setitem__("offsets", [[0, 10]]),
            "offsets 0-10 span 10 characters, text has 29",
        ),
    ],
)
def test_wrong_field_types(mutate, reason: str) -> None:
    obj = _doc_dict()
    mutate(obj)
    with raises_code("E016", 
        FormatError,
        match=rf"x.json: document #0 \(document 1\).*{reason.replace('[', '.').replace(']', '.')}",
    ):
        document_from_dict(obj, "x.json: document #0")


def test_offsets_mismatch_e005_and_modes(tmp_path: Path) -> None:
    obj = _doc_dict()
    obj["entities"][0]["offsets"] = [[1, 13]]
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps(obj) + "\n", encoding="utf-8")
    with raises_code("E005", InputError) as exc:
        read_bigbio_jsonl(p)
    assert str(exc.value) == (
        f"[E005] {p}:1 (document 1): entity 'e1' offsets 1-13 give 'olon cancer ' "
        "but the entity text is 'Colon cancer'"
    )
    assert read_bigbio_jsonl(p, offsets="warn")[0].entities[0].offsets == [(1, 13)]
    assert read_bigbio_jsonl(p, offsets="fix")[0].entities[0].offsets == [(0, 12)]


def test_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text((json.dumps(_doc_dict()) + "\n") * 2, encoding="utf-8")
    with raises_code("E016", InputError, match=rf"duplicate document id '1' \({p}:1 and {p}:2\)"):
        read_bigbio_jsonl(p)
    assert len(read_bigbio_jsonl(p, on_duplicate="skip-identical")) == 1
    other = _doc_dict()
    other["entities"] = []
    p.write_text(json.dumps(_doc_dict()) + "\n" + json.dumps(other) + "\n", encoding="utf-8")
    with raises_code("E016", InputError, match="with different content"):
        read_bigbio_jsonl(p, on_duplicate="skip-identical")


def test_missing_file(tmp_path: Path) -> None:
    with raises_code("E006", InputError, match="file not found"):
        read_bigbio(tmp_path / "x.jsonl")


def test_round_trip_fixture_pubtator_bigbio_pubtator(tmp_path: Path) -> None:
    docs = parse_pubtator(FIXTURE)
    for name, writer in (("a.json", write_bigbio_json), ("a.jsonl", write_bigbio_jsonl)):
        writer(docs, tmp_path / name)
        back = read_bigbio(tmp_path / name)
        assert [d.to_dict() for d in back] == [d.to_dict() for d in docs]
        assert format_pubtator(back) == format_pubtator(docs)
        assert [[e.gold_ids for e in d.entities] for d in back] == [
            [e.gold_ids for e in d.entities] for d in docs
        ]


def test_round_trip_ncbi_test_file(tmp_path: Path) -> None:
    src = shared("ncbi-disease", "NCBItestset_corpus.txt")
    docs = read_pubtator(src)
    write_bigbio_jsonl(docs, tmp_path / "t.jsonl")
    write_pubtator(read_bigbio_jsonl(tmp_path / "t.jsonl"), tmp_path / "t.pubtator")
    original = src.read_text(encoding="utf-8").splitlines()
    again = (tmp_path / "t.pubtator").read_text(encoding="utf-8").splitlines()
    # identical except the ids written with a leading space in the original (' D007945')
    diff = [(a, b) for a, b in zip(original, again, strict=False) if a != b]
    assert len(original) == len(again)
    assert diff and all(a.replace("\t ", "\t") == b for a, b in diff)


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    def docs():
        yield Document("1", "1", [Passage("p", "t", ["x"], [(0, 1)])], [])
        raise RuntimeError("boom while writing")

    for writer, name in ((write_bigbio_json, "a.json"), (write_bigbio_jsonl, "a.jsonl")):
        with pytest.raises(RuntimeError, match="boom"):
            writer(docs(), tmp_path / name)
        assert list(tmp_path.iterdir()) == []


def test_unicode_written_verbatim(tmp_path: Path) -> None:
    d = Document(
        "1",
        "1",
        [Passage("p", "t", ["Sjögren syndrome"], [(0, 16)])],
        [Entity("e", "Disease", ["Sjögren syndrome"], [(0, 16)], [])],
    )
    write_bigbio_json([d], tmp_path / "a.json")
    assert "Sjögren" in (tmp_path / "a.json").read_text(encoding="utf-8")
    assert read_bigbio_json(tmp_path / "a.json")[0].to_dict() == d.to_dict()


def test_linked_output_reads_its_gold_not_its_predictions() -> None:
    """``genbel link`` output: ``normalized`` is the prediction, the corpus' gold is ``gold_normalized``.

    Reading it back (``genbel evaluate linked.json``) must take the gold, or the evaluation scores the
    linker against its own predictions (100 %)."""
    from genbel.data.linked import LinkedConcept, LinkedDocument

    gold = document_from_dict(_doc_dict())
    out = LinkedDocument(gold, [(LinkedConcept("D009369", "Neoplasms", 0.4),)]).to_dict()
    assert out["entities"][0]["normalized"][0]["db_id"] == "D009369"  # the prediction
    back = document_from_dict(out)
    assert back.entities[0].gold_ids == ["D003110"]
    assert LinkedDocument.from_dict(out).to_dict() == out  # round trip keeps prediction and gold apart
    del out["entities"][0]["gold_normalized"]  # linked without gold (raw text): no gold, not the prediction
    assert document_from_dict(out).entities[0].gold_ids == []
    out["entities"][0]["gold_normalized"] = {"db_id": "x"}
    with raises_code("E016", FormatError, match="gold_normalized"):
        document_from_dict(out)
