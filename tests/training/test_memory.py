"""Robust memory training: memories of earlier gold normalizations, corrupted at a configured rate."""

from __future__ import annotations

import random

import pytest

from genbel.errors import ConfigError
from genbel.generation.encoding import DocumentPromptEncoder, DocumentQuery
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.training.examples import dedupe_examples, finetune_examples
from genbel.training.memory import MemoryExample, MemoryReport, _Replacer, add_memory, corrupt_memory
from tests.helpers import raises_code
from tests.training.conftest import build_tokenizer, doc


def _examples(kb, docs):
    exs, _ = finetune_examples(docs, kb, target="preferred")
    return exs


def _gold_memory(exs):
    """Expected memories: per document, (text, target) of the first example of each earlier mention."""
    out = []
    firsts: dict[str, list[tuple]] = {}
    for ex in exs:
        q = ex.query
        lst = firsts.setdefault(q.doc_id, [])
        key = (q.start, q.end, q.entity_id)
        if not lst or all(k != key for k, _ in lst):
            lst.append((key, (q.text, ex.target)))
    for ex in exs:
        q = ex.query
        key = (q.start, q.end, q.entity_id)
        mem = []
        for k, entry in firsts[q.doc_id]:
            if k == key:
                break
            mem.append(entry)
        out.append(mem)
    return out


def test_memory_is_the_gold_names_of_the_earlier_mentions(kb, docs):
    exs = _examples(kb, docs)
    mem = add_memory(exs, kb, corruption=0.0, fraction=1.0, seed=0)
    assert len(mem) == len(exs)
    assert [m.memory for m in mem] == _gold_memory(exs)
    # document 2: composite mention (2 examples) then "diabetes mellitus", "DM", "DM"
    d2 = [m for m in mem if m.query.doc_id == "2"]
    assert [m.query.text for m in d2] == ["breast and ovarian cancer"] * 2 + ["diabetes mellitus", "DM", "DM"]
    assert d2[0].memory == d2[1].memory == []
    assert d2[2].memory == [("breast and ovarian cancer", "Breast Neoplasms")]
    assert d2[4].memory == [("breast and ovarian cancer", "Breast Neoplasms"),
                            ("diabetes mellitus", "Diabetes Mellitus"), ("DM", "Diabetes Mellitus")]
    for m, ex in zip(mem, exs):
        assert isinstance(m, MemoryExample) and isinstance(m.query, DocumentQuery)
        assert m.query.memory == m.memory
        assert (m.target, m.concept_id, m.origin, m.query.text) == (ex.target, ex.concept_id, ex.origin, ex.query.text)


def test_fraction_zero_gives_mention_level_examples(kb, docs):
    mem = add_memory(_examples(kb, docs), kb, corruption=0.5, fraction=0.0, seed=3)
    assert all(m.memory == [] for m in mem)


def test_full_corruption_by_dropping_empties_every_memory(kb, docs):
    rep = MemoryReport()
    mem = add_memory(_examples(kb, docs), kb, corruption=1.0, fraction=1.0, drop_share=1.0, seed=0, report=rep)
    assert all(m.memory == [] for m in mem)
    assert rep.dropped == rep.entries > 0 and rep.replaced == 0


def test_full_corruption_by_replacement_changes_every_name(kb, docs):
    exs = _examples(kb, docs)
    gold = _gold_memory(exs)
    rep = MemoryReport()
    mem = add_memory(exs, kb, corruption=1.0, fraction=1.0, drop_share=0.0, seed=0, report=rep)
    assert rep.replaced == rep.entries > 0 and rep.dropped == 0
    target_concept = {(ex.query.text, ex.target): ex.concept_id for ex in exs}
    for m, g in zip(mem, gold):
        assert [x for x, _ in m.memory] == [x for x, _ in g]  # the mentions stay
        for (mention, wrong), (_, right) in zip(m.memory, g):
            gold_cid = target_concept[(mention, right)]
            assert wrong not in kb[gold_cid].names  # another concept's name
            assert kb.lookup(wrong)


def test_corruption_is_exact_for_a_fixed_seed():
    """The documented draw order, replayed by hand: carry?, then per entry corrupt?, drop?, concept, name."""
    kb = KnowledgeBase([
        Concept("A", "Alpha", ["alpha syn"], semantic_groups=["Disorders"]),
        Concept("B", "Beta", ["beta syn"], semantic_groups=["Disorders"]),
        Concept("C", "Gamma", [], semantic_groups=["Disorders"]),
        Concept("X", "Xeno", [], semantic_groups=["Chemicals & Drugs"]),
    ])
    entries = [("m1", "Alpha", "A"), ("m2", "Beta", "B"), ("m3", "Gamma", "C"), ("m4", "alpha syn", "A")]
    rate, drop_share, seed = 0.5, 0.5, 7
    got = corrupt_memory(entries, rate, random.Random(seed), _Replacer(kb), drop_share)
    rng = random.Random(seed)
    expected = []
    for mention, name, cid in entries:
        if rng.random() < rate:
            if rng.random() < drop_share:
                continue
            pool = sorted(c for c in ("A", "B", "C") if c != cid)  # same group (Disorders), not the gold one
            other = kb[rng.choice(pool)]
            expected.append((mention, rng.choice(other.names)))
        else:
            expected.append((mention, name))
    assert got == expected
    assert all(not n.startswith("Xeno") for _, n in got)  # never a concept of another group
    # same seed, same result; the report counts what happened
    rep = MemoryReport()
    assert corrupt_memory(entries, rate, random.Random(seed), _Replacer(kb), drop_share, rep) == got
    assert rep.dropped == len(entries) - len(got)
    assert rep.replaced == sum(1 for e, g in zip([e for e in entries if e[0] in dict(got)], got) if e[1] != g[1])


def test_corruption_rate_is_respected_over_many_entries():
    kb = KnowledgeBase([Concept(f"C{i}", f"Name {i}", [], semantic_groups=["Disorders"]) for i in range(20)])
    entries = [(f"m{i}", f"Name {i % 20}", f"C{i % 20}") for i in range(4000)]
    rep = MemoryReport()
    out = corrupt_memory(entries, 0.2, random.Random(1), _Replacer(kb), 0.5, rep)
    assert 0.17 < (rep.dropped + rep.replaced) / len(entries) < 0.23
    assert 0.4 < rep.dropped / (rep.dropped + rep.replaced) < 0.6
    assert len(out) == len(entries) - rep.dropped


def test_seeds(kb, docs):
    exs = _examples(kb, docs)
    a = add_memory(exs, kb, corruption=0.5, fraction=0.7, seed=1)
    b = add_memory(exs, kb, corruption=0.5, fraction=0.7, seed=1)
    assert [m.memory for m in a] == [m.memory for m in b]
    others = [[m.memory for m in add_memory(exs, kb, corruption=0.5, fraction=0.7, seed=s)] for s in range(2, 8)]
    assert any(o != [m.memory for m in a] for o in others)


@pytest.mark.parametrize("kw", [{"corruption": 1.5}, {"fraction": -0.1}, {"drop_share": 2}])
def test_rates_outside_zero_one_are_rejected(kb, docs, kw):
    with raises_code("E401", ConfigError, match="memory"):
        add_memory(_examples(kb, docs), kb, **kw)


def test_dedupe_keeps_examples_that_differ_by_memory(kb):
    d = doc("9", "DM and DM and DM.", [("DM", "D003920", "Disease")] * 3)
    exs = _examples(kb, [d])
    fmt = PromptFormat(context_chars=0)
    assert len(dedupe_examples(exs, fmt)[0]) == 1  # mention-level: one distinct prompt
    mem = add_memory(exs, kb, corruption=0.0, fraction=1.0)
    kept, removed = dedupe_examples(mem, fmt)
    # memories [], [DM], [DM, DM→ one distinct line]: the last two render the same block
    assert (len(kept), removed) == (2, 1)


def test_training_encoder_puts_the_memory_in_the_prompt(kb, docs):
    from genbel.training.encode import IGNORE, encode_example

    tok = build_tokenizer()
    fmt = PromptFormat(context_chars=0, include_group=False)
    enc = DocumentPromptEncoder(tok, fmt, "causal", max_source_length=128)
    mem = add_memory(_examples(kb, docs), kb, corruption=0.0, fraction=1.0)
    ex = [m for m in mem if m.query.doc_id == "2"][3]  # first "DM": two earlier mentions
    e = encode_example(ex, enc)
    n_prompt = sum(1 for x in e.labels if x == IGNORE)
    prompt = tok.decode(e.input_ids[:n_prompt], skip_special_tokens=True)
    assert prompt == ("breast and ovarian cancer is Breast Neoplasms\ndiabetes mellitus is Diabetes Mellitus\n---\n"
                      "[DM]\nDM is")
    assert e.labels[n_prompt:] == enc.encode_target(ex.target)
