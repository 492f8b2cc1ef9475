from __future__ import annotations

from genbel.training.pretrain import DEFINITION_TEMPLATES, SYNONYM_TEMPLATES, fill, pretraining_examples


def _explained(text: str, mention: str, concept) -> bool:
    """``text`` is one template filled with ``mention`` and a name or definition of ``concept``."""
    contexts = list(concept.names) + list(concept.definitions)
    return any(
        fill(t, mention, c)[0] == text for t in DEFINITION_TEMPLATES + SYNONYM_TEMPLATES for c in contexts
    )


def test_samples_use_only_the_concepts_own_names_and_definitions(kb):
    exs = pretraining_examples(kb, per_concept=4, seed=3)
    assert exs
    for e in exs:
        c = kb[e.concept_id]
        q = e.query
        assert e.origin == "kb"
        assert e.target in c.names
        assert q.text in c.names and q.surface == q.text
        assert q.context[q.start : q.end] == q.text
        assert _explained(q.context, q.text, c), q.context
        assert q.type == "Disorders"
        assert q.gold_ids == [c.id]


def test_two_names_differ_when_the_concept_has_several(kb):
    exs = pretraining_examples(kb, per_concept=3, seed=0)
    for e in exs:
        if len(kb[e.concept_id].names) > 1:
            assert e.query.text != e.target
    # a one-name concept maps its name to itself
    hemo = [e for e in exs if e.concept_id == "D006432"]
    assert hemo and all(e.query.text == e.target == "Hemochromatosis" for e in hemo)


def test_deterministic_and_bounded(kb):
    a = pretraining_examples(kb, per_concept=2, seed=7)
    b = pretraining_examples(kb, per_concept=2, seed=7)
    assert [(e.query.context, e.target) for e in a] == [(e.query.context, e.target) for e in b]
    per = {}
    for e in a:
        per[e.concept_id] = per.get(e.concept_id, 0) + 1
    assert max(per.values()) <= 2
    # no duplicate (context, mention, target) within a concept
    assert len({(e.query.context, e.query.text, e.target) for e in a}) == len(a)
    sub = pretraining_examples(kb, per_concept=1, seed=7, max_concepts=2)
    assert len({e.concept_id for e in sub}) == 2


def test_fill_offsets():
    text, s, e = fill("{c} describes {m}", "DM", "a metabolic disease")
    assert text == "a metabolic disease describes DM"
    assert text[s:e] == "DM"
