"""The dictionary matcher: folding keeps offsets, leftmost-longest, word boundaries, case of acronyms,
stop-lists, training mentions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from genbel.errors import ConfigError
from genbel.kb.base import KnowledgeBase
from genbel.ner import Span, create_detector
from genbel.ner.dictionary import DictionaryDetector, fold, fold_with_offsets
from tests.conftest import make_doc
from tests.helpers import raises_code


def test_fold_is_letters_digits_single_spaces() -> None:
    assert fold("  Breast-Cancer, (familial) ") == "breast cancer familial"
    assert fold("Sjögren's  syndrome") == "sjogren s syndrome"
    assert fold("ﬁbrosis") == "fibrosis"  # a ligature expands: offsets still point into the original


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fold_offsets_point_to_the_character_each_folded_character_came_from(text: str) -> None:
    folded, origin = fold_with_offsets(text)
    assert len(folded) == len(origin)
    assert origin == sorted(origin)
    for ch, i in zip(folded, origin):
        assert 0 <= i < len(text)
        if ch != " ":
            assert ch in fold_with_offsets(text[i])[0]


def test_leftmost_longest_word_boundaries_and_original_surface(tiny_kb: KnowledgeBase) -> None:
    det = create_detector("dictionary", tiny_kb)
    text = "Familial Adenomatous-Polyposis and breast cancers; BREAST CANCER in colon cancer."
    spans = det.detect(text)
    assert [(s.text, s.type, s.source) for s in spans] == [
        ("Familial Adenomatous-Polyposis", "Disorders", "dictionary"),
        ("BREAST CANCER", "Disorders", "dictionary"),
        ("colon cancer", "Disorders", "dictionary"),
    ]  # "breast cancers" is not a word-boundary match of "breast cancer"
    for s in spans:
        assert text[s.start:s.end] == s.text


def test_acronyms_match_in_their_own_case_only(tiny_kb: KnowledgeBase) -> None:
    det = create_detector("dictionary", tiny_kb)
    assert [s.text for s in det.detect("APC mutations; the apc gene; Ibuprofen")] == ["APC", "Ibuprofen"]
    assert det.detect("Ibuprofen")[0].type == "Chemicals & Drugs"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["breast cancer", "Breast-Cancer", "x", " ", "ﬁ", "é", "APC", "(", "\n",
                                 "colon", "cancer", "İ", "ß", "-", "colorectal cancer", "0"]), max_size=25))
def test_offsets_are_exact_on_any_text(pieces: list[str]) -> None:
    det = DictionaryDetector([("breast cancer", "D"), ("colon cancer", "D"), ("APC", "D"), ("ﬁ cancer", "D")],
                             min_length=1)
    text = "".join(pieces)
    spans = det.detect(text)
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    for s in spans:
        assert text[s.start:s.end] == s.text
        assert fold(s.text) in {"breast cancer", "colon cancer", "apc", "fi cancer"}
        assert s.start == 0 or not text[s.start - 1].isalnum()
        assert s.end == len(text) or not text[s.end].isalnum()


def test_training_mentions_and_learnt_stop_list(tiny_kb: KnowledgeBase) -> None:
    docs = [
        make_doc("1", "A hereditary tumour syndrome; tumor cells.", [("hereditary tumour syndrome", "Disease", "D1")]),
        make_doc("2", "Tumor growth and tumor size.", []),
    ]
    kb = KnowledgeBase(list(tiny_kb) + [type(next(iter(tiny_kb)))("D9", "Tumor", semantic_groups=["Disorders"])])
    plain = create_detector("dictionary", kb, fit_stop_list=False)
    assert [s.text for s in plain.detect("tumor growth")] == ["tumor"]
    det = create_detector("dictionary", kb, training_docs=docs)
    assert det.detect("tumor growth") == []  # matched 3 times in training, never a gold mention
    assert det.detect("a hereditary tumour syndrome") == [
        Span(2, 28, "hereditary tumour syndrome", "Disorders", 1.0, "dictionary")]


def test_errors() -> None:
    with raises_code("E502", ConfigError):
        create_detector("dictionary")
    with raises_code("E501", ConfigError):
        create_detector("nope")
    with raises_code("E504", ConfigError):
        DictionaryDetector([], min_length=0)
    with raises_code("E500", ConfigError):
        Span(3, 3, "")
    assert DictionaryDetector([]).detect("anything") == []
