"""KB augmentation with training mentions and GenBioEL synonym de-duplication."""

from __future__ import annotations

from genbel.kb import Concept, KnowledgeBase, augment_kb
from tests.conftest import make_doc


def test_augment_adds_mentions_to_gold_concepts(tiny_kb: KnowledgeBase) -> None:
    docs = [
        make_doc("1", "A mammary carcinoma and HNPCC, a breast and colon cancer, -1.",
                 [("mammary carcinoma", "Disease", "D001"),
                  ("HNPCC", "Disease", "OMIM:114500"),  # alternate id of D002
                  ("breast and colon cancer", "Disease", "D001|D002"),  # composite: skipped
                  ("-1", "Disease", "-1")]),  # NIL: skipped
        make_doc("2", "Mammary  Carcinoma, breast-cancer, Brufen and an unknown thing.",
                 [("Mammary  Carcinoma", "Disease", "D001"),  # same name after normalisation
                  ("breast-cancer", "Disease", "MESH:D001"),  # = "breast cancer" after normalisation
                  ("Brufen", "Chemical", "C004"),
                  ("unknown thing", "Disease", "D999")]),  # not in the KB: skipped
    ]
    fp = tiny_kb.fingerprint()
    n = augment_kb(tiny_kb, docs)
    assert n == 3
    assert tiny_kb["D001"].synonyms == ["breast cancer", "breast tumor", "mammary carcinoma"]
    assert tiny_kb["D002"].synonyms == ["colorectal cancer", "colon cancer", "HNPCC"]
    assert tiny_kb["C004"].synonyms == ["ibuprofen", "Brufen"]
    assert tiny_kb.lookup("hnpcc") == ["D002"]
    assert "breast and colon cancer" not in {n for c in tiny_kb for n in c.names}
    assert tiny_kb.fingerprint() != fp
    # a second pass adds nothing
    assert augment_kb(tiny_kb, docs) == 0


def test_augment_exact_keeps_case_variants(tiny_kb: KnowledgeBase) -> None:
    docs = [make_doc("1", "Breast Cancer and breast cancer.", [("Breast Cancer", "Disease", "D001"),
                                                               ("breast cancer", "Disease", "D001")])]
    assert augment_kb(tiny_kb, docs, exact=True) == 1
    assert tiny_kb["D001"].synonyms == ["breast cancer", "breast tumor", "Breast Cancer"]


def test_deduplicate_synonyms_semantics() -> None:
    kb = KnowledgeBase([
        Concept("D1", "Breast Neoplasms", ["breast cancer", "breast tumour", "mammary cancer"]),
        Concept("D2", "Breast Cancer, Familial", ["Breast-Cancer"]),  # fewer names: keeps "breast cancer"
        Concept("D3", "Mammary Cancer", ["MC"]),  # preferred name shared with D1's synonym
        Concept("D4", "Tumour", ["MC", "x", "y"]),
    ])
    removed = kb.deduplicate_synonyms()
    assert kb["D1"].synonyms == ["breast tumour"]
    assert kb["D2"].names == ["Breast Cancer, Familial", "Breast-Cancer"]
    assert kb["D3"].names == ["Mammary Cancer", "MC"]
    assert kb["D4"].names == ["Tumour", "x", "y"]
    assert removed == 3
    # preferred names are never removed, even when another concept has fewer names
    kb = KnowledgeBase([Concept("A", "Cancer", ["malignancy", "neoplasia"]),
                        Concept("B", "Tumor", ["cancer"])])
    kb.deduplicate_synonyms()
    assert kb["A"].name == "Cancer" and kb["B"].names == ["Tumor", "cancer"]
    assert sorted(kb.lookup("cancer")) == ["A", "B"]
