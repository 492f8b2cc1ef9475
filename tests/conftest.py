"""Shared fixtures: paths to the staged public data, small in-memory KBs and documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# property tests draw the same examples on every run (deterministic CI); a bug they find stays found
settings.register_profile("genbel", derandomize=True)
settings.load_profile("genbel")

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


def make_tiny_kb() -> KnowledgeBase:
    """The tiny KB of the ``tiny_kb`` fixture, for fixtures of a wider scope."""
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


@pytest.fixture
def tiny_kb() -> KnowledgeBase:
    return make_tiny_kb()


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


# ---------------------------------------------------------------- tiny dense encoders, built once a session
# (read-only for the tests: a test that changes one copies it first)
@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT encoder saved as a Hugging Face checkpoint."""
    from tests.linkers.retrieval_fixtures import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path):
    """The tiny encoder loaded as a :class:`genbel.encoders.TextEncoder` (one per test module)."""
    from genbel.encoders import TextEncoder

    return TextEncoder.load(encoder_dir)


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base encoder for delta exports."""
    from tests.linkers.retrieval_fixtures import make_base_encoder

    return make_base_encoder(tmp_path_factory.mktemp("delta") / "base")


@pytest.fixture(scope="session")
def run_dir(base_dir: Path) -> Path:
    """A retriever run trained from ``base_dir``."""
    from tests.linkers.retrieval_fixtures import make_trained_run

    return make_trained_run(base_dir)
