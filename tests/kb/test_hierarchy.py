"""Main ids as the KB defines them, parent links kept by the loaders and the store, and the hierarchy."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from genbel.errors import FormatError
from genbel.kb import KnowledgeBase, load_kb
from genbel.kb.concept import Concept
from genbel.kb.hierarchy import Hierarchy, attach_parents, read_parents_file
from genbel.kb.ids import is_mesh_id, mesh_first
from genbel.kb.loaders import default_kb
from genbel.kb.store import DB_FILE, META_FILE, read_meta
from tests.helpers import raises_code


def _tree() -> KnowledgeBase:
    """C (root) ← D1 ← D2 ← D3; D1 ← D4; C ← D5; D6 alone. D2 has the OMIM alternate 111."""
    return KnowledgeBase([
        Concept("C", "Diseases"),
        Concept("D000001", "heart disease", parents=["C"]),
        Concept("D000002", "ischemia", parents=["MESH:D000001"], alt_ids=["OMIM:111"]),
        Concept("D000003", "infarction", parents=["D000002"]),
        Concept("D000004", "valve disease", parents=["D000001"]),
        Concept("D000005", "lung disease", parents=["C"]),
        Concept("D000006", "orphan"),
    ], name="tree")


# ------------------------------------------------------------------ main ids
def test_mesh_first() -> None:
    assert mesh_first(["OMIM:608446", "D009203"]) == ["D009203", "OMIM:608446"]
    assert mesh_first(["OMIM:115200", "D002311", "C580047"]) == ["D002311", "OMIM:115200", "C580047"]
    assert mesh_first(["C567755", "OMIM:613097"]) == ["C567755", "OMIM:613097"]
    assert mesh_first(["OMIM:1", "OMIM:2"]) == ["OMIM:1", "OMIM:2"]
    assert is_mesh_id("D009203") and is_mesh_id("C580047")
    assert is_mesh_id("D000596123") and not is_mesh_id("C") and not is_mesh_id("OMIM:608446")
    assert not is_mesh_id("C0011849")  # a UMLS CUI


def test_bundled_kb_main_ids_follow_ctd() -> None:
    kb = default_kb()
    mi = kb["OMIM:608446"]  # row 608446|D009203||Myocardial Infarction|...
    assert (mi.id, mi.name, mi.alt_ids) == ("D009203", "Myocardial Infarction", ["OMIM:608446"])
    assert kb.lookup("myocardial infarction") == ["D009203"]
    # no concept keeps an OMIM main id while having a MeSH id
    assert not [c.id for c in kb if c.id.startswith("OMIM:") and any(is_mesh_id(a) for a in c.alt_ids)]
    # OMIM:260350 is a row of its own and an alternate of D010190: still two concepts
    assert kb.resolve_id("260350") == "OMIM:260350" and "OMIM:260350" in kb["D010190"].alt_ids
    assert len(kb) == 11_915


def test_biosyn_composite_ids_mesh_first(tmp_path: Path) -> None:
    p = tmp_path / "dict.txt"
    p.write_text("608446|D009203||myocardial infarction\n608446|D009203||heart attack\n", encoding="utf-8")
    kb = load_kb(p, "biosyn")
    assert kb.concept_ids == ["D009203"] and kb["D009203"].names == ["myocardial infarction", "heart attack"]


# ------------------------------------------------------------------ loaders keep parents
def test_ctd_parents_and_tree_numbers(tmp_path: Path) -> None:
    header = "# Fields:\n# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\tParentIDs\tTreeNumbers\t" \
             "ParentTreeNumbers\tSynonyms\tSlimMappings\n"
    rows = ("Myocardial Infarction\tMESH:D009203\tOMIM:608446\t\tMESH:D007238|MESH:D017202\t"
            "C14.280.647.500|C14.907.585.500\tC14.280.647|C14.907.585\tHeart attack\t\n"
            "Myocardial Ischemia\tMESH:D017202\t\t\tMESH:D006331\tC14.280.647\tC14.280\t\t\n")
    p = tmp_path / "ctd.tsv"
    p.write_text(header + rows, encoding="utf-8")
    kb = load_kb(p, "ctd")
    mi = kb["608446"]
    assert mi.id == "D009203" and mi.parents == ["D007238", "D017202"]
    assert mi.tree_numbers == ["C14.280.647.500", "C14.907.585.500"]
    assert kb.has_hierarchy and Hierarchy(kb).relation("D017202", "D009203") == "broader"


def test_real_ctd_parents(ctd: KnowledgeBase) -> None:
    c = ctd["MESH:C579849"]  # 15q24 Microdeletion: ParentIDs MESH:D002872|MESH:D008607|MESH:D025063
    assert c.parents == ["D002872", "D008607", "D025063"]
    assert sum(1 for x in ctd if x.parents) > 11_000


def test_obo_is_a_parents(fixtures: Path) -> None:
    kb = load_kb(fixtures / "mini.obo")
    assert kb["DOID:1612"].parents == ["DOID:162"]
    assert kb["DOID:162"].parents == ["DOID:14566"]
    assert kb["DOID:4"].parents == []
    h = Hierarchy(kb)
    assert h.relation("DOID:4", "DOID:1612") == "broader"
    assert h.distance("DOID:1612", "DOID:9352") == 4  # 1612 → 162 → 14566 → 4 ← 9352


def test_umls_mrrel_parents(fixtures: Path, tmp_path: Path) -> None:
    d = tmp_path / "umls"
    shutil.copytree(fixtures / "umls", d)
    assert load_kb(d / "META", "umls").has_hierarchy is False  # no MRREL: no parents
    rel = [  # CUI1|AUI1|STYPE1|REL|CUI2|AUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF|
        "C0011849|A1|AUI|PAR|C0332173|A2|AUI|isa|R1||MSH|MSH|||N||",   # C0332173 parent of C0011849
        "C0006826|A3|AUI|CHD|C0000005|A4|AUI||R2||MSH|MSH|||N||",      # C0000005 child of C0006826
        "C0020538|A5|AUI|RO|C0011849|A6|AUI||R3||MSH|MSH|||N||",       # not hierarchical: ignored
        "C0005767|A7|AUI|PAR|C0020538|A8|AUI||R4||MSH|MSH|||O||",      # obsolete: dropped
    ]
    (d / "META" / "MRREL.RRF").write_text("\n".join(rel) + "\n", encoding="utf-8")
    kb = load_kb(d / "META", "umls")
    assert kb["C0011849"].parents == ["C0332173"]
    assert kb["C0000005"].parents == ["C0006826"]
    assert kb["C0005767"].parents == [] and kb["C0020538"].parents == []
    assert load_kb(d / "META", "umls").fingerprint() == kb.fingerprint()


# ------------------------------------------------------------------ store
def test_store_round_trips_parents(tmp_path: Path) -> None:
    kb = _tree()
    kb["D000003"].tree_numbers.append("C14.280.647.500")
    back = KnowledgeBase.load(kb.save(tmp_path / "kb"))
    assert [c.to_dict() for c in back] == [c.to_dict() for c in kb]
    assert read_meta(tmp_path / "kb")["counts"]["with_parents"] == 5


def test_store_v1_is_read_and_stale_main_ids_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kb = KnowledgeBase([Concept("OMIM:608446", "Myocardial Infarction", alt_ids=["D009203"]),
                        Concept("D000001", "heart disease")], name="old")
    d = kb.save(tmp_path / "old")
    # what genbel wrote before format 2: no hierarchy tables, format_version 1 (in meta.json and its copy)
    con = sqlite3.connect(d / DB_FILE)
    with con:
        con.execute("DROP TABLE parents")
        con.execute("DROP TABLE tree_numbers")
        meta = json.loads(con.execute("SELECT value FROM meta").fetchone()[0])
        meta["format_version"] = 1
        con.execute("UPDATE meta SET value=?", (json.dumps(meta),))
    con.close()
    (d / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="genbel.kb.store"):
        back = KnowledgeBase.load(d)
    assert back.concept_ids == ["OMIM:608446", "D000001"] and not back.has_hierarchy
    assert back.resolve_id("D009203") == "OMIM:608446"  # read as it is, ids compare through alternates
    assert "format 1" in caplog.text and "OMIM:608446" in caplog.text and "genbel kb build" in caplog.text


# ------------------------------------------------------------------ hierarchy
def test_relations_and_distances() -> None:
    h = Hierarchy(_tree())
    assert len(h) == 5 and h.in_hierarchy("D000006") is False
    assert h.relation("D000003", "OMIM:111") == "narrower"  # alternate ids resolve
    assert h.relation("D000001", "D000003") == "broader"
    assert h.relation("D000004", "D000002") == "sibling"
    assert h.relation("D000005", "D000003") == "unrelated"
    assert h.relation("D000006", "D000003") == "unrelated"
    assert h.relation("D000002", "D000002") == "exact"
    assert h.distance("D000003", "D000003") == 0
    assert h.distance("D000003", "D000001") == 2
    assert h.distance("D000003", "D000004") == 3
    assert h.distance("D000003", "D000005") == 4  # through the root C
    assert h.distance("D000003", "D000006") is None
    assert h.ancestors("D000003") == {"D000003": 0, "D000002": 1, "D000001": 2, "C": 3}


def test_cycles_do_not_loop() -> None:
    kb = KnowledgeBase([Concept("A", "a", parents=["B"]), Concept("B", "b", parents=["A"])])
    h = Hierarchy(kb)
    assert h.ancestors("A") == {"A": 0, "B": 1}
    assert h.relation("A", "B") == "broader"  # each is the other's ancestor: the first rule wins


def test_parents_file_and_attach(tmp_path: Path) -> None:
    p = tmp_path / "parents.tsv"
    p.write_text("# comment\nD000003\tD000002\nOMIM:111\tMESH:D000001|D000009\nD000099\tD000001\n",
                 encoding="utf-8")
    parents = read_parents_file(p)
    assert parents == {"D000003": ["D000002"], "OMIM:111": ["D000001", "D000009"], "D000099": ["D000001"]}
    kb = KnowledgeBase([Concept("D000002", "x", alt_ids=["OMIM:111"]), Concept("D000003", "y")])
    fp = kb.fingerprint()
    assert attach_parents(kb, parents) == 2
    assert kb["D000002"].parents == ["D000001", "D000009"] and kb.fingerprint() == fp
    p.write_text("D000003\n", encoding="utf-8")
    with raises_code("E003", FormatError, match="parents.tsv:1"):
        read_parents_file(p)


def test_bundled_kb_has_ctd_hierarchy() -> None:
    kb = default_kb()
    h = Hierarchy(kb)
    assert len(h) > 11_000
    assert kb["D009203"].parents == ["D017202"]  # myocardial infarction ← myocardial ischemia
    assert h.relation("D017202", "OMIM:608446") == "broader"
    assert h.relation("D056988", "D009203") == "narrower"  # anterior wall MI
    assert "C" in h.ancestors("D009203")  # every chain reaches MEDIC's root "Diseases"
