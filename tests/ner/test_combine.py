"""Combining detectors and tagging short forms of detected long forms."""

from __future__ import annotations

from genbel.errors import ConfigError
from genbel.kb.base import KnowledgeBase
from genbel.ner import Span, create_detector
from genbel.ner.combine import CombinedDetector, combine_spans, tag_short_forms
from tests.helpers import raises_code

TEXT = "Familial adenomatous polyposis (FAP) is rare; FAP and breast cancer, FAPs."


def _s(a: int, b: int, src: str) -> Span:
    return Span(a, b, TEXT[a:b], "Disorders", 0.9, src)


def test_modes() -> None:
    tagger = [_s(0, 30, "tagger"), _s(54, 67, "tagger")]
    dictionary = [_s(9, 30, "dictionary"), _s(46, 49, "dictionary"), _s(54, 67, "dictionary")]
    both = tagger[1].with_(source="tagger+dictionary")
    assert combine_spans([tagger, dictionary], "primary-first") == [tagger[0], dictionary[1], both]
    assert combine_spans([tagger, dictionary], "tagger-first") == [tagger[0], dictionary[1], both]
    assert [(s.offsets, s.source) for s in combine_spans([dictionary, tagger], "union")] == [
        ((0, 30), "tagger"), ((46, 49), "dictionary"), ((54, 67), "dictionary+tagger")]
    assert combine_spans([tagger, dictionary], "intersection") == [both]
    # primary-types: the dictionary only for the types the tagger does not detect
    chem = Span(46, 49, "FAP", "Chemicals & Drugs", 0.9, "dictionary")
    assert combine_spans([tagger, dictionary], "primary-types") == [tagger[0], both]
    assert combine_spans([tagger, [*dictionary, chem]], "primary-types", primary_types=["Disorders"]) == [
        tagger[0], chem, both]
    assert combine_spans([[], [*dictionary, chem]], "primary-types", primary_types=["Disorders"]) == [chem]
    with raises_code("E506", ConfigError):
        combine_spans([tagger], "vote")


def test_short_forms_of_detected_long_forms_are_tagged() -> None:
    out = tag_short_forms(TEXT, [_s(0, 30, "tagger")])
    assert [(s.text, s.source) for s in out] == [
        ("Familial adenomatous polyposis", "tagger"), ("FAP", "abbreviation"), ("FAP", "abbreviation")]
    assert tag_short_forms(TEXT, []) == []  # no detected long form: nothing tagged


def test_combined_detector_with_real_parts(tiny_kb: KnowledgeBase) -> None:
    dictionary = create_detector("dictionary", tiny_kb)
    det = CombinedDetector([dictionary], "primary-first")
    spans = det.detect("Breast cancer (BC) is frequent. BC is treated.")
    assert [s.text for s in spans] == ["Breast cancer", "BC", "BC"]
    assert CombinedDetector([dictionary], abbreviations=False).detect("Breast cancer (BC).")[-1].text == "Breast cancer"
    with raises_code("E502", ConfigError):
        create_detector("combined")
