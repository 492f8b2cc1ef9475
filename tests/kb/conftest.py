"""Fixtures of the kb tests: the real MEDIC and CTD files (loaded once per module) and small fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbel.kb.base import KnowledgeBase
from genbel.kb.loaders import load_kb
from tests.conftest import shared

FIXTURES = Path(__file__).parent / "fixtures"
MEDIC_FILE = ("medic", "medic_06Jul2012.txt")
CTD_FILE = ("ctd-diseases", "CTD_diseases_2017.tsv")


@pytest.fixture(scope="module")
def medic_path() -> Path:
    return shared(*MEDIC_FILE)


@pytest.fixture(scope="module")
def medic(medic_path: Path) -> KnowledgeBase:
    """The real MEDIC, loaded once per test module; tests must not modify it."""
    return load_kb(medic_path)


@pytest.fixture(scope="module")
def ctd() -> KnowledgeBase:
    """The real CTD diseases file, loaded once per test module; tests must not modify it."""
    return load_kb(shared(*CTD_FILE))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
