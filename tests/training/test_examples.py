from __future__ import annotations

import pytest

from genbel.errors import InputError
from genbel.generation.prompts import PromptFormat
from genbel.training.examples import TargetSelector, dedupe_examples, finetune_examples
from tests.helpers import raises_code


def test_target_is_the_most_similar_synonym(kb):
    sel = TargetSelector(kb)
    assert sel.select("breast cancers", "D001943") == "Breast Cancer"
    assert sel.select("mammary carcinomas", "D001943") == "Mammary Carcinoma"
    assert sel.select("breast tumour", "D001943") == "Breast Tumor"
    # scores come in the concept's name order, and the chosen one is their maximum
    scores = sel.scores("breast cancers", "D001943")
    assert [n for n, _ in scores] == kb["D001943"].names
    assert max(scores, key=lambda x: x[1])[0] == "Breast Cancer"


def test_target_selection_accepts_alt_ids_and_falls_back_to_preferred_name(kb):
    sel = TargetSelector(kb)
    assert sel.select("diabetes", "OMIM:222100") == "Diabetes"
    # no 3-gram in common with any name: every score is 0, the tie goes to the preferred name
    assert sel.select("zzq", "D001943") == "Breast Neoplasms"


def test_finetune_examples_counts_and_targets(kb, docs):
    exs, rep = finetune_examples(docs, kb)
    got = [(e.query.text, e.concept_id, e.target) for e in exs]
    assert got == [
        ("breast cancers", "D001943", "Breast Cancer"),
        ("ovarian cancer", "D010051", "Ovarian Cancer"),
        # composite mention: one example per gold id (composite="each")
        ("breast and ovarian cancer", "D001943", "Breast Cancer"),
        ("breast and ovarian cancer", "D010051", "Ovarian Cancer"),
        ("diabetes mellitus", "D003920", "Diabetes Mellitus"),
        ("DM", "D003920", "DM"),
        ("DM", "D003920", "DM"),
        ("hemochromatosis", "D006432", "Hemochromatosis"),
    ]
    assert rep.mentions == 8
    assert rep.examples == 8
    assert rep.composite == 1 and rep.composite_skipped == 0
    assert rep.n_missing == 1 and dict(rep.missing_ids) == {"D999999": 1}
    assert rep.to_dict()["missing_gold_id_examples"] == ["D999999"]
    assert all(e.origin == "human" for e in exs)


def test_missing_gold_ids_fail_with_strict(kb, docs):
    with raises_code("E018", InputError, match=r"1 gold ids are missing from the KB \(e\.g\. D999999\)"):
        finetune_examples(docs, kb, strict=True)


@pytest.mark.parametrize("mode,expected", [("first", ["D001943"]), ("skip", [])])
def test_composite_modes(kb, docs, mode, expected):
    exs, rep = finetune_examples(docs[1:2], kb, composite=mode)
    assert [e.concept_id for e in exs if e.query.surface.startswith("breast")] == expected
    assert rep.composite == 1
    assert rep.composite_skipped == (1 if mode == "skip" else 0)


def test_nil_mentions_are_counted_and_skipped(kb, docs):
    docs[0].entities[0].normalized[0].db_id = "-1"
    exs, rep = finetune_examples(docs[:1], kb)
    assert rep.nil == 1
    assert [e.query.text for e in exs] == ["ovarian cancer"]


def test_abbreviation_variants(kb, docs):
    exs, _ = finetune_examples(docs[1:2], kb, abbreviations="both", entity_types=["Disease"])
    pairs = [(e.query.surface, e.query.text, e.target) for e in exs]
    assert pairs == [
        ("diabetes mellitus", "diabetes mellitus", "Diabetes Mellitus"),
        ("DM", "DM", "DM"),
        ("DM", "diabetes mellitus", "Diabetes Mellitus"),
        ("DM", "DM", "DM"),
        ("DM", "diabetes mellitus", "Diabetes Mellitus"),
    ]
    exs, _ = finetune_examples(docs[1:2], kb, abbreviations="expand", entity_types=["Disease"])
    assert [e.query.text for e in exs] == ["diabetes mellitus"] * 3


def test_type_filter_map_and_preferred_targets(kb, docs):
    exs, _ = finetune_examples(
        docs,
        kb,
        entity_types=["CompositeMention"],
        type_map={"CompositeMention": "Disease"},
        target="preferred",
    )
    assert [(e.query.type, e.target) for e in exs] == [
        ("Disease", "Breast Neoplasms"),
        ("Disease", "Ovarian Neoplasms"),
    ]


def test_dedupe_removes_identical_prompt_target_pairs(kb, docs):
    fmt = PromptFormat(context_chars=0, include_group=False)
    exs, _ = finetune_examples(docs, kb)
    kept, removed = dedupe_examples(exs, fmt)
    assert removed == 1  # the second "DM" → "DM"
    assert len(kept) == len(exs) - 1
    assert len({e.key(fmt) for e in kept}) == len(kept)
    # with context the two DM mentions differ and both stay
    kept_ctx, removed_ctx = dedupe_examples(exs, PromptFormat(context_chars=30))
    assert removed_ctx == 0 and len(kept_ctx) == len(exs)


def test_bad_options_raise(kb, docs):
    with raises_code("E357", InputError, match="composite"):
        finetune_examples(docs, kb, composite="all")
    with raises_code("E357", InputError, match="abbreviations"):
        finetune_examples(docs, kb, abbreviations="yes")
