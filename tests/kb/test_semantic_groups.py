"""The TUI → semantic group table and group-name normalisation."""

from __future__ import annotations

from collections import Counter

import pytest

from genbel.errors import ConfigError, InputError
from genbel.kb.semantic_groups import (
    GROUP_ALIASES,
    GROUP_CODES,
    GROUPS,
    LEGACY_TUI_TO_GROUP,
    ST21PV_TUIS,
    TUI_NAMES,
    TUI_TO_GROUP,
    group_code_of_tui,
    group_of_tui,
    groups_of_tuis,
    normalize_group,
    resolve_group,
)
from tests.helpers import raises_code


def test_table_shape() -> None:
    assert len(GROUPS) == 15
    assert len(TUI_TO_GROUP) == 127
    assert set(TUI_TO_GROUP.values()) == set(GROUPS)
    assert set(TUI_NAMES) == set(TUI_TO_GROUP)
    assert all(t.startswith("T") and len(t) == 4 and t[1:].isdigit() for t in TUI_TO_GROUP)
    per_group = Counter(TUI_TO_GROUP.values())
    assert per_group == {"LIVB": 21, "CHEM": 20, "CONC": 12, "DISO": 12, "ANAT": 11, "ACTI": 9,
                         "PHYS": 9, "PROC": 7, "PHEN": 6, "GENE": 5, "OBJC": 5, "ORGA": 4, "DEVI": 3,
                         "OCCU": 2, "GEOG": 1}
    assert not set(LEGACY_TUI_TO_GROUP) & set(TUI_TO_GROUP)
    assert GROUP_CODES["Chemicals & Drugs"] == "CHEM"


def test_known_types() -> None:
    assert (TUI_NAMES["T047"], group_of_tui("T047")) == ("Disease or Syndrome", "Disorders")
    assert group_of_tui("T033") == "Disorders"  # Finding
    assert group_of_tui("T116") == "Chemicals & Drugs"
    assert group_of_tui("T028") == "Genes & Molecular Sequences"
    assert group_of_tui("T201") == "Physiology"  # Clinical Attribute
    assert group_of_tui("T038") == "Phenomena"  # Biologic Function
    assert group_of_tui("T097") == "Living Beings"  # Professional or Occupational Group
    assert group_of_tui("T091") == "Occupations"
    assert group_of_tui("T083") == "Geographic Areas"
    assert group_code_of_tui("t119") == "CHEM"  # legacy Lipid
    assert group_of_tui("T999") is None
    assert groups_of_tuis(["T109", "T121", "T047", "T999", "T116"]) == ["Chemicals & Drugs", "Disorders"]


def test_st21pv() -> None:
    assert len(ST21PV_TUIS) == 21 == len(set(ST21PV_TUIS))
    assert all(t in TUI_TO_GROUP for t in ST21PV_TUIS)
    assert {TUI_NAMES[t] for t in ("T005", "T103", "T204")} == {"Virus", "Chemical", "Eukaryote"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Disorders", "Disorders"),
        ("disorders", "Disorders"),
        ("DISO", "Disorders"),
        ("diso", "Disorders"),
        ("T047", "Disorders"),
        ("Disease", "Disorders"),
        ("SpecificDisease", "Disorders"),
        ("Chemical", "Chemicals & Drugs"),
        ("chemicals & drugs", "Chemicals & Drugs"),
        (" Anatomy ", "Anatomy"),
    ],
)
def test_normalize_group(value: str, expected: str) -> None:
    assert normalize_group(value) == expected


def test_normalize_group_unknown() -> None:
    with raises_code("E012", ConfigError) as e:
        normalize_group("Diseasez")
    assert str(e.value).startswith(
        "[E012] unknown semantic group or entity type 'Diseasez'; known: ACTI (Activities & Behaviors), "
    )


def test_resolve_group_and_aliases() -> None:
    groups = ["Disorders", "Chemicals & Drugs"]  # a KB's own groups
    assert resolve_group("Disease", groups) == "Disorders"
    assert resolve_group("SpecificDisease", groups) == "Disorders"
    assert resolve_group("chemicals & drugs", groups) == "Chemicals & Drugs"
    assert resolve_group("CHEM", groups) == "Chemicals & Drugs"
    assert resolve_group("T047", groups) == "Disorders"
    assert resolve_group("MyGroup", ["MyGroup"]) == "MyGroup"
    assert GROUP_ALIASES["chemical"] == "Chemicals & Drugs"
    with raises_code("E250", InputError, match=r"file.txt:3: unknown semantic group"):
        resolve_group("Foo", groups, "file.txt:3")
