"""The dictionary matcher: folding keeps offsets, leftmost-longest, word boundaries, case of acronyms,
stop-lists, training mentions."""

from __future__ import annotations

import itertools

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
    for a, b in itertools.pairwise(spans):
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


# ---------------------------------------------------------------------- the word-id trie matcher
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ-9 .é'İß\tﬁ½"), max_size=30))
def test_the_ascii_fast_fold_equals_the_character_loop(text: str) -> None:
    assert fold(text) == fold_with_offsets(text)[0].strip()


def _reference(names: list[tuple[str, str]]) -> tuple[dict, dict, dict]:
    from collections import Counter

    from genbel.ner.dictionary import _is_acronym

    types: dict[str, Counter] = {}
    any_case: dict[str, bool] = {}
    forms: dict[str, set[str]] = {}
    for n, t in names:
        k = fold(n)
        if not k:
            continue
        types.setdefault(k, Counter())[t] += 1
        if _is_acronym(n):
            forms.setdefault(k, set()).add(n.strip())
        else:
            any_case[k] = True
    return types, any_case, forms


def _reference_spans(names: list[tuple[str, str]] | tuple, text: str, min_length: int = 3,
                     min_acronym_length: int = 2, stop: set[str] = frozenset()) -> list[Span]:
    """Every word-aligned occurrence of every allowed folded name, found by trying every word span of
    the folded text against a dict (independent of the trie), then leftmost-longest."""
    from genbel.ner.base import remove_overlaps
    from genbel.ner.dictionary import STOP_WORDS

    stop = {fold(w) for w in STOP_WORDS} | set(stop)
    types, any_case, forms = names if isinstance(names, tuple) else _reference(names)
    folded, origin = fold_with_offsets(text)
    words = [(m.start(), m.end()) for m in __import__("re").finditer(r"[^ ]+", folded)]
    out = []
    for i in range(len(words)):
        for j in range(i, len(words)):
            k = folded[words[i][0]:words[j][1]]
            if k not in types or k in stop:
                continue
            s, e = origin[words[i][0]], origin[words[j][1] - 1] + 1
            any_case_ok = any_case.get(k) and len(k) >= min_length
            if not any_case_ok and not (k in forms and len(k) >= min_acronym_length and text[s:e] in forms[k]):
                continue
            out.append(Span(s, e, text[s:e], types[k].most_common(1)[0][0], 1.0, "dictionary"))
    return remove_overlaps(out)


_NAMES = [("breast cancer", "A"), ("Breast Cancer", "B"), ("breast cancer", "B"), ("cancer", "C"),
          ("colon cancer", "A"), ("colon", "A"), ("APC", "G"), ("ALL", "D"), ("all", "X"), ("ab", "A"),
          ("AB", "A"), ("ﬁ cancer", "D"), ("colon cancer of the breast", "A"), ("the", "A"), ("Sjögren", "D"),
          ("12", "C"), ("C2", "C"), ("x-ray", "B"), ("b", "B"), ("B", "B")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["breast", "cancer", "Cancer", "colon", "APC", "apc", "ALL", "all", "AB", "ab",
                                 "ﬁ", "of", "the", "Sjögren", "sjogren", "12", "C2", "x", "ray", "B", "b", "İ"]),
                max_size=14),
       st.lists(st.sampled_from([" ", "-", ", ", "(", "\n", "  ", "/"]), min_size=14, max_size=14))
def test_same_spans_as_a_brute_force_reference(words: list[str], seps: list[str]) -> None:
    text = "".join(w + s for w, s in zip(words, seps))
    det = DictionaryDetector(_NAMES)
    assert det.detect(text) == _reference_spans(_NAMES, text)
    det1 = DictionaryDetector(_NAMES, min_length=1, min_acronym_length=3, stop_names=["colon cancer"])
    assert det1.detect(text) == _reference_spans(_NAMES, text, 1, 3, {"colon cancer"})


def test_the_most_frequent_type_wins_ties_to_the_first_seen() -> None:
    det = DictionaryDetector([("breast cancer", "B"), ("Breast Cancer", "A"), ("breast-cancer", "A"),
                              ("colon", "Y"), ("Colon", "X")])
    assert [s.type for s in det.detect("breast cancer, colon")] == ["A", "Y"]
    assert det.types == ["A", "B", "X", "Y"]


def test_same_spans_as_the_reference_on_the_bundled_kb() -> None:
    """Every name of the bundled MEDIC KB, on text made of its names and filler words."""
    import random

    from genbel.kb.loaders import open_kb

    kb = open_kb("default")
    names = [(n, c.semantic_groups[0] if c.semantic_groups else "Disorders") for c in kb for n in c.names]
    det = create_detector("dictionary", kb)
    rng = random.Random(1)
    pool = [n for n, _ in rng.sample(names, 300)]
    filler = ["patients", "with", "and", "the", "of", "in", "were", "studied", "(", ")", ",", "-", "type", "2"]
    ref = _reference(names)
    for _ in range(20):
        parts = [rng.choice(pool) if rng.random() < 0.3 else rng.choice(filler) for _ in range(40)]
        text = " ".join(parts)
        got = det.detect(text)
        assert got == _reference_spans(ref, text)
        assert got  # names of the KB are found
