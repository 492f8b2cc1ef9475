"""BioC XML and BioC JSON (PubTator3) read and written with the bioc package."""

from __future__ import annotations

import json

import pytest

from genbel.data.bioc import read_bioc_json, read_bioc_xml, write_bioc_json, write_bioc_xml
from genbel.data.linked import LinkedDocument
from genbel.data.model import Document, Passage
from genbel.errors import FormatError, InputError
from tests.conftest import make_doc
from tests.helpers import raises_code

TITLE = "BRCA1 mutations in breast cancer."
ABSTRACT = "Hereditary breast cancer (HBC) is common."

# the shape of PubTator3's BioC JSON export: no "relations"/"sentences" lists, ids in "identifier"
PUBTATOR3 = {
    "PubTator3": [{
        "_id": "12345|None", "id": "12345", "infons": {},
        "passages": [
            {"infons": {"type": "title"}, "offset": 0, "text": TITLE, "annotations": [
                {"id": "1", "infons": {"identifier": "MESH:D001943", "type": "Disease", "database": "ncbi_mesh"},
                 "text": "breast cancer", "locations": [{"offset": 19, "length": 13}]},
            ]},
            {"infons": {"type": "abstract"}, "offset": len(TITLE) + 1, "text": ABSTRACT, "annotations": [
                {"id": "2", "infons": {"identifier": "-", "type": "Disease"},
                 "text": "HBC", "locations": [{"offset": len(TITLE) + 1 + 26, "length": 3}]},
            ]},
        ],
    }],
}


def test_pubtator3_bioc_json(tmp_path):
    f = tmp_path / "pt3.json"
    f.write_text(json.dumps(PUBTATOR3), encoding="utf-8")
    [doc] = read_bioc_json(f)
    assert doc.document_id == "12345"
    assert doc.text == TITLE + " " + ABSTRACT
    a, b = doc.entities
    assert (a.type, a.text, a.offsets, a.gold_ids) == ("Disease", ["breast cancer"], [(19, 32)], ["D001943"])
    assert doc.text[b.start:b.end] == "HBC" and b.normalized == []


def test_bioc_json_lines_and_collections(tmp_path):
    docs = PUBTATOR3["PubTator3"]
    f = tmp_path / "pt.jsonl"
    f.write_text("\n".join(json.dumps({**d, "id": f"{i}"}) for i, d in enumerate(docs * 2)) + "\n", encoding="utf-8")
    assert [d.document_id for d in read_bioc_json(f)] == ["0", "1"]
    g = tmp_path / "coll.json"
    g.write_text(json.dumps({"source": "x", "date": "", "key": "", "infons": {}, "documents": docs}), encoding="utf-8")
    assert [d.document_id for d in read_bioc_json(g)] == ["12345"]


def _linked() -> LinkedDocument:
    doc = make_doc("7", "Sjögren syndrome & breast cancer", [("Sjögren syndrome", "Disease", "D012859"),
                                                              ("breast cancer", "Disease", "D001943")])
    from genbel.data.linked import LinkedConcept

    return LinkedDocument(doc, [(LinkedConcept("D012859", "Sjogren's Syndrome", 0.91),
                                 LinkedConcept("D001", "Other", 0.2)), ()])


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_write_then_read_keeps_text_offsets_and_concepts(tmp_path, fmt):
    out = tmp_path / f"o.{fmt}"
    (write_bioc_xml if fmt == "xml" else write_bioc_json)([_linked()], out)
    [back] = (read_bioc_xml if fmt == "xml" else read_bioc_json)(out)
    doc = _linked().document
    assert back.text == doc.text
    assert [(e.offsets, e.text, e.gold_ids) for e in back.entities] == [
        ([(0, 16)], ["Sjögren syndrome"], ["D012859"]), ([(19, 32)], ["breast cancer"], ["D001943"]),
    ]
    raw = out.read_text(encoding="utf-8")
    assert "Sjogren's Syndrome" in raw and "0.91" in raw  # preferred name, score and candidates in infons


def test_xml_output_refuses_characters_xml_cannot_hold(tmp_path):
    doc = Document("d", "d", [Passage("p", "text", ["bad \x0b char"], [(0, 10)])])
    out = tmp_path / "o.xml"
    with raises_code("E526", FormatError, match="U\\+000B"):
        write_bioc_xml([doc], out)
    assert not out.exists()


def test_malformed_bioc_names_the_file_and_line(tmp_path):
    f = tmp_path / "bad.xml"
    f.write_text("<collection>\n<document><id>1</id>\n<passage><offset>x</offset></passage>", encoding="utf-8")
    with raises_code("E523", FormatError, match="bad.xml:3"):
        read_bioc_xml(f)
    g = tmp_path / "bad.json"
    g.write_text(json.dumps({"documents": [{"id": "1", "passages": [{"offset": "zero", "text": "x"}]}]}),
                 encoding="utf-8")
    with raises_code("E523", FormatError, match="bad.json: document #0 .*offset"):
        read_bioc_json(g)
    h = tmp_path / "nopass.json"
    h.write_text(json.dumps([{"id": "1"}]), encoding="utf-8")
    with raises_code("E523", FormatError, match="passages"):
        read_bioc_json(h)


def test_an_annotation_whose_text_is_not_at_its_location(tmp_path):
    bad = json.loads(json.dumps(PUBTATOR3))
    bad["PubTator3"][0]["passages"][0]["annotations"][0]["locations"][0]["offset"] = 18
    f = tmp_path / "off.json"
    f.write_text(json.dumps(bad), encoding="utf-8")
    with raises_code("E005", InputError, match="off.json"):
        read_bioc_json(f)


def test_load_corpus_reads_bioc_for_evaluation_with_the_lenient_options(tmp_path):
    from genbel.data import LENIENT, detect_corpus_format, load_corpus

    bad = json.loads(json.dumps(PUBTATOR3))
    bad["PubTator3"][0]["passages"][0]["annotations"][0]["locations"][0]["offset"] = 18  # one character early
    bad["PubTator3"].append(bad["PubTator3"][0])  # a byte-identical repeat
    f = tmp_path / "pt3.json"
    f.write_text(json.dumps(bad), encoding="utf-8")
    assert detect_corpus_format(f) == "bioc-json"
    [doc] = load_corpus(f, **LENIENT)
    assert doc.entities[0].offsets == [(19, 32)]
    with raises_code("E523", FormatError, match="occurs twice"):
        read_bioc_json(f, offsets="fix")  # a repeated document is an error unless skip-identical


def test_an_infon_without_key_is_a_coded_error(tmp_path):
    f = tmp_path / "nokey.xml"
    f.write_text("<collection><source/><date/><key/><document><id>1</id><passage><infon ey='type'>t</infon>"
                 "<offset>0</offset><text>x</text></passage></document></collection>", encoding="utf-8")
    with raises_code("E523", FormatError, match="missing attribute 'key'"):
        read_bioc_xml(f)


def test_linked_bioc_keeps_gold_apart_from_predictions(tmp_path) -> None:
    """identifier = the prediction; the input's gold travels as gold_identifier and is what is read back."""
    ld = _linked()
    gold = {e.id: e.gold_ids for e in ld.document.entities}
    out = tmp_path / "o.xml"
    write_bioc_xml([ld], out)
    [back] = read_bioc_xml(out)
    assert {e.id: e.gold_ids for e in back.entities} == gold
    ld.document.entities[0].normalized.clear()  # no gold in the input: none read back (not the prediction)
    write_bioc_xml([ld], out)
    assert read_bioc_xml(out)[0].entities[0].gold_ids == []
