from __future__ import annotations

import logging
from pathlib import Path

import pytest

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.data.pubtator import format_pubtator, infer_db_name, parse_pubtator, read_pubtator, write_pubtator
from genbel.errors import FormatError, InputError
from tests.conftest import shared
from tests.helpers import raises_code

TITLE = "Ocular and auditory toxicity in hemodialyzed patients."
ABSTRACT = "Deferoxamine causes ocular and auditory toxicity in CF patients (OMIM 219700)."
FIXTURE = "\n".join(
    [
        f"2234245|t|{TITLE}",
        f"2234245|a|{ABSTRACT}",
        "2234245\t0\t28\tOcular and auditory toxicity\tDisease\tD014786|D006311\t"
        "Ocular toxicity|auditory toxicity",
        "2234245\t55\t67\tDeferoxamine\tChemical\tD003676",
        "2234245\t75\t103\tocular and auditory toxicity\tDisease\tD014786+D006311",
        "2234245\t107\t109\tCF\tDisease\t219700",
        "2234245\t107\t109\tCF\tDisease\t-1",
        "2234245\t0\t6\tOcular\tDisease\t MESH:C535662",
        "2234245\tCID\tD003676\tD014786",
        "",
        "42|t|Second.",
        "42|a|",
        "42\t0\t6\tSecond\tT038\tUMLS:C0010674",
        "",
    ]
)


def _write(tmp_path: Path, text: str, name: str = "c.txt") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_parse_fixture_exactly() -> None:
    docs = parse_pubtator(FIXTURE)
    assert [d.document_id for d in docs] == ["2234245", "42"]
    d = docs[0]
    assert d.text == TITLE + " " + ABSTRACT
    assert d.passages == [
        Passage("2234245-title", "title", [TITLE], [(0, len(TITLE))]),
        Passage(
            "2234245-abstract", "abstract", [ABSTRACT], [(len(TITLE) + 1, len(TITLE) + 1 + len(ABSTRACT))]
        ),
    ]
    assert [e.id for e in d.entities] == [f"2234245-{i}" for i in range(6)]  # relation row skipped
    composite, chem, plus, omim, nil, spaced = d.entities
    assert composite == Entity(
        "2234245-0",
        "Disease",
        ["Ocular and auditory toxicity"],
        [(0, 28)],
        [Normalization("MESH", "D014786"), Normalization("MESH", "D006311")],
    )
    assert composite.gold_ids == ["D014786", "D006311"]
    assert chem.mention == "Deferoxamine" and chem.gold_ids == ["D003676"]
    assert plus.normalized == [Normalization("MESH", "D014786"), Normalization("MESH", "D006311")]
    assert omim.normalized == [Normalization("OMIM", "219700")] and omim.gold_ids == ["OMIM:219700"]
    assert nil.normalized == [Normalization("MESH", "-1")] and nil.is_nil and nil.gold_ids == []
    assert spaced.normalized == [Normalization("MESH", "MESH:C535662")] and spaced.gold_ids == ["C535662"]
    d.validate()
    mm = docs[1]
    assert mm.text == "Second. "
    assert mm.entities[0].type == "T038"
    assert mm.entities[0].normalized == [Normalization("UMLS", "UMLS:C0010674")]
    assert mm.entities[0].gold_ids == ["C0010674"]


@pytest.mark.parametrize(
    ("raw", "db"),
    [
        ("D003924", "MESH"),
        ("C535662", "MESH"),
        ("MESH:D001", "MESH"),
        ("613097", "OMIM"),
        ("OMIM:215600", "OMIM"),
        ("UMLS:C0010674", "UMLS"),
        ("C0010674", "UMLS"),
        ("xyz", "MESH"),
    ],
)
def test_infer_db_name(raw: str, db: str) -> None:
    assert infer_db_name(raw) == db


def test_title_only_document_and_no_trailing_blank_line() -> None:
    (d,) = parse_pubtator("7|t|Only a title\n7\t0\t4\tOnly\tX\tD1")
    assert d.text == "Only a title" and len(d.passages) == 1 and d.entities[0].mention == "Only"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("1|t|T\n1|a|A\n1\t0\tx\tT\tDisease\tD1\n", 3, "end offset 'x' is not an integer"),
        ("1|t|T\n1|a|A\nnot a pubtator line\n", 3, "expected 'PMID|t|title'"),
        ("1|t|T\n1|a|A\n1\t0\t1\tT\tDisease\tD1\ta\tb\n", 3, "this one has 8"),
        ("1|t|T\n1|a|A\n\n1\t0\t1\tT\tDisease\tD1\n", 4, "outside that document's block"),
        ("1|t|T\n1|a|A\n2\t0\t1\tT\tDisease\tD1\n", 3, "row for document '2'"),
        ("1|a|A\n", 1, "without a preceding title line"),
        ("1|t|T\n1|a|A\n1|a|B\n", 3, "second abstract line"),
        ("1|t|Title\n1|a|A\n1\t3\t1\tT\tDisease\tD1\n", 3, "invalid offsets 3-1"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    p = _write(tmp_path, text)
    with raises_code("E003", FormatError) as exc:
        read_pubtator(p)
    assert str(exc.value).startswith(f"[E003] {p}:{line}: malformed PubTator row")
    assert reason in str(exc.value)


BAD_OFFSETS = (
    "5|t|Breast cancer and colon cancer.\n5|a|\n"
    "5\t0\t13\tBreast cancer\tD\tD1\n5\t19\t31\tcolon cancer\tD\tD2\n"
)


def test_offset_mismatch_error_names_file_line_and_entity(tmp_path: Path) -> None:
    p = _write(tmp_path, BAD_OFFSETS)
    with raises_code("E005", InputError) as exc:
        read_pubtator(p)
    assert str(exc.value) == (
        f"[E005] {p}:4: entity '5-1' offsets 19-31 give 'olon cancer.' but the entity text is 'colon cancer'"
    )


def test_offset_mismatch_warn_keeps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = _write(tmp_path, BAD_OFFSETS)
    with caplog.at_level(logging.WARNING):
        (d,) = read_pubtator(p, offsets="warn")
    assert d.entities[1].offsets == [(19, 31)] and d.entities[1].text == ["colon cancer"]
    assert f"{p}:4" in caplog.text and "kept as written" in caplog.text


def test_offset_mismatch_fix_reanchors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = _write(tmp_path, BAD_OFFSETS)
    with caplog.at_level(logging.WARNING):
        (d,) = read_pubtator(p, offsets="fix")
    assert d.entities[1].offsets == [(18, 30)] and d.entities[1].text == ["colon cancer"]
    assert "re-anchored from 19-31" in caplog.text
    d.validate()


def test_offset_fix_trims_whitespace_of_mention() -> None:
    text = (
        '9|t|T\n9|a|with febrile seizures " plus " (GEFS +).\n9\t7\t33\tfebrile seizures " plus "  \tD\tD1\n'
    )
    (d,) = parse_pubtator(text, offsets="fix")
    assert d.entities[0].text == ['febrile seizures " plus "'] and d.entities[0].offsets == [(7, 32)]


def test_offset_fix_gives_up_beyond_window(tmp_path: Path) -> None:
    body = "x" * 80 + " colon cancer"
    p = _write(tmp_path, f"5|t|{body}\n5|a|\n5\t0\t12\tcolon cancer\tD\tD2\n")
    with raises_code("E005", InputError, match=rf"{p}:3: entity '5-0' offsets 0-12"):
        read_pubtator(p, offsets="fix")


DUP = "1|t|T\n1|a|A\n1\t0\t1\tT\tD\tD1\n\n2|t|U\n2|a|B\n\n1|t|T\n1|a|A\n1\t0\t1\tT\tD\tD1\n"


def test_duplicate_error(tmp_path: Path) -> None:
    p = _write(tmp_path, DUP)
    with raises_code("E004", InputError) as exc:
        read_pubtator(p)
    assert str(exc.value) == f"[E004] {p}: duplicate document id '1' (first seen at line 1, again at line 8)"


def test_duplicate_skip_identical(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = _write(tmp_path, DUP)
    with caplog.at_level(logging.WARNING):
        docs = read_pubtator(p, on_duplicate="skip-identical")
    assert [d.document_id for d in docs] == ["1", "2"]
    assert "exact duplicate" in caplog.text


def test_duplicate_differing_still_errors(tmp_path: Path) -> None:
    p = _write(tmp_path, DUP.replace("1\t0\t1\tT\tD\tD1\n", "1\t0\t1\tT\tD\tD9\n", 1))
    with raises_code("E153", InputError, match=r"'1' occurs twice with different content \(lines 1 and 8\)"):
        read_pubtator(p, on_duplicate="skip-identical")


def test_bad_option_and_missing_file(tmp_path: Path) -> None:
    with raises_code("E154", InputError, match="invalid value 'maybe' for offsets"):
        parse_pubtator(FIXTURE, offsets="maybe")  # type: ignore[arg-type]
    with raises_code("E006", InputError, match="file not found"):
        read_pubtator(tmp_path / "nope.txt")


def test_gzip(tmp_path: Path) -> None:
    import gzip

    p = tmp_path / "c.txt.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(FIXTURE)
    assert [d.to_dict() for d in read_pubtator(p)] == [d.to_dict() for d in parse_pubtator(FIXTURE)]


def test_write_round_trip(tmp_path: Path) -> None:
    docs = parse_pubtator(FIXTURE)
    out = tmp_path / "out.pubtator"
    write_pubtator(docs, out)
    text = out.read_text(encoding="utf-8")
    # "+" becomes "|", the leading space goes, relation rows and the 7th column are not written
    assert "2234245\t75\t103\tocular and auditory toxicity\tDisease\tD014786|D006311\n" in text
    assert "2234245\t0\t6\tOcular\tDisease\tMESH:C535662\n" in text
    assert "2234245\t107\t109\tCF\tDisease\t-1\n" in text
    assert "CID" not in text
    assert [d.to_dict() for d in read_pubtator(out)] == [d.to_dict() for d in docs]


def test_write_generic_bigbio_document() -> None:
    text = "Heading\nBody with colon cancer."
    doc = Document(
        "d",
        "d",
        [
            Passage("p0", "section", ["Heading"], [(0, 7)]),
            Passage("p1", "paragraph", ["Body with colon cancer."], [(8, 31)]),
        ],
        [Entity("e", "Disease", ["colon cancer"], [(18, 30)], [])],
    )
    assert doc.text == "Heading Body with colon cancer."
    out = format_pubtator([doc])
    assert out == "d|t|Heading\nd|a|Body with colon cancer.\nd\t18\t30\tcolon cancer\tDisease\t-1\n"
    (back,) = parse_pubtator(out)
    assert back.text == doc.text and back.entities[0].mention == "colon cancer"
    assert text.replace("\n", " ") == back.text


def test_write_discontinuous_and_bad_fields() -> None:
    doc = Document(
        "d",
        "d",
        [Passage("p", "title", ["breast and ovarian cancer"], [(0, 25)])],
        [Entity("e", "Disease", ["breast", "cancer"], [(0, 6), (19, 25)], [Normalization("MESH", "D1")])],
    )
    assert format_pubtator([doc]).endswith("d\t0\t25\tbreast and ovarian cancer\tDisease\tD1\n")
    doc.entities[0] = Entity("e", "Dis\tease", ["breast"], [(0, 6)], [])
    with raises_code("E152", InputError, match="cannot write entity 'e' as PubTator: its type"):
        format_pubtator([doc])


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    good = parse_pubtator(FIXTURE)[0]
    bad = Document(
        "b", "b", [Passage("p", "title", ["x y"], [(0, 3)])], [Entity("e", "a\nb", ["x"], [(0, 1)], [])]
    )
    out = tmp_path / "out.pubtator"
    with raises_code("E152", InputError):
        write_pubtator([good, bad], out)
    assert list(tmp_path.iterdir()) == []
    out.write_text("previous", encoding="utf-8")
    with raises_code("E152", InputError):
        write_pubtator([good, bad], out)
    assert list(tmp_path.iterdir()) == [out] and out.read_text(encoding="utf-8") == "previous"


# --------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def ncbi_test() -> list[Document]:
    return read_pubtator(shared("ncbi-disease", "NCBItestset_corpus.txt"))


def test_ncbi_test_counts(ncbi_test: list[Document]) -> None:
    ents = [e for d in ncbi_test for e in d.entities]
    assert len(ncbi_test) == 100 and len(ents) == 960
    assert sum(e.is_nil for e in ents) == 0
    assert sum(len(e.gold_ids) > 1 for e in ents) == 15
    # SOURCE.txt says 201 unique ids: it counts ' D007945' (leading space) apart from 'D007945'
    assert len({g for e in ents for g in e.gold_ids}) == 200
    for d in ncbi_test:
        d.validate()


def test_ncbi_dev_counts() -> None:
    docs = read_pubtator(shared("ncbi-disease", "NCBIdevelopset_corpus.txt"))
    assert len(docs) == 100 and sum(len(d.entities) for d in docs) == 787


def test_ncbi_train_strict_fails_documented_options_work() -> None:
    path = shared("ncbi-disease", "NCBItrainset_corpus.txt")
    with raises_code("E005", InputError, match=rf"{path}:3249: entity '10923035-7' offsets 711-761"):
        read_pubtator(path)
    with raises_code("E004", 
        InputError, match="duplicate document id '8528200' \\(first seen at line 3811, again at line 4557\\)"
    ):
        read_pubtator(path, offsets="fix")
    docs = read_pubtator(path, on_duplicate="skip-identical", offsets="fix")
    by_id = {d.document_id: d for d in docs}
    # 593 abstracts / 5145 mentions in the file = 592 documents / 5134 mentions + an identical 8528200
    assert len(docs) == 592 and sum(len(d.entities) for d in docs) == 5134
    assert len(by_id["8528200"].entities) == 11
    fixed = by_id["10923035"].entities[7]
    assert fixed.text == ['generalized epilepsy and febrile seizures " plus "'] and fixed.offsets == [
        (711, 761)
    ]
    types: dict[str, int] = {}
    for d in docs:
        for e in d.entities:
            types[e.type] = types.get(e.type, 0) + 1
    assert types == {
        "DiseaseClass": 769,
        "SpecificDisease": 2972 - 10,
        "CompositeMention": 115,
        "Modifier": 1289 - 1,
    }


@pytest.mark.parametrize(
    ("name", "n_docs", "n_mentions", "n_nil"),
    [("CDR_TrainingSet.PubTator.txt", 500, 9385, 76), ("CDR_DevelopmentSet.PubTator.txt", 500, 9591, 59)],
)
def test_bc5cdr_counts(name: str, n_docs: int, n_mentions: int, n_nil: int) -> None:
    docs = read_pubtator(shared("bc5cdr", name))
    ents = [e for d in docs for e in d.entities]
    assert (len(docs), len(ents), sum(e.is_nil for e in ents)) == (n_docs, n_mentions, n_nil)


def test_medmentions_sample() -> None:
    docs = read_pubtator(shared("medmentions-sample", "st21pv_sample_3docs_from_scispacy_fixture.txt"))
    ents = [e for d in docs for e in d.entities]
    assert len(docs) == 3 and len(ents) == 115
    assert len({g for e in ents for g in e.gold_ids}) == 51
    first = docs[0].entities[0]
    assert (first.mention, first.type, first.gold_ids) == ("DCTN4", "T103", ["C4308010"])
    assert all(e.normalized[0].db_name == "UMLS" for e in ents)
    for d in docs:
        d.validate()


def test_five_column_mention_without_ids() -> None:
    (d,) = parse_pubtator("3|t|Colon cancer.\n3|a|\n3\t0\t12\tColon cancer\tDisease\n")
    assert d.entities[0].normalized == [] and d.entities[0].is_nil
    assert format_pubtator([d]).endswith("3\t0\t12\tColon cancer\tDisease\t-1\n")
