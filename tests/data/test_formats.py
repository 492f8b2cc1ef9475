"""Every output format by name and extension; round trips keep the text and the offsets (hypothesis,
unicode); format detection; the CSV/TSV table."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genbel.data.formats import (
    OUTPUT_FORMATS,
    detect_input_format,
    output_format_of,
    read_documents,
    write_documents,
)
from genbel.data.linked import LinkedConcept, LinkedDocument
from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.data.table import TABLE_COLUMNS
from genbel.errors import ConfigError
from tests.conftest import make_doc
from tests.helpers import raises_code

# text without control characters, surrogates or non-characters (which XML 1.0 cannot hold)
TEXT_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"))
READABLE = ("bigbio-json", "bigbio-jsonl", "pubtator", "bioc-xml", "bioc-json", "brat")
NAMES = {"bigbio-json": "o.json", "bigbio-jsonl": "o.jsonl", "pubtator": "o.pubtator", "bioc-xml": "o.xml",
         "bioc-json": "o.bioc.json", "brat": "o", "csv": "o.csv", "tsv": "o.tsv"}


@st.composite
def linked_documents(draw):
    docs = []
    for i in range(draw(st.integers(1, 3))):
        text = draw(st.text(TEXT_CHARS, min_size=1, max_size=60))
        cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
        entities, cands = [], []
        for n, (s, e) in enumerate(zip(cuts[::2], cuts[1::2])):
            if s == e or not text[s:e].strip() or text[s:e] != text[s:e].strip():
                continue  # the writers keep a mention's text; brat and PubTator rows cannot hold edge spaces
            cid = f"D{n:03d}"
            entities.append(Entity(f"T{n + 1}", "Disease", [text[s:e]], [(s, e)], [Normalization("MESH", cid)]))
            cands.append((LinkedConcept(cid, "Näme ünicode", 0.75), LinkedConcept("D999", "Other", 0.25)))
        doc = Document(f"d{i}", f"d{i}", [Passage(f"d{i}-p", "text", [text], [(0, len(text))])], entities)
        docs.append(LinkedDocument(doc, cands))
    return docs


@pytest.mark.parametrize("fmt", READABLE)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=linked_documents())
def test_round_trip_keeps_text_offsets_and_top_concept(tmp_path_factory, fmt, docs):
    out = tmp_path_factory.mktemp(fmt) / NAMES[fmt]
    assert write_documents(docs, out) == fmt
    assert detect_input_format(out) == fmt
    back = {d.document_id: d for d in read_documents(out, keep_annotations=True)}
    for ld in docs:
        b = back[ld.document.document_id]
        text = ld.document.text
        if fmt == "pubtator":  # PubTator holds title + " " + abstract: no passage text is lost
            assert b.text.rstrip() == text.rstrip()
        else:
            assert b.text == text
        assert [(e.offsets, e.text) for e in b.entities] == [(e.offsets, e.text) for e in ld.document.entities]
        assert [e.gold_ids for e in b.entities] == [[c[0].id] for c in ld.candidates]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=linked_documents(), delimiter=st.sampled_from([",", "\t"]))
def test_table_rows_give_offsets_into_the_text(tmp_path_factory, docs, delimiter):
    out = tmp_path_factory.mktemp("t") / ("o.csv" if delimiter == "," else "o.tsv")
    write_documents(docs, out)
    raw = out.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(raw), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == ","
                           else csv.QUOTE_NONE))
    assert tuple(rows[0]) == TABLE_COLUMNS
    texts = {ld.document.document_id: ld.document.text for ld in docs}
    expected = [(ld.document.document_id, e.start, e.end) for ld in docs for e in ld.document.entities]
    assert [(r[0], int(r[1]), int(r[2])) for r in rows[1:]] == expected
    for r in rows[1:]:
        assert r[3] == texts[r[0]][int(r[1]):int(r[2])]
        assert r[5].startswith("D") and r[6] == "Näme ünicode" and r[7] == "0.75"
        assert r[8] == f"{r[5]} 0.75 | D999 0.25"


def test_output_format_by_extension_and_name(tmp_path):
    assert {output_format_of(NAMES[f]) for f in OUTPUT_FORMATS} == set(OUTPUT_FORMATS)
    assert [output_format_of(NAMES[f]) for f in OUTPUT_FORMATS] == list(OUTPUT_FORMATS)
    assert output_format_of("x.txt", "csv") == "csv"
    assert output_format_of("x.out", "json") == "bigbio-json"
    with raises_code("E455", ConfigError, match=r"\.docx"):
        output_format_of("x.docx")
    with raises_code("E022", ConfigError, match="--output-format"):
        output_format_of("x.csv", "excel")


def test_linked_bigbio_output_keeps_the_linker_keys(tmp_path):
    d = make_doc("1", "APC gene", [("APC", "Disease", "D003")]).to_dict()
    d["entities"][0]["candidates"] = [{"code": "D003", "name": "APC", "preferred_name": "Adenomatous Polyposis Coli",
                                       "score": 0.5, "matched": "APC"}]
    out = tmp_path / "o.jsonl"
    write_documents([d], out)
    assert json.loads(out.read_text(encoding="utf-8"))["entities"][0]["candidates"][0]["matched"] == "APC"
    write_documents([d], tmp_path / "o.csv")
    row = (tmp_path / "o.csv").read_text(encoding="utf-8").splitlines()[1]
    assert row == "1,0,3,APC,Disease,D003,Adenomatous Polyposis Coli,0.5,D003 0.5"


def test_detection_of_each_input_and_annotations_dropped_unless_asked(tmp_path):
    doc = make_doc("1", "Colon cancer.", [("Colon cancer", "Disease", "D002")])
    for fmt in READABLE:
        out = tmp_path / NAMES[fmt]
        write_documents([doc], out)
        assert detect_input_format(out) == fmt
        assert read_documents(out)[0].entities == []
        assert len(read_documents(out, keep_annotations=True)[0].entities) == 1
    (tmp_path / "plain.txt").write_text("Just some text | with a bar.\n", encoding="utf-8")
    assert detect_input_format(tmp_path / "plain.txt") == "text"
    assert detect_input_format("-") == "text"


def test_brat_round_trip_keeps_a_leading_bom_character(tmp_path):
    text = "\ufeffFAP and colon cancer"
    doc = Document("d0", "d0", [Passage("d0-p", "text", [text], [(0, len(text))])],
                   [Entity("T1", "Disease", ["colon cancer"], [(9, 21)], [Normalization("MESH", "D003110")])])
    out = tmp_path / "brat"
    write_documents([LinkedDocument(doc, [(LinkedConcept("D003110", "Colonic Neoplasms", 0.9),)])], out, fmt="brat")
    back = read_documents(out, keep_annotations=True)
    assert back[0].text == text
    assert [(e.offsets, e.text) for e in back[0].entities] == [([(9, 21)], ["colon cancer"])]
