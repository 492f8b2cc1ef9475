"""Span scoring: exact and overlap NER P/R/F1, per type, strict end-to-end F1, bootstrap CIs."""

from __future__ import annotations

import numpy as np

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.eval.spans import end_to_end_scores, evaluate_end_to_end, ner_scores, prf_bootstrap
from genbel.kb.base import KnowledgeBase
from genbel.linkers import create_linker
from genbel.ner import Span, create_detector

TEXT = "Breast cancer and colon cancer; ibuprofen helps. APC too."


def _doc(doc_id: str = "1") -> Document:
    def ent(i: int, s: int, e: int, typ: str, ids: str) -> Entity:
        return Entity(f"{doc_id}-{i}", typ, [TEXT[s:e]], [(s, e)],
                      [Normalization("MESH", x) for x in ids.split("|") if x])
    return Document(doc_id, doc_id, [Passage("p", "abstract", [TEXT], [(0, len(TEXT))])], [
        ent(0, 0, 13, "SpecificDisease", "D001"), ent(1, 18, 30, "DiseaseClass", "D002"),
        ent(2, 32, 41, "Chemical", "C004"), ent(3, 49, 52, "Modifier", ""),
    ])


def _span(s: int, e: int, typ: str = "Disorders") -> Span:
    return Span(s, e, TEXT[s:e], typ)


def test_exact_and_overlap_per_type() -> None:
    preds = [[_span(0, 6), _span(18, 30), _span(32, 41, "Chemicals & Drugs"), _span(43, 48)]]
    r = ner_scores([_doc()], preds, n_bootstrap=0)
    ex, ov = r.scores["exact"], r.scores["overlap"]
    assert (ex.tp, ex.n_pred, ex.n_gold) == (2, 4, 4) and ex.f1 == 50.0
    assert (ov.precision, ov.recall) == (75.0, 75.0)  # "Breast" overlaps; "helps" and APC do not
    assert r.per_type["Chemicals & Drugs"]["exact"].f1 == 100.0
    assert r.per_type["Disorders"]["exact"].tp == 1
    # a span of the wrong type is wrong when typed, right when not
    wrong = [[_span(32, 41, "Disorders")]]
    assert ner_scores([_doc()], wrong, n_bootstrap=0).scores["exact"].tp == 0
    assert ner_scores([_doc()], wrong, n_bootstrap=0, typed=False).scores["exact"].tp == 1


def test_bootstrap_brackets_the_estimate_and_is_seeded() -> None:
    counts = np.array([[3, 4, 3, 5], [1, 2, 1, 1], [0, 1, 0, 2], [5, 5, 5, 6]], dtype=float)
    a = prf_bootstrap(counts, 200, seed=1)
    assert a.f1_ci[0] <= a.f1 <= a.f1_ci[1]
    assert a == prf_bootstrap(counts, 200, seed=1)
    assert prf_bootstrap(np.zeros((0, 4)), 10).f1 == 0.0


def test_strict_end_to_end_needs_span_and_concept(tiny_kb: KnowledgeBase) -> None:
    preds = [[_span(0, 13), _span(18, 30), _span(32, 41, "Chemicals & Drugs"), _span(49, 52)]]
    linked = [[["D001"], ["D001"], ["C004"], ["D003"]]]  # colon cancer linked wrongly; APC is NIL gold
    r = end_to_end_scores([_doc()], preds, linked, tiny_kb, n_bootstrap=0)
    s = r.scores["strict"]
    assert (s.tp, s.n_pred, s.n_gold) == (2, 3, 3)
    assert r.notes == {"nil_gold_left_out": 1, "predictions_on_nil_left_out": 1}
    # an alternate id of the predicted concept counts
    gold_alt = _doc()
    gold_alt.entities[1].normalized = [Normalization("OMIM", "114500")]
    r2 = end_to_end_scores([gold_alt], preds, [[["D001"], ["D002"], ["C004"], []]], tiny_kb, n_bootstrap=0)
    assert r2.scores["strict"].tp == 3


def test_evaluate_end_to_end_with_real_detector_and_linker(tiny_kb: KnowledgeBase) -> None:
    det = create_detector("dictionary", tiny_kb)
    out = evaluate_end_to_end([_doc(), _doc("2")], det, tiny_kb, create_linker("exact", tiny_kb), n_bootstrap=50)
    ner, e2e = out["ner"].scores["exact"], out["end_to_end"].scores["strict"]
    assert (ner.tp, ner.n_pred, ner.n_gold) == (8, 8, 8)  # APC (Modifier, a disorder) found too
    assert (e2e.tp, e2e.n_gold) == (6, 6)
