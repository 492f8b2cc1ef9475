"""KB-guided pre-training samples (GenBioEL, Yuan et al. 2022, §2.2).

For a concept with names ``s1, s2, …`` and definitions, a clause template is filled with one name
``s1`` (the marked *mention*) and a context ``c`` — a definition when the concept has one, else
another of its names — and the model must generate another name ``s2`` of the same concept. The
samples have exactly the shape of linking examples (a :class:`MentionQuery` with the mention's
offsets in the filled template, type = the concept's semantic group), so they are formatted by the
same :class:`~genbel.generation.prompts.PromptFormat` as the fine-tuning data.

Concepts with two names use ``s1``/``s2`` = the two names and ``c = s2``; a concept with one name
uses it for all three (GenBioEL, appendix E.2). Only the concept's own names and definitions are
ever used.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from genbel.data.queries import MentionQuery
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.training.examples import TrainingExample

#: templates whose context is a definition (``{m}`` = the mention, ``{c}`` = the definition)
DEFINITION_TEMPLATES: tuple[str, ...] = (
    "{m} is defined as {c}",
    "{c} describes {m}",
    "{m} refers to {c}",
    "{m}: {c}",
    "The term {m} means {c}",
    "{c} This is called {m}.",
)

#: templates whose context is another name of the concept
SYNONYM_TEMPLATES: tuple[str, ...] = (
    "{m}, also known as {c}",
    "{m} is a synonym of {c}",
    "{c}, also called {m}",
    "{m} (or {c})",
    "{m} is another name for {c}",
    "{c} is sometimes referred to as {m}",
)


def fill(template: str, mention: str, context: str) -> tuple[str, int, int]:
    """Fill a template; returns the text and the mention's character offsets in it."""
    before, after = template.split("{m}", 1)
    before = before.replace("{c}", context)
    after = after.replace("{c}", context)
    text = before + mention + after
    return text, len(before), len(before) + len(mention)


def concept_samples(
    concept: Concept, rng: random.Random, n: int, group: str | None = None
) -> list[TrainingExample]:
    """``n`` pre-training examples for one concept (fewer when it has too few distinct pairs)."""
    names = concept.names
    if not names:
        return []
    typ = group or (concept.semantic_groups[0] if concept.semantic_groups else None)
    defs = [d for d in concept.definitions if d.strip()]
    out: list[TrainingExample] = []
    seen: set[tuple[str, str, str]] = set()
    for _ in range(n * 3):  # a few retries when a draw repeats an earlier one
        if len(out) >= n:
            break
        if len(names) == 1:
            s1 = s2 = names[0]
            ctx = names[0]
            use_def = bool(defs)
        else:
            s1, s2 = rng.sample(names, 2)
            use_def = bool(defs) and rng.random() < 0.5
            others = [x for x in names if x not in (s1, s2)]
            ctx = rng.choice(others) if others else s2
        if use_def:
            ctx = rng.choice(defs)
            template = rng.choice(DEFINITION_TEMPLATES)
        else:
            template = rng.choice(SYNONYM_TEMPLATES)
        text, start, end = fill(template, s1, ctx)
        key = (text, s1, s2)
        if key in seen:
            continue
        seen.add(key)
        q = MentionQuery(
            text=s1,
            surface=s1,
            type=typ,
            context=text,
            start=start,
            end=end,
            doc_id=f"kb:{concept.id}",
            gold_ids=[concept.id],
        )
        out.append(TrainingExample(query=q, target=s2, concept_id=concept.id, origin="kb"))
    return out


def pretraining_examples(
    kb: KnowledgeBase,
    per_concept: int = 1,
    seed: int = 0,
    max_concepts: int | None = None,
    concepts: Sequence[str] | None = None,
    group: str | None = None,
) -> list[TrainingExample]:
    """Pre-training examples for the KB's concepts (or the ids in ``concepts``), deterministic for a seed.

    ``max_concepts`` takes a seeded random subset of the concepts. ``group`` overrides the type
    written in the prompt (default: the concept's first semantic group).
    """
    rng = random.Random(seed)
    pool = [kb[c] for c in concepts] if concepts is not None else list(kb)
    if max_concepts is not None and max_concepts < len(pool):
        pool = rng.sample(pool, max_concepts)
    out: list[TrainingExample] = []
    for c in pool:
        out.extend(concept_samples(c, rng, per_concept, group))
    return out
