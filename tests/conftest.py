"""Shared fixtures: paths to the staged public data, small in-memory KBs and documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """Path under ../shared/data; the test is skipped when the staged data is not beside the repo."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"staged data not found: {p}")
    return p


@pytest.fixture
def tiny_kb() -> KnowledgeBase:
    return KnowledgeBase(
        [
            Concept("D001", "Breast Neoplasms", ["breast cancer", "breast tumor"],
                    semantic_groups=["Disorders"]),
            Concept("D002", "Colorectal Neoplasms", ["colorectal cancer", "colon cancer"],
                    alt_ids=["OMIM:114500"], semantic_groups=["Disorders"]),
            Concept("D003", "Adenomatous Polyposis Coli", ["APC", "familial adenomatous polyposis"],
                    semantic_groups=["Disorders"]),
            Concept("C004", "Ibuprofen", ["ibuprofen"], semantic_groups=["Chemicals & Drugs"]),
        ],
        name="tiny",
    )


def make_doc(doc_id: str, text: str, mentions: list[tuple[str, str, str]]) -> Document:
    """A one-passage document; ``mentions`` = (surface, type, ids 'D1|D2') found left to right."""
    ents = []
    pos = 0
    for i, (surface, typ, ids) in enumerate(mentions):
        s = text.index(surface, pos)
        pos = s + len(surface)
        ents.append(
            Entity(f"{doc_id}-{i}", typ, [surface], [(s, s + len(surface))],
                   [Normalization("MESH", x) for x in ids.split("|")])
        )
    return Document(doc_id, doc_id, [Passage(f"{doc_id}-p0", "abstract", [text], [(0, len(text))])], ents)
