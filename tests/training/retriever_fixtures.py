"""Data of the retriever-training tests: a 4-concept KB and two documents."""

from __future__ import annotations

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from tests.conftest import make_doc


def make_kb() -> KnowledgeBase:
    """Four concepts, one with an alternate id."""
    return KnowledgeBase(
        [
            Concept("D001", "Breast Neoplasms", ["breast cancer", "breast tumor"]),
            Concept("D002", "Colorectal Neoplasms", ["colorectal cancer", "colon cancer"],
                    alt_ids=["OMIM:114500"]),
            Concept("D003", "Adenomatous Polyposis Coli", ["APC", "familial adenomatous polyposis"]),
            Concept("D004", "Migraine Disorders", ["migraine"]),
        ],
        name="tiny",
    )


def make_docs() -> list:
    """Two documents: alternate ids, a composite mention, a duplicate, a NIL and an unknown id."""
    return [
        make_doc("1", "Germline APC mutations cause FAP, colorectal carcinoma and mammary cancer.",
                 [("APC", "Disease", "D003"), ("FAP", "Disease", "D003"),
                  ("colorectal carcinoma", "Disease", "OMIM:114500"), ("mammary cancer", "Disease", "D001")]),
        make_doc("2", "Mammary cancer, migraine headache, breast and colon cancers, a family, a wart.",
                 [("Mammary cancer", "Disease", "D001"), ("migraine headache", "Disease", "D004"),
                  ("breast and colon cancers", "Disease", "D001|D002"), ("family", "Disease", "-1"),
                  ("wart", "Disease", "D999")]),
    ]
