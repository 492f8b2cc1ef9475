from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbel.data import (
    detect_corpus_format,
    entity_has_type,
    example_documents,
    filter_entity_types,
    load_corpus,
    load_documents,
    parse_entity_types,
    parse_pubtator,
    write_corpus,
)
from genbel.data.abbreviations import find_abbreviations
from genbel.errors import FormatError, InputError
from tests.conftest import shared
from tests.data.test_pubtator import FIXTURE
from tests.helpers import raises_code


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("c.json", "bigbio-json"),
        ("c.jsonl", "bigbio-jsonl"),
        ("c.pubtator", "pubtator"),
        ("c.txt", "pubtator"),
    ],
)
def test_write_by_extension_and_detect(tmp_path: Path, name: str, fmt: str) -> None:
    docs = parse_pubtator(FIXTURE)
    write_corpus(docs, tmp_path / name)
    assert detect_corpus_format(tmp_path / name) == fmt
    assert [d.to_dict() for d in load_corpus(tmp_path / name)] == [d.to_dict() for d in docs]


def test_content_beats_extension(tmp_path: Path) -> None:
    docs = parse_pubtator(FIXTURE)
    write_corpus(docs, tmp_path / "corpus.data", format="jsonl")
    assert detect_corpus_format(tmp_path / "corpus.data") == "bigbio-jsonl"
    write_corpus(docs, tmp_path / "pub.json", format="pubtator")
    assert detect_corpus_format(tmp_path / "pub.json") == "pubtator"
    assert len(load_corpus(tmp_path / "pub.json")) == 2
    single = tmp_path / "one.json"
    single.write_text(json.dumps(docs[0].to_dict(), indent=2), encoding="utf-8")
    assert detect_corpus_format(single) == "bigbio-json" and load_corpus(single)[0].document_id == "2234245"


def test_errors(tmp_path: Path) -> None:
    with raises_code("E006", InputError) as exc:
        load_corpus(tmp_path / "missing.txt")
    assert str(exc.value) == f"[E006] {tmp_path / 'missing.txt'}: file not found"
    odd = tmp_path / "odd.txt"
    odd.write_text("id,name\n1,foo\n", encoding="utf-8")
    with raises_code("E007", FormatError) as exc2:
        load_corpus(odd)
    assert (
        str(exc2.value)
        == f"[E007] {odd}: unknown corpus format; expected PubTator, BigBio JSON/JSONL or BioC XML/JSON "
        "(pass --input-format on the command line, format= in Python)"
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with raises_code("E016", FormatError, match="the file is empty"):
        load_corpus(empty)
    with raises_code("E007", FormatError, match="unknown corpus format"):
        write_corpus([], tmp_path / "x.csv")
    with raises_code("E154", FormatError, match="invalid value 'xml'"):
        load_corpus(odd, format="xml")


def test_load_options_pass_through(tmp_path: Path) -> None:
    p = tmp_path / "c.txt"
    p.write_text("1|t|Colon cancer.\n1|a|\n1\t1\t13\tColon cancer\tD\tD1\n", encoding="utf-8")
    with raises_code("E005", InputError, match=rf"{p}:3: entity '1-0'"):
        load_corpus(p)
    assert load_corpus(p, offsets="fix")[0].entities[0].offsets == [(0, 12)]


def test_filter_entity_types() -> None:
    docs = parse_pubtator(FIXTURE)
    chem = filter_entity_types(docs, ["Chemical"])
    assert [[e.mention for e in d.entities] for d in chem] == [["Deferoxamine"], []]
    assert [len(d.entities) for d in docs] == [6, 1]  # input untouched
    assert chem[0].passages is docs[0].passages
    multi = parse_pubtator("1|t|Flu virus.\n1|a|\n1\t0\t3\tFlu\tT038,T005\tUMLS:C1\n")
    assert len(filter_entity_types(multi, ["T005"])[0].entities) == 1
    with raises_code("E012", 
        InputError, match="unknown semantic group or entity type 'Diseases'; known: Chemical, Disease"
    ):
        filter_entity_types(docs[:1], ["Diseases"])


def test_entity_type_rule_is_shared() -> None:
    """One rule: a whole type or any comma-separated part; the harness and the query builder use it."""
    from genbel.data.queries import queries_from_documents

    multi = parse_pubtator(
        "1|t|Flu virus cell.\n1|a|\n1\t0\t3\tFlu\tT038,T005\tUMLS:C1\n1\t4\t9\tvirus\tT005\tUMLS:C2\n"
        "1\t10\t14\tcell\tT025\tUMLS:C3\n"
    )
    e_multi, e_virus, e_cell = multi[0].entities
    assert entity_has_type(e_multi, ["T005"]) and entity_has_type(e_multi, [" T038,T005 "])
    assert not entity_has_type(e_cell, ["T005"])
    kept = [e.mention for e in filter_entity_types(multi, ["T005"])[0].entities]
    assert kept == ["Flu", "virus"]
    assert [q.surface for q in queries_from_documents(multi, entity_types=["T005"])] == kept
    # unchecked for a batch: no error for a type absent from these documents
    assert queries_from_documents(multi, entity_types=["Disease"]) == []
    assert filter_entity_types(multi, None)[0].entities == multi[0].entities
    assert filter_entity_types(multi, [])[0].entities == multi[0].entities
    assert parse_entity_types(" Disease, ,Chemical ") == ["Disease", "Chemical"]
    assert parse_entity_types("") is None and parse_entity_types(None) is None


def test_load_documents_is_lenient(tmp_path: Path) -> None:
    dup = FIXTURE + "\n" + FIXTURE.split("\n\n")[0] + "\n"
    p = tmp_path / "dup.pubtator"
    p.write_text(dup)
    with raises_code("E004", InputError):
        load_corpus(p)
    strict_ids = [d.document_id for d in parse_pubtator(FIXTURE)]
    assert [d.document_id for d in load_documents(p)] == strict_ids
    assert len(load_documents([p, str(p)])) == 2 * len(strict_ids)
    with raises_code("E006", InputError) as e:
        load_documents("ncbi-disease:test")  # no data_dir: a missing file
    assert str(e.value).startswith("[E006]")


def test_filter_bc5cdr_types() -> None:
    docs = load_corpus(shared("bc5cdr", "CDR_DevelopmentSet.PubTator.txt"))
    dis = filter_entity_types(docs, {"Disease"})
    chem = filter_entity_types(docs, {"Chemical"})
    assert sum(len(d.entities) for d in dis) == 4244 and sum(len(d.entities) for d in chem) == 5347


def test_example_documents() -> None:
    docs = example_documents()
    assert [d.document_id for d in docs] == ["9427148", "9400934", "9856499"]
    assert [len(d.entities) for d in docs] == [8, 5, 3]
    for d in docs:
        d.validate()
    agu = docs[0]
    assert agu.passages[0].text == ["Aspartylglucosaminuria among Palestinian Arabs."]
    assert find_abbreviations(agu.text)["AGU"] == "Aspartylglucosaminuria"
    assert docs[1].entities[2].gold_ids == ["D019572", "D010871"]
    assert docs[2].entities[0].gold_ids == ["OMIM:610102"]
    # verbatim copies of the NCBI-disease test set
    test = {d.document_id: d for d in load_corpus(shared("ncbi-disease", "NCBItestset_corpus.txt"))}
    assert all(test[d.document_id].to_dict() == d.to_dict() for d in docs)
