"""KB loaders: real MEDIC and CTD files, BioSyn/TSV/JSONL/OBO/UMLS fixtures, dispatch and errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from genbel.errors import ConfigError, Errors, FormatError, InputError, KBError
from genbel.kb import (
    ST21PV_TUIS,
    Concept,
    KnowledgeBase,
    default_kb,
    detect_kb_format,
    load_biosyn,
    load_jsonl,
    load_kb,
    load_obo,
    load_tsv,
    load_umls,
)
from genbel.kb.ids import normalize_id, split_ids
from genbel.kb.loaders import KB_FORMATS
from tests.helpers import raises_code


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _all_ids(kb: KnowledgeBase) -> set[str]:
    return {i for c in kb for i in c.all_ids}


# ------------------------------------------------------------ real MEDIC / CTD
def test_medic_counts_match_source(medic: KnowledgeBase) -> None:
    # SOURCE.txt: 11,915 lines, 14,942 distinct ids (OMIM as OMIM:n), 76,237 names
    assert medic.name == "MEDIC"
    assert len(medic) == 11_915
    assert medic.n_names() == 76_237
    assert len(_all_ids(medic)) == 14_942
    assert medic.semantic_groups == ["Disorders"]
    assert all(c.semantic_groups == ["Disorders"] for c in medic)


def test_medic_rows(medic: KnowledgeBase) -> None:
    c = medic["C567755"]  # C567755|613097||Tooth Agenesis, Selective, 6|STHAG6
    assert (c.name, c.synonyms, c.alt_ids) == ("Tooth Agenesis, Selective, 6", ["STHAG6"], ["OMIM:613097"])
    # OMIM bare digits, MESH: prefix and alt ids all resolve to the main id
    assert medic.resolve_id("613097") == "C567755"
    assert medic.resolve_id("OMIM:613097") == "C567755"
    assert medic.resolve_id("MESH:C567755") == "C567755"
    # a row whose first id is OMIM (114480|D001943): the MeSH id is the main id, as CTD defines it
    assert medic.resolve_id("OMIM:114480") == "D001943"
    assert medic["114480"].id == "D001943"
    assert medic["D001943"].alt_ids == ["OMIM:114480"]
    assert medic["D001943"].name == "Breast Neoplasms"
    # OMIM:260350 is a row of its own and an alternate id of D010190: the main id wins
    assert medic.resolve_id("260350") == "OMIM:260350"
    assert medic.ids_of("D010190") == {"D010190", "OMIM:260350"}
    assert "breast cancer" in {n.lower() for n in medic["D001943"].names}
    assert set(medic.lookup("BREAST-CANCER")) == {"D001943"}


def test_ctd_counts_and_fields(ctd: KnowledgeBase) -> None:
    # SOURCE.txt: 11,865 rows, 18,455 distinct ids incl. alt ids, 77,994 names
    assert ctd.name == "CTD"
    assert len(ctd) == 11_865
    assert ctd.n_names() == 77_994
    assert len(_all_ids(ctd)) == 18_455
    assert sum(1 for c in ctd if c.definitions) == 4_691
    assert ctd.semantic_groups == ["Disorders"]
    c = ctd["MESH:C579849"]  # 15q24 Microdeletion, AltDiseaseIDs DO:DOID:0060395
    assert (c.id, c.name, c.alt_ids) == ("C579849", "15q24 Microdeletion", ["DO:DOID:0060395"])
    assert ctd.resolve_id("DO:DOID:0060395") == "C579849"
    c = ctd["C537805"]  # 17-Hydroxysteroid Dehydrogenase Deficiency, alt OMIM:264300
    assert c.alt_ids == ["OMIM:264300"]
    assert ctd.resolve_id("264300") == "C537805"
    assert "Chromosome 13q deletion" in ctd["MESH:C535484"].synonyms


def test_ctd_definition_and_malformed(tmp_path: Path) -> None:
    header = "# Fields:\n# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\tParentIDs\tTreeNumbers\t" \
             "ParentTreeNumbers\tSynonyms\tSlimMappings\n#\n"
    row = "Asthma\tMESH:D001249\tDO:DOID:2841\tA form of bronchial disorder.\tMESH:D001982\tC08.127.108\t" \
          "C08.127\tAsthma, Bronchial|Asthmas||Asthma\tRespiratory tract disease\n"
    p = _write(tmp_path / "ctd.tsv", header + row)
    kb = load_kb(p, "ctd")
    c = kb["D001249"]
    assert (c.name, c.synonyms, c.alt_ids) == ("Asthma", ["Asthma, Bronchial", "Asthmas"], ["DO:DOID:2841"])
    assert c.definitions == ["A form of bronchial disorder."]
    assert c.semantic_groups == ["Disorders"]
    bad = _write(tmp_path / "bad.tsv", header + row + "only a name\n")
    with raises_code("E003", FormatError) as e:
        load_kb(bad, "ctd")
    assert str(e.value) == Errors.E003.format(
        path=bad, line=5, fmt="ctd", reason="expected 9 tab-separated columns, found 1"
    )


# ------------------------------------------------------------ MEDIC-style / BioSyn
def test_medic_fixture_and_gzip(fixtures: Path, tmp_path: Path) -> None:
    plain = load_kb(fixtures / "mini_medic.txt")
    gz = tmp_path / "mini_medic.txt.gz"
    gz.write_bytes(gzip.compress((fixtures / "mini_medic.txt").read_bytes()))
    assert detect_kb_format(gz) == "medic"
    zipped = load_kb(gz)
    assert [c.to_dict() for c in zipped] == [c.to_dict() for c in plain]
    assert zipped.fingerprint() == plain.fingerprint()
    assert len(plain) == 8
    assert plain["C"].name == "Diseases"
    assert plain["266140"].id == "C563004" and plain["266140"].alt_ids == ["OMIM:266140"]


def test_biosyn_dictionary_merges_lines(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "train_dictionary.txt",
        "C567755|613097||tooth agenesis, selective, 6\n"
        "D001943||breast neoplasms\n"
        "C567755|613097||sthag6\n"
        "\n"
        "D001943||breast cancer\n"
        "D001943||breast neoplasms\n"
        "MESH:D003924||type 2 diabetes\n",
    )
    assert detect_kb_format(p) == "biosyn"
    kb = load_kb(p)
    assert kb.name == "train_dictionary"
    assert len(kb) == 3
    c = kb["613097"]
    assert (c.id, c.name, c.synonyms, c.alt_ids) == ("C567755", "tooth agenesis, selective, 6", ["sthag6"],
                                                     ["OMIM:613097"])
    assert kb["D001943"].names == ["breast neoplasms", "breast cancer"]
    assert kb["D003924"].name == "type 2 diabetes"
    assert all(not c.semantic_groups for c in kb)  # no default group for BioSyn dictionaries
    assert [c.to_dict() for c in load_biosyn(p)] == [c.to_dict() for c in kb]


def test_medic_malformed_rows_name_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "medic.txt", "D001||Disease A\nD002 Disease B\n")
    with raises_code("E003", FormatError) as e:
        load_kb(p, "medic")
    assert str(e.value) == f"[E003] {p}:2: malformed medic row: expected 'id||name' (no '||' separator)"
    p = _write(tmp_path / "medic2.txt", "D001||Disease A\n\nD002|| | \n")
    with raises_code("E003", FormatError) as e:
        load_kb(p, "medic")
    assert str(e.value) == f"[E003] {p}:3: malformed medic row: empty name"
    p = _write(tmp_path / "medic3.txt", "-1||Nothing\n")
    with raises_code("E003", FormatError) as e:
        load_kb(p, "medic")
    assert str(e.value) == f"[E003] {p}:1: malformed medic row: no concept id in '-1'"


# ------------------------------------------------------------ TSV / JSONL
def test_tsv_with_header_and_composite_ids(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "kb.tsv",
        "id\tname\tsynonyms\n"
        "MESH:D001943|114480\tBreast Neoplasms\tbreast cancer|breast tumor||Breast Neoplasms\n"
        "D003924\tDiabetes Mellitus, Type 2\n"
        "# a comment\n"
        "D001943\tBreast Neoplasms\tmammary cancer\n",
    )
    assert detect_kb_format(p) == "tsv"
    kb = load_kb(p)
    assert len(kb) == 2
    c = kb["OMIM:114480"]
    assert (c.id, c.name, c.synonyms, c.alt_ids) == ("D001943", "Breast Neoplasms",
                                                     ["breast cancer", "breast tumor", "mammary cancer"],
                                                     ["OMIM:114480"])
    assert kb["D003924"].synonyms == []
    bad = _write(tmp_path / "bad.tsv", "D1\tA\nD2\n")
    with raises_code("E003", FormatError) as e:
        load_tsv(bad)
    assert str(e.value) == f"[E003] {bad}:2: malformed tsv row: expected 'id<TAB>name[<TAB>synonyms]'"


def test_jsonl_round_trip_and_normalisation(tmp_path: Path) -> None:
    concepts = [
        Concept("MESH:D001943", "Breast Neoplasms", ["breast cancer"], alt_ids=["114480"],
                semantic_types=["T191"], semantic_groups=["DISO"], definitions=["Tumors of the breast."]),
        Concept("C0004057", "Aspirin", [], semantic_groups=["Chemicals & Drugs"]),
    ]
    p = tmp_path / "kb.jsonl"
    p.write_text("\n".join(json.dumps(c.to_dict()) for c in concepts) + "\n\n", encoding="utf-8")
    assert detect_kb_format(p) == "jsonl"
    kb = load_kb(p)
    c = kb["D001943"]
    assert c.to_dict() == {
        "id": "D001943", "name": "Breast Neoplasms", "synonyms": ["breast cancer"],
        "alt_ids": ["OMIM:114480"], "semantic_types": ["T191"], "semantic_groups": ["Disorders"],
        "definitions": ["Tumors of the breast."], "parents": [], "tree_numbers": [],
    }
    assert kb.resolve_id("114480") == "D001943"
    assert kb["C0004057"].semantic_groups == ["Chemicals & Drugs"]


def test_jsonl_errors(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", '{"id": "D1", "name": "A"}\n{"id": "D2", "name": \n')
    with raises_code("E013", FormatError) as e:
        load_jsonl(p)
    assert str(e.value).startswith(f"[E013] {p}:2: invalid JSON: ")
    p = _write(tmp_path / "b.jsonl", '{"id": "D1", "name": "A"}\n\n{"id": "D2"}\n')
    with raises_code("E014", FormatError) as e:
        load_jsonl(p)
    assert str(e.value) == Errors.E014.format(where=f"{p}:3", field="name")
    p = _write(tmp_path / "c.jsonl", '{"id": "D1", "name": "A", "synonyms": "B"}\n')
    with raises_code("E003", FormatError) as e:
        load_jsonl(p)
    assert str(e.value) == f"[E003] {p}:1: malformed jsonl row: field 'synonyms' must be a list of strings"
    p = _write(tmp_path / "d.jsonl", '{"id": "D1", "name": "A", "semantic_groups": ["Nonsense"]}\n')
    with raises_code("E012", ConfigError, match="unknown semantic group or entity type 'Nonsense'"):
        load_jsonl(p)


# ------------------------------------------------------------ OBO
def test_obo_terms(fixtures: Path) -> None:
    kb = load_kb(fixtures / "mini.obo")
    assert kb.name == "doid-mini"
    # 6 terms, one obsolete
    assert kb.concept_ids == ["DOID:4", "DOID:162", "DOID:14566", "DOID:1612", "DOID:9352"]
    c = kb["DOID:1612"]
    # EXACT and RELATED synonyms; NARROW ("mammary cancer") left out; alt_id kept; xrefs off by default
    assert c.name == "breast cancer"
    assert c.synonyms == ["breast tumor", "malignant neoplasm of breast"]
    assert c.alt_ids == ["DOID:1614"]
    assert c.definitions == ["A thoracic cancer that originates in the mammary gland."]
    # BROAD ("tumour") left out
    assert kb["DOID:162"].synonyms == ["malignant neoplasm", "malignant tumor", "primary cancer"]
    assert kb.resolve_id("DOID:1614") == "DOID:1612"
    assert kb.get("D001943") is None
    assert all(not c.semantic_groups for c in kb)


def test_obo_options(fixtures: Path, tmp_path: Path) -> None:
    kb = load_obo(fixtures / "mini.obo", xrefs_as_alt_ids=True, synonym_scopes=("EXACT",), name="DO")
    assert kb.name == "DO"
    assert kb["DOID:1612"].alt_ids == ["DOID:1614", "D001943", "OMIM:114480"]
    assert kb.resolve_id("MESH:D003924") == "DOID:9352"
    assert kb.resolve_id("UMLS_CUI:C0006826") == "DOID:162"
    assert kb["DOID:1612"].synonyms == ["malignant neoplasm of breast"]
    gz = tmp_path / "mini.obo.gz"
    gz.write_bytes(gzip.compress((fixtures / "mini.obo").read_bytes()))
    assert load_kb(gz, group="DISO").semantic_groups == ["Disorders"]
    bad = _write(tmp_path / "bad.obo", "format-version: 1.2\n\n[Term]\nid: X:1\nname: a\nis_a: \n[Term\n")
    with raises_code("E104", FormatError, match=r"bad\.obo: cannot read the OBO ontology: "):
        load_obo(bad)


# ------------------------------------------------------------ UMLS
def test_umls_default_filters(fixtures: Path) -> None:
    kb = load_kb(fixtures / "umls")
    assert kb.name == "UMLS"
    # C0039082 has only a Spanish and an editor-suppressed English atom: dropped
    assert kb.concept_ids == ["C0011849", "C0006826", "C0004057", "C0020538", "C0005767", "C0000005",
                              "C0332173", "C0005526"]
    dm = kb["C0011849"]
    # preferred = the ENG ISPREF=Y TS=P STT=PF atom (not the first row); DM (SUPPRESS=Y), "sugar diabetes"
    # (SUPPRESS=O) and the French atom are dropped
    assert dm.name == "Diabetes Mellitus"
    assert dm.synonyms == ["Diabetes Mellitus, NOS", "Diabetes mellitus", "diabetes"]
    assert dm.semantic_types == ["T047"]
    assert dm.semantic_groups == ["Disorders"]
    # the suppressible CHV definition is dropped
    assert dm.definitions == ["A heterogeneous group of disorders characterized by HYPERGLYCEMIA and GLUCOSE "
                              "INTOLERANCE."]
    asa = kb["C0004057"]
    assert (asa.name, asa.synonyms) == ("Aspirin", ["Acetylsalicylic Acid", "aspirin"])
    assert (asa.semantic_types, asa.semantic_groups) == (["T109", "T121"], ["Chemicals & Drugs"])
    assert kb["C0005767"].semantic_groups == ["Anatomy"]
    assert kb["C0332173"].semantic_groups == ["Concepts & Ideas"]
    assert kb["C0005526"].semantic_groups == ["Phenomena"]
    assert kb["C0006826"].name == "Malignant Neoplasms"
    assert kb["C0000005"].semantic_groups == ["Chemicals & Drugs"]
    assert kb.get("D003920") is None  # source codes are not ids unless asked for


def test_umls_switches(fixtures: Path) -> None:
    meta = fixtures / "umls" / "META"
    # every atom, every language: the Spanish concept appears, suppressed names come back
    kb = load_umls(meta, suppress=(), languages=None)
    assert len(kb) == 9
    assert {"DM", "sugar diabetes", "Diabète sucré"} <= set(kb["C0011849"].names)
    assert kb["C0011849"].definitions[-1] == (
        "a disease in which the body does not produce or properly use insulin"
    )
    # English and Spanish, Spanish names preferred where they exist
    kb = load_umls(meta, languages=("SPA", "ENG"))
    assert kb["C0006826"].name == "Neoplasias malignas"
    assert kb["C0011849"].name == "Diabetes Mellitus, NOS"  # no Spanish PF atom: first kept atom
    # source vocabularies
    kb = load_umls(meta, sources={"MSH"})
    assert kb.concept_ids == ["C0011849", "C0006826", "C0004057", "C0020538", "C0005767", "C0000005"]
    assert kb["C0006826"].names == ["Cancer"]
    # source codes as alternate ids (MeSH canonical, no prefix)
    kb = load_umls(meta, code_sources={"MSH", "RXNORM"})
    assert kb.resolve_id("MESH:D003920") == "C0011849"
    assert kb.resolve_id("RXNORM:1191") == "C0004057"
    assert kb["C0004057"].alt_ids == ["D001241", "RXNORM:1191"]
    # the MRCONSO file itself is accepted too
    assert len(load_umls(meta / "MRCONSO.RRF")) == 8


def test_umls_semantic_type_filter(fixtures: Path) -> None:
    st21 = load_umls(fixtures / "umls", semantic_types=ST21PV_TUIS)
    # T047/T191 lie below T038 Biologic Function, T109/T116 below T103 Chemical; T079 Temporal Concept is out
    assert "C0332173" not in st21
    assert st21.concept_ids == ["C0011849", "C0006826", "C0004057", "C0020538", "C0005767", "C0000005",
                                "C0005526"]
    exact = load_umls(fixtures / "umls", semantic_types=ST21PV_TUIS, include_descendant_types=False)
    assert exact.concept_ids == ["C0005767", "C0005526"]


def test_umls_malformed_and_missing(fixtures: Path, tmp_path: Path) -> None:
    d = tmp_path / "META"
    shutil.copytree(fixtures / "umls" / "META", d)
    with open(d / "MRCONSO.RRF", "a", encoding="utf-8") as fh:
        fh.write("C0000001|ENG|P|L1|PF|S1|Y|A1|||||MSH|MH|D1|Too short|\n")
    with raises_code("E003", FormatError) as e:
        load_umls(d)
    assert str(e.value) == (f"[E003] {d / 'MRCONSO.RRF'}:27: malformed umls row: MRCONSO.RRF rows have 18 "
                            "'|'-terminated fields, found 16")
    (d / "MRCONSO.RRF").unlink()
    with raises_code("E006", InputError, match="MRCONSO.RRF: file not found"):
        load_umls(d)
    # a language that no atom has: nothing is read
    assert len(load_umls(fixtures / "umls", languages=("GER",))) == 0


# ------------------------------------------------------------ dispatch & errors
def test_detect_kb_format(fixtures: Path, medic_path: Path, tmp_path: Path) -> None:
    assert detect_kb_format(medic_path) == "medic"
    assert detect_kb_format(medic_path.parent.parent / "ctd-diseases" / "CTD_diseases_2017.tsv") == "ctd"
    assert detect_kb_format(fixtures / "umls") == "umls"
    assert detect_kb_format(fixtures / "umls" / "META") == "umls"
    assert detect_kb_format(fixtures / "umls" / "META" / "MRCONSO.RRF") == "umls"
    assert detect_kb_format(fixtures / "mini.obo") == "obo"
    obo_no_ext = tmp_path / "ontology.txt"
    obo_no_ext.write_bytes((fixtures / "mini.obo").read_bytes())
    assert detect_kb_format(obo_no_ext) == "obo"
    gen = tmp_path / "built"
    gen.mkdir()
    (gen / "meta.json").write_text("{}")
    assert detect_kb_format(gen) == "genbel"
    junk = _write(tmp_path / "notes.txt", "just some text\n")
    with raises_code("E100", FormatError) as e:
        detect_kb_format(junk)
    assert str(e.value) == Errors.E100.format(path=junk, known=", ".join(KB_FORMATS))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with raises_code("E100", FormatError):
        detect_kb_format(empty_dir)
    with raises_code("E006", InputError, match="nope.txt: file not found"):
        load_kb(tmp_path / "nope.txt")


def test_unknown_format_and_empty_kb(tmp_path: Path, fixtures: Path) -> None:
    with raises_code("E001", ConfigError) as e:
        load_kb(fixtures / "mini_medic.txt", "mesh")
    assert str(e.value) == ("[E001] unknown KB format 'mesh'; expected one of: medic, ctd, biosyn, umls, obo, "
                            "jsonl, tsv, genbel")
    empty = _write(tmp_path / "empty.txt", "\n\n")
    with raises_code("E002", KBError) as e:
        load_kb(empty, "medic")
    assert str(e.value) == f"[E002] {empty}: the knowledge base is empty (no concept with a name was read)"
    only_header = _write(tmp_path / "h.tsv", "id\tname\tsynonyms\n# nothing else\n")
    with raises_code("E002", KBError, match="the knowledge base is empty"):
        load_kb(only_header, "tsv")


def test_group_and_name_options(fixtures: Path) -> None:
    kb = load_kb(fixtures / "mini_medic.txt", name="mini", group="T121")
    assert kb.name == "mini"
    assert kb.semantic_groups == ["Chemicals & Drugs"]
    # UMLS concepts keep their own groups: group= only fills concepts that have none
    kb = load_kb(fixtures / "umls", group="Disorders")
    assert kb["C0004057"].semantic_groups == ["Chemicals & Drugs"]
    with raises_code("E012", ConfigError, match="unknown semantic group"):
        load_kb(fixtures / "mini_medic.txt", group="Diseasez")


def test_dedupe_option(fixtures: Path) -> None:
    plain = load_kb(fixtures / "mini_medic.txt")
    kb = load_kb(fixtures / "mini_medic.txt", dedupe=True)
    # "HPP" is shared by 145250 (6 names) and 266140 (2 names): it stays with 266140
    assert "HPP" in kb["266140"].synonyms and "HPP" not in kb["145250"].synonyms
    # "Diseases": preferred name of C (1 name) and synonym of D004194: removed from D004194
    assert kb["C"].name == "Diseases" and kb["D004194"].names == ["Disease"]
    # "Melanosis Universalis Hereditaria": C564163 has fewer names than 145250
    assert "MELANOSIS UNIVERSALIS HEREDITARIA" not in kb["145250"].synonyms
    assert "Melanosis Universalis Hereditaria" in kb["C564163"].synonyms
    # "PANCREATIC ACINAR CARCINOMA": OMIM:260350 (2 names) keeps it, D010190 (many more names) loses it
    assert "PANCREATIC ACINAR CARCINOMA" not in kb["D010190"].synonyms
    assert "PANCREATIC ACINAR CARCINOMA" in kb["OMIM:260350"].synonyms
    assert plain.n_names() - kb.n_names() == 4
    assert [c.name for c in kb] == [c.name for c in plain]  # preferred names never removed


def test_default_kb(medic: KnowledgeBase) -> None:
    kb = default_kb()
    assert kb.name == "MEDIC"
    assert len(kb) == 11_915
    assert kb.semantic_groups == ["Disorders"]
    assert kb.fingerprint() == medic.fingerprint()
    assert default_kb() is not kb  # a fresh KB each call


# ------------------------------------------------------------ ids
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MESH:D003924", "D003924"),
        ("D003924", "D003924"),
        (" MESH:C567755 ", "C567755"),
        ("613097", "OMIM:613097"),
        ("OMIM:613097", "OMIM:613097"),
        ("omim:613097", "OMIM:613097"),
        ("UMLS:C0011849", "C0011849"),
        ("DO:DOID:0060395", "DO:DOID:0060395"),
        ("-1", None),
        ("", None),
    ],
)
def test_normalize_id(raw: str, expected: str | None) -> None:
    assert normalize_id(raw) == expected


def test_split_ids() -> None:
    assert split_ids("D001943|114480") == ["D001943", "OMIM:114480"]
    assert split_ids("MESH:D001|D002+-1|MESH:D001") == ["D001", "D002"]
    assert split_ids("-1") == []


def test_open_kb(fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genbel.kb import DEFAULT_KB_SPEC, default_kb, open_kb

    medic_path = fixtures / "mini_medic.txt"
    assert open_kb(medic_path).fingerprint() == load_kb(medic_path).fingerprint()
    built = tmp_path / "built"
    load_kb(medic_path).save(built)
    assert open_kb(built).name == "MEDIC" and open_kb(str(built), "genbel").name == "MEDIC"
    monkeypatch.chdir(tmp_path)
    assert open_kb(DEFAULT_KB_SPEC).fingerprint() == default_kb().fingerprint()
    with raises_code("E006", InputError) as e:
        open_kb(tmp_path / "missing.txt")
    assert str(e.value).startswith("[E006]")


def test_obo_error_names_the_file_not_a_stream(tmp_path: Path) -> None:
    p = tmp_path / "x.txt.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("D1||foo|bar\n")
    with raises_code("E104", FormatError) as e:
        load_kb(p, "obo")
    assert str(p) in str(e.value) and "_io." not in str(e.value) and "object at 0x" not in str(e.value)


def test_detection_reports_the_real_error(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.tsv", "id\tname\nX1\tfoo\nX2\n")
    with raises_code("E003", FormatError, match=r"bad\.tsv:3: malformed tsv row"):
        load_kb(bad)  # a .tsv is a tsv: the bad row is named, not "cannot tell the format"
    empty = _write(tmp_path / "empty.tsv", "")
    with raises_code("E002", KBError):
        load_kb(empty)
    latin1 = tmp_path / "l1.tsv"
    latin1.write_bytes("X1\tcaf\xe9\n".encode("latin-1"))
    with raises_code("E157", FormatError, match=r"l1\.tsv:1: not valid utf-8"):
        load_kb(latin1)
