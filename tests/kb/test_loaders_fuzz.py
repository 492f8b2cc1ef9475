"""Property tests of the KB loaders and the KB store (issue 14) and regression tests of what it found.

Any input (random bytes, mutated vocabulary files) ends in a KB or a coded genbel error; concepts
written in a format and loaded back are the same; loading stays linear in the number of names.
``benchmarks/fuzz_readers.py`` runs the longer fuzzing.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genbel.errors import FormatError, InputError, KBError
from genbel.kb import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.loaders import detect_kb_format, load_biosyn, load_kb, load_medic
from genbel.kb.store import DB_FILE, META_FILE, read_meta
from tests.fuzzing import inputs, outcome

FIXTURES = Path(__file__).parent / "fixtures"
#: bounded: the property tests of both reader test files cost ~15 s together
BOUNDED = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
FAST = settings(max_examples=50, **BOUNDED)

MEDIC_SEED = (FIXTURES / "mini_medic.txt").read_bytes()
CTD_HEADER = (
    "# The Comparative Toxicogenomics Database (CTD)\n# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\t"
    "ParentIDs\tTreeNumbers\tParentTreeNumbers\tSynonyms\tSlimMappings\n"
)
CTD_SEED = (
    CTD_HEADER
    + "Breast Neoplasms\tMESH:D001943\tOMIM:114480\tTumors in the breast.\t\t\t\tBreast Cancer|Breast Tumor\t\n"
    + "Colonic Neoplasms\tMESH:D003110\t\t\t\t\t\tColon Cancer|Cancer of Colon\t\n"
).encode()
BIOSYN_SEED = b"D001943||breast neoplasms\nD001943||breast cancer\nC563004|266140||hpp\n"
TSV_SEED = b"id\tname\tsynonyms\nD001943\tBreast Neoplasms\tBreast Cancer|Breast Tumor\nD003110\tColon cancer\n"
JSONL_SEED = (
    json.dumps({"id": "D001943", "name": "Breast Neoplasms", "synonyms": ["Breast Cancer"],
                "alt_ids": ["OMIM:114480"], "semantic_groups": ["Disorders"], "definitions": ["Tumors."]})
    + "\n" + json.dumps({"id": "D003110", "name": "Colon cancer"}) + "\n"
).encode()
OBO_SEED = (FIXTURES / "mini.obo").read_bytes()
UMLS_FILES = {p.name: p.read_bytes() for p in (FIXTURES / "umls" / "META").iterdir()}


def _load_bytes(name: str, data: bytes, fmt: str | None) -> KnowledgeBase | Exception:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        res = outcome(lambda: load_kb(p, fmt))
        if isinstance(res, KnowledgeBase):  # a KB read can be fingerprinted and stored
            res.fingerprint()
            outcome(lambda: res.save(Path(d) / "kb"))
        return res


# ------------------------------------------------------------------ any input: clean or coded
@FAST
@given(inputs([MEDIC_SEED]))
def test_medic_any_input(data: bytes) -> None:
    _load_bytes("medic.txt", data, "medic")


@FAST
@given(inputs([MEDIC_SEED]), st.booleans())
def test_medic_gz_any_input(data: bytes, truncate: bool) -> None:
    gz = gzip.compress(data, mtime=0)
    _load_bytes("medic.txt.gz", gz[: len(gz) // 2] if truncate else gz, "medic")


@FAST
@given(inputs([CTD_SEED]))
def test_ctd_any_input(data: bytes) -> None:
    _load_bytes("ctd.tsv", data, "ctd")


@FAST
@given(inputs([BIOSYN_SEED]))
def test_biosyn_any_input(data: bytes) -> None:
    _load_bytes("dict.txt", data, "biosyn")


@FAST
@given(inputs([TSV_SEED]))
def test_tsv_any_input(data: bytes) -> None:
    _load_bytes("kb.tsv", data, "tsv")


@FAST
@given(inputs([JSONL_SEED]))
def test_jsonl_any_input(data: bytes) -> None:
    _load_bytes("kb.jsonl", data, "jsonl")


@settings(max_examples=25, **BOUNDED)
@given(inputs([OBO_SEED]))
def test_obo_any_input(data: bytes) -> None:
    _load_bytes("onto.obo", data, "obo")


@FAST
@given(inputs([MEDIC_SEED, CTD_SEED, TSV_SEED, JSONL_SEED, BIOSYN_SEED]))
def test_detected_format_any_input(data: bytes) -> None:
    _load_bytes("kb.txt", data, None)


@FAST
@given(st.sampled_from(sorted(UMLS_FILES)), st.data())
def test_umls_any_input(name: str, data: st.DataObject) -> None:
    mutated_file = data.draw(inputs([UMLS_FILES[name]]))
    with tempfile.TemporaryDirectory() as d:
        meta = Path(d) / "META"
        meta.mkdir()
        for n, b in UMLS_FILES.items():
            (meta / n).write_bytes(mutated_file if n == name else b)
        outcome(lambda: load_kb(Path(d), "umls"))


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.txt"
        p.write_bytes(MEDIC_SEED)
        kb = load_medic(p)
    return kb.save(tmp_path_factory.mktemp("store") / "kb")


@FAST
@given(st.data())
def test_store_any_meta_json(store_dir: Path, data: st.DataObject) -> None:
    meta = data.draw(inputs([(store_dir / META_FILE).read_bytes()]))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kb"
        shutil.copytree(store_dir, p)
        (p / META_FILE).write_bytes(meta)
        outcome(lambda: load_kb(p, "genbel"))


@settings(max_examples=30, **BOUNDED)
@given(st.data())
def test_store_any_sqlite_bytes(store_dir: Path, data: st.DataObject) -> None:
    db = (store_dir / DB_FILE).read_bytes()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kb"
        shutil.copytree(store_dir, p)
        b = bytearray(db)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] = data.draw(st.integers(0, 255))
        (p / DB_FILE).write_bytes(bytes(b))
        res = outcome(lambda: KnowledgeBase.load(p, verify=data.draw(st.booleans())))
        if isinstance(res, KnowledgeBase):
            res.fingerprint()


# ------------------------------------------------------------------ round trips
_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="|#"), min_size=1,
                max_size=25).map(str.strip).filter(bool)
_ID = st.integers(0, 999_999).map(lambda n: f"D{n:06d}")


@st.composite
def concepts(draw, *, definitions: bool = False, groups: bool = False) -> list[Concept]:
    ids = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    out = []
    for cid in ids:
        names = draw(st.lists(_NAME, min_size=1, max_size=4, unique=True))
        alt = draw(st.lists(st.integers(1, 999_999).map(lambda n: f"OMIM:{n}"), max_size=2, unique=True))
        c = Concept(cid, names[0], names[1:], alt_ids=alt)
        if definitions:
            c.definitions = draw(st.lists(_NAME, max_size=1))
        if groups:
            c.semantic_groups = draw(st.lists(st.sampled_from(["Disorders", "Chemicals & Drugs"]), max_size=2,
                                              unique=True))
            c.semantic_types = draw(st.lists(st.sampled_from(["T047", "T191"]), max_size=2, unique=True))
        out.append(c)
    return out


def _as(fmt: str, cs: list[Concept]) -> str:
    if fmt == "medic":
        return "".join("|".join(c.all_ids) + "||" + "|".join(c.names) + "\n" for c in cs)
    if fmt == "biosyn":
        return "".join(f"{'|'.join(c.all_ids)}||{n}\n" for c in cs for n in c.names)
    if fmt == "tsv":
        return "id\tname\tsynonyms\n" + "".join(
            f"{'|'.join(c.all_ids)}\t{c.name}\t{'|'.join(c.synonyms)}\n" for c in cs)
    if fmt == "ctd":
        return CTD_HEADER + "".join(
            f"{c.name}\tMESH:{c.id}\t{'|'.join(c.alt_ids)}\t{''.join(c.definitions)}\t\t\t\t"
            f"{'|'.join(c.synonyms)}\t\n" for c in cs)
    assert fmt == "jsonl"
    return "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in cs)


def _key(kb: KnowledgeBase) -> list[tuple]:
    return sorted((c.id, c.name, c.synonyms, c.alt_ids, c.definitions) for c in kb)


@pytest.mark.parametrize("fmt", ["medic", "biosyn", "tsv", "ctd"])
@FAST
@given(cs=concepts(definitions=True))
def test_round_trip_text_formats(fmt: str, cs: list[Concept]) -> None:
    if fmt != "ctd":
        for c in cs:
            c.definitions = []
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"kb.{fmt}.txt"
        p.write_text(_as(fmt, cs), encoding="utf-8")
        kb = load_kb(p, fmt)
        assert _key(kb) == _key(KnowledgeBase(cs))
        # with a BOM, read the same
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
        assert _key(load_kb(p, fmt)) == _key(kb)


@FAST
@given(cs=concepts(definitions=True, groups=True))
def test_round_trip_jsonl_and_store(cs: list[Concept]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kb.jsonl"
        p.write_text(_as("jsonl", cs), encoding="utf-8")
        kb = load_kb(p, "jsonl")
        assert [c.to_dict() for c in kb] == [c.to_dict() for c in cs]
        out = kb.save(Path(d) / "kb")
        back = load_kb(out)
        assert [c.to_dict() for c in back] == [c.to_dict() for c in cs]
        assert back.fingerprint() == kb.fingerprint()


# ------------------------------------------------------------------ regressions (issue 14, items 1, 5, 7)
@pytest.mark.parametrize("fmt, name, data", [
    ("medic", "m.txt", b"D001||Breast cancer\nD002||Colon \xff cancer\n"),
    ("ctd", "c.tsv", CTD_SEED + b"Colon\xc3\tMESH:D000003\t\t\t\t\t\t\t\n"),
    ("biosyn", "b.txt", b"D001||Breast cancer\nD002||Colon \xed\xa0\x80 cancer\n"),
    ("tsv", "t.tsv", b"D001\tBreast cancer\nD002\tColon \xff cancer\n"),
    ("jsonl", "j.jsonl", b'{"id": "D001", "name": "a"}\n{"id": "D002", "name": "\xff"}\n'),
    ("obo", "o.obo", b"format-version: 1.2\n\n[Term]\nid: DOID:4\nname: dis\xffease\n"),
])
def test_invalid_utf8_names_file_and_line(tmp_path: Path, fmt: str, name: str, data: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    line = data.split(b"\n").index(next(x for x in data.split(b"\n") if b"\xff" in x or b"\xc3\t" in x
                                        or b"\xed" in x)) + 1
    with pytest.raises(FormatError) as exc:
        load_kb(p, fmt)
    assert str(exc.value).startswith("[E157]") and f"{p}:{line}:" in str(exc.value)


def test_invalid_utf8_umls(tmp_path: Path) -> None:
    meta = tmp_path / "META"
    shutil.copytree(FIXTURES / "umls" / "META", meta)
    (meta / "MRCONSO.RRF").write_bytes((meta / "MRCONSO.RRF").read_bytes() + b"C1|ENG|\xff\n")
    n = (meta / "MRCONSO.RRF").read_bytes().count(b"\n")
    with pytest.raises(FormatError, match=rf"^\[E157\] .*MRCONSO\.RRF:{n}:"):
        load_kb(tmp_path, "umls")


def test_invalid_utf8_store_meta(tmp_path: Path, store_dir: Path) -> None:
    p = shutil.copytree(store_dir, tmp_path / "kb")
    (p / META_FILE).write_bytes(b'{\n"name": "\xff"}')
    with pytest.raises(FormatError, match=r"^\[E157\] .*meta\.json:2:"):
        read_meta(p)
    with pytest.raises(FormatError, match=r"^\[E157\]"):
        load_kb(p)


@pytest.mark.parametrize("bad", ["[" * 100_000, '{"id": ' + "9" * 5000 + "}", '{"id": "D1", "name": "a\\ud800"}'])
def test_jsonl_kb_deep_huge_surrogate(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "kb.jsonl"
    p.write_text(JSONL_SEED.decode() + bad + "\n")
    with pytest.raises(FormatError) as exc:
        load_kb(p, "jsonl")
    code = "[E159]" if "ud800" in bad else "[E013]"
    assert str(exc.value).startswith(code) and f"{p}:3" in str(exc.value)
    if code == "[E159]":
        assert "field name" in str(exc.value)


def test_lone_surrogate_at_kb_build_names_the_concept(tmp_path: Path) -> None:
    kb = KnowledgeBase([Concept("D1", "ok"), Concept("D2", "bad \ud800 name")])
    with pytest.raises(KBError, match=r"^\[E106\] .*out: cannot write concept 'D2': its name"):
        kb.save(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    kb.fingerprint()  # no UnicodeEncodeError


def test_corrupt_store_null_id(tmp_path: Path, store_dir: Path) -> None:
    p = shutil.copytree(store_dir, tmp_path / "kb")
    con = sqlite3.connect(p / DB_FILE)
    con.executescript(
        "CREATE TABLE c2 (idx INTEGER, id TEXT, name TEXT); INSERT INTO c2 SELECT * FROM concepts;"
        "DROP TABLE concepts; ALTER TABLE c2 RENAME TO concepts; UPDATE concepts SET id = NULL WHERE idx = 2;"
    )
    con.close()
    with pytest.raises(KBError, match=r"^\[E105\] .*kb\.sqlite: corrupt KB store: table 'concepts': the id "
                                      r"of row idx=2 is None, not text; rebuild this KB"):
        load_kb(p)


def test_corrupt_store_text_not_utf8(tmp_path: Path, store_dir: Path) -> None:
    p = shutil.copytree(store_dir, tmp_path / "kb")
    con = sqlite3.connect(p / DB_FILE)
    con.execute("UPDATE names SET name = CAST(X'ff41' AS TEXT) WHERE rowid = 3")
    con.commit()
    con.close()
    with pytest.raises(KBError, match=r"^\[E(105|016)\] .*kb\.sqlite: .*UTF-8"):
        load_kb(p, "genbel")


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_bad_gzip_kb(tmp_path: Path, how: str) -> None:
    gz = gzip.compress(MEDIC_SEED * 30, mtime=0)
    p = tmp_path / "medic.txt.gz"
    p.write_bytes(gz[: len(gz) // 2] if how == "truncated" else b"\x1f\x8b" + bytes(50))
    with pytest.raises(InputError, match=r"^\[E158\] .*medic\.txt\.gz.*: cannot read the file"):
        load_kb(p, "medic")
    with pytest.raises(InputError, match=r"^\[E158\] .*medic\.txt\.gz"):
        load_kb(p)  # detection reads the head first
    o = tmp_path / "onto.obo.gz"
    o.write_bytes(p.read_bytes())
    with pytest.raises(InputError, match=r"^\[E158\] .*onto\.obo\.gz"):
        load_kb(o, "obo")


@pytest.mark.parametrize("fmt, name, data, first_id", [
    ("medic", "m.txt", MEDIC_SEED, "OMIM:145250"),
    ("ctd", "c.tsv", CTD_SEED, "D001943"),
    ("ctd", "c2.tsv", CTD_SEED.split(b"\n", 2)[2], "D001943"),  # no '#' header: the first line is data
    ("biosyn", "b.txt", BIOSYN_SEED, "D001943"),
    ("tsv", "t.tsv", TSV_SEED, "D001943"),
    ("jsonl", "j.jsonl", JSONL_SEED, "D001943"),
    ("obo", "o.obo", OBO_SEED, "DOID:4"),
])
def test_bom_is_stripped(tmp_path: Path, fmt: str, name: str, data: bytes, first_id: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"\xef\xbb\xbf" + data)
    kb = load_kb(p, fmt)
    assert kb.concept_ids[0] == first_id
    assert detect_kb_format(p) == fmt or name == "c2.tsv"
    g = tmp_path / (name + ".gz")
    g.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    assert load_kb(g, fmt).concept_ids == kb.concept_ids


# ---- linear loading (issue 14, item 5): these took minutes with list-membership de-duplication
def test_one_medic_line_of_100k_synonyms_loads_fast(tmp_path: Path) -> None:
    p = tmp_path / "medic.txt"
    names = [f"synonym {i}" for i in range(100_000)]
    alt = [f"OMIM:{i}" for i in range(1, 20_001)]
    p.write_text("D000001|" + "|".join(alt) + "||Name|" + "|".join(names + names[:1000]) + "\n")
    t0 = time.perf_counter()
    kb = load_kb(p, "medic")
    assert time.perf_counter() - t0 < 10
    c = kb["D000001"]
    assert c.synonyms == names and len(c.alt_ids) == 20_000


def test_40k_biosyn_lines_of_one_concept_load_fast(tmp_path: Path) -> None:
    p = tmp_path / "dict.txt"
    p.write_text("".join(f"D000001|OMIM:{i % 5000 + 1}||name {i}\n" for i in range(40_000)))
    t0 = time.perf_counter()
    kb = load_biosyn(p)
    assert time.perf_counter() - t0 < 10
    c = kb["D000001"]
    assert c.name == "name 0" and len(c.synonyms) == 39_999 and len(c.alt_ids) == 5000
    assert kb.resolve_id("OMIM:4999") == "D000001"


def test_40k_umls_atoms_of_one_cui_load_fast(tmp_path: Path) -> None:
    meta = tmp_path / "META"
    meta.mkdir()
    rows = [f"C0000001|ENG|S|L1|PF|S1|N|A{i}||||MSH|SY|D{i % 3000:06d}|name {i}|0|N||" for i in range(40_000)]
    (meta / "MRCONSO.RRF").write_text("\n".join(rows) + "\n")
    t0 = time.perf_counter()
    kb = load_kb(tmp_path, "umls", name="U")
    from genbel.kb.umls import load_umls

    kb2 = load_umls(tmp_path, code_sources={"MSH"})
    assert time.perf_counter() - t0 < 10
    assert len(kb["C0000001"].names) == 40_000 and len(kb2["C0000001"].alt_ids) == 3000


def test_merging_keeps_first_seen_order_and_sees_outside_edits() -> None:
    kb = KnowledgeBase([Concept("D1", "a", ["b"])])
    kb.add(Concept("D1", "c", ["b", "a", "d"]))
    assert kb["D1"].synonyms == ["b", "c", "d"]
    kb["D1"].synonyms.append("e")  # changed outside add(): the cache is rebuilt
    kb.add(Concept("D1", "e", ["f"], alt_ids=["X:1"]))
    assert kb["D1"].synonyms == ["b", "c", "d", "e", "f"] and kb.resolve_id("X:1") == "D1"
    kb["D1"].synonyms = ["z"]  # replaced outside add()
    kb.add(Concept("D1", "z", ["b"]))
    assert kb["D1"].synonyms == ["z", "b"]


def test_obo_parser_panic_is_a_coded_error(tmp_path: Path) -> None:
    # found by benchmarks/fuzz_readers.py: fastobo's Rust parser panics (a BaseException, not an Exception)
    s = OBO_SEED[:1755] + b"\n" * 10 + OBO_SEED[1755:]
    p = tmp_path / "o.obo"
    p.write_bytes(s[:1058] + b"name: " + s[1058:])
    with pytest.raises(FormatError, match=r"^\[E104\] .*o\.obo: cannot read the OBO ontology"):
        load_kb(p, "obo")


def test_obo_deep_json_is_rejected_before_pronto(tmp_path: Path) -> None:
    # pronto reads a file starting with '{' as OBO Graphs JSON and took ~45 s on 100k nested objects
    p = tmp_path / "o.obo"
    p.write_bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n" + OBO_SEED)
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match=r"^\[E013\] .*o\.obo:1: .*nested deeper than 100 levels"):
        load_kb(p, "obo")
    assert time.perf_counter() - t0 < 10
