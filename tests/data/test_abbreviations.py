from __future__ import annotations

import pytest

from genbel.data.abbreviations import (
    AbbreviationPair,
    best_long_form,
    expand_abbreviations,
    find_abbreviation_pairs,
    find_abbreviations,
    initials_long_form,
)
from genbel.data.pubtator import read_pubtator
from tests.conftest import shared


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # NCBI-disease dev/test sentences
        (
            "Germline mutations in the adenomatous polyposis coli (APC) gene are responsible for FAP.",
            {"APC": "adenomatous polyposis coli"},
        ),
        (
            "Myotonic dystrophy, or dystrophia myotonica (DM), is the most common muscular dystrophy.",
            {"DM": "dystrophia myotonica"},
        ),
        (
            "Aspartylglucosaminuria (AGU) is a rare disorder of glycoprotein metabolism.",
            {"AGU": "Aspartylglucosaminuria"},
        ),
        (
            "Ataxia-telangiectasia (A-T) is a recessive multi-system disorder.",
            {"A-T": "Ataxia-telangiectasia"},
        ),
        ("patients with non-Hodgkin lymphoma (NHL) were", {"NHL": "non-Hodgkin lymphoma"}),
        # digits in the short form
        (
            "Patients with dystrophia myotonica type 1 (DM1) and type 2 (DM2) differ.",
            {"DM1": "dystrophia myotonica type 1"},
        ),
        # "SF (long form)" pattern
        ("The APC (adenomatous polyposis coli) gene is mutated.", {"APC": "adenomatous polyposis coli"}),
        # text after "; " or ", " inside the parentheses is ignored
        ("cystic fibrosis (CF; MIM 219700) is common", {"CF": "cystic fibrosis"}),
    ],
)
def test_definitions(text: str, expected: dict[str, str]) -> None:
    assert find_abbreviations(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # letters of DM are not in order in "Myotonic dystrophy": Schwartz & Hearst find nothing
        "Myotonic dystrophy (DM) is caused by a CTG expansion.",
        "Myotonic dystrophy type 1 (DM1) is caused by a CTG expansion.",
        # no letter / too short / too long / more than two words
        "in 24 patients (1998) and",
        "a total (n = 12) of",
        "of the gene (X) and",
        "the mutation (ABCDEFGHIJK) was",
        # first SF letter must start a word: "H" only occurs inside "ataxia"/"with"
        "patients with ataxia (HX) were",
        "no parenthesis at all",
    ],
)
def test_negatives(text: str) -> None:
    assert find_abbreviations(text) == {}


def test_pair_offsets() -> None:
    text = "We studied adenomatous polyposis coli (APC) and APC carriers."
    (p,) = find_abbreviation_pairs(text)
    assert p == AbbreviationPair("APC", "adenomatous polyposis coli", 39, 42, 11, 37)
    assert text[p.short_start : p.short_end] == "APC"
    assert text[p.long_start : p.long_end] == "adenomatous polyposis coli"


def test_reverse_pattern_offsets() -> None:
    text = "The APC (adenomatous polyposis coli) gene"
    (p,) = find_abbreviation_pairs(text)
    assert text[p.short_start : p.short_end] == "APC"
    assert text[p.long_start : p.long_end] == "adenomatous polyposis coli"


def test_long_form_word_limit() -> None:
    # "AB": at most min(2 + 5, 2 * 2) = 4 words
    assert find_abbreviations("alpha one two three beta (AB) x") == {}
    assert find_abbreviations("alpha two beta (AB) x") == {"AB": "alpha two beta"}


def test_long_form_stays_in_sentence() -> None:
    assert find_abbreviations("Cystic lesions were seen. Fibrosis (CF) followed.") == {}


def test_best_long_form_matches_backwards() -> None:
    assert best_long_form("HNPCC", "hereditary nonpolyposis colorectal cancer") == (
        "hereditary nonpolyposis colorectal cancer"
    )
    assert best_long_form("CF", "patients with cystic fibrosis") == "cystic fibrosis"
    assert best_long_form("DM", "Myotonic dystrophy") is None


def test_document_level_choice() -> None:
    # NCBI test 9600235: "The ATM (A-T, mutated) gene ... ataxia-telangiectasia (A-T)"
    text = "The ATM (A-T, mutated) gene is mutated in the recessive disease ataxia-telangiectasia (A-T). A-T."
    assert [p.long for p in find_abbreviation_pairs(text)] == ["ATM", "ataxia-telangiectasia"]
    assert find_abbreviations(text) == {"A-T": "ataxia-telangiectasia"}


def test_defined_once_used_everywhere() -> None:
    text = (
        "Aspartylglucosaminuria (AGU) is rare. AGU is inherited as an autosomal recessive trait. "
        "The clinical diagnosis of AGU is difficult."
    )
    abbrevs = find_abbreviations(text)
    assert abbrevs == {"AGU": "Aspartylglucosaminuria"}
    assert text.count("AGU") == 3


def test_ncbi_test_abbreviation_mentions() -> None:
    docs = read_pubtator(shared("ncbi-disease", "NCBItestset_corpus.txt"))
    n = 0
    for d in docs:
        abbrevs = find_abbreviations(d.text)
        n += sum(e.mention in abbrevs for e in d.entities)
    assert n == 238


def test_word_initials_extend_the_character_match() -> None:
    # NCBI-disease 9585611: the character match stops at "adenomatous" (its inner "a" matches the 2nd A)
    text = "mutations are implicated in attenuated adenomatous polyposis coli (AAPC), a variant of FAP."
    assert best_long_form("AAPC", "implicated in attenuated adenomatous polyposis coli") == (
        "adenomatous polyposis coli"
    )
    assert initials_long_form("AAPC", "implicated in attenuated adenomatous polyposis coli") == (
        "attenuated adenomatous polyposis coli"
    )
    assert find_abbreviations(text) == {"AAPC": "attenuated adenomatous polyposis coli"}
    pair = find_abbreviation_pairs(text)[0]
    assert text[pair.long_start:pair.long_end] == "attenuated adenomatous polyposis coli"
    # hyphens separate words; digits are left to the character match
    assert initials_long_form("NHL", "patients with non-Hodgkin lymphoma") == "non-Hodgkin lymphoma"
    assert initials_long_form("DM1", "dystrophia myotonica type 1") is None
    assert initials_long_form("XY", "no such words") is None


def test_nested_short_forms_are_written_out() -> None:
    # NCBI-disease 9529364
    text = (
        "patients with Denys-Drash syndrome (DDS), or diffuse mesangial sclerosis (DMS) with Wilms tumor. "
        "We analyzed 24 patients, 10 with isolated DMS (IDMS), 10 with DDS."
    )
    assert find_abbreviations(text) == {
        "DDS": "Denys-Drash syndrome",
        "DMS": "diffuse mesangial sclerosis",
        "IDMS": "isolated diffuse mesangial sclerosis",
    }
    # a short form is only replaced as a whole word, and bracketed long forms are left alone
    text2 = "the Wiskott-Aldrich syndrome (WAS) gene encodes the WAS protein (WASP). WASPS."
    assert find_abbreviations(text2)["WASP"] == "Wiskott-Aldrich syndrome protein"


@pytest.mark.parametrize(
    ("mention", "expected"),
    [
        ("IDMS", "isolated diffuse mesangial sclerosis"),  # the whole mention is a short form
        ("isolated DMS", "isolated diffuse mesangial sclerosis"),  # a short form inside a mention
        ("DMS and VHL", "diffuse mesangial sclerosis and von Hippel-Lindau"),
        ("von Hippel-Lindau (VHL) tumor", "von Hippel-Lindau tumor"),  # definition inside the mention
        ("XDMS", "XDMS"),  # not a whole word
        ("DMS-1", "DMS-1"),  # part of a hyphenated token
        ("renal cysts", "renal cysts"),
    ],
)
def test_expand_abbreviations_in_mentions(mention: str, expected: str) -> None:
    abbrevs = {
        "DMS": "diffuse mesangial sclerosis",
        "IDMS": "isolated diffuse mesangial sclerosis",
        "VHL": "von Hippel-Lindau",
    }
    assert expand_abbreviations(mention, abbrevs) == expected


def test_queries_expand_short_forms_inside_mentions(tmp_path) -> None:
    from genbel.data.queries import queries_from_documents

    title, abstract = "Renal disease.", "Patients with diffuse mesangial sclerosis (DMS) or isolated DMS."
    text = f"{title} {abstract}"
    start = text.index("isolated DMS")
    path = tmp_path / "doc.txt"
    path.write_text(
        f"1|t|{title}\n1|a|{abstract}\n1\t{start}\t{start + 12}\tisolated DMS\tDisease\tC537346\n\n"
    )
    docs = read_pubtator(path)
    q, = queries_from_documents(docs, expand_abbreviations=True)
    assert (q.surface, q.text) == ("isolated DMS", "isolated diffuse mesangial sclerosis")
    q, = queries_from_documents(docs, expand_abbreviations=False)
    assert q.text == "isolated DMS"
