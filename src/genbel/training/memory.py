"""Robust memory training (LongBEL): examples that carry a memory of earlier normalizations.

At inference a :class:`~genbel.linkers.document.DocumentLinker` shows the model the names it predicted
for the earlier mentions of the document; some of them are wrong. Training examples therefore carry
a memory built from the *gold* normalizations of the earlier mentions — each earlier mention's
training target name — corrupted at a configured rate so that the model learns to use the memory
without trusting it blindly.

:func:`add_memory` turns the examples of annotated documents (``finetune_examples``, in document
order) into :class:`MemoryExample` objects:

* the mentions of a document are its distinct entity spans in order; an example of the ``j``-th
  mention gets the entries of mentions ``0 .. j-1`` (``(linked text, target name)``; a mention with
  several examples — composite ids, abbreviation variants — contributes its first one);
* ``fraction``: each example carries memory with this probability; the others stay mention-level
  (empty memory), so one model serves both prompt kinds;
* ``corruption``: each entry of a carried memory is, independently with this probability, corrupted:
  with probability ``drop_share`` it is dropped, otherwise its name is replaced by a name of another
  concept drawn uniformly from the KB concepts that share a semantic group with the gold concept
  (all other concepts when none does), the name drawn uniformly among that concept's names.

Random choices come from one :class:`random.Random` seeded with ``seed`` and are made in a fixed
order (per example: carry?, then per entry: corrupt?, drop?, concept, name), so the result is a
function of the inputs and the seed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from genbel.errors import ConfigError, Errors
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.training.examples import TrainingExample

logger = logging.getLogger(__name__)

__all__ = ["MemoryExample", "MemoryReport", "add_memory", "corrupt_memory"]


@dataclass
class MemoryExample(TrainingExample):
    """A :class:`TrainingExample` whose query carries ``memory`` (``(mention, name)`` pairs, oldest first)."""

    memory: list[tuple[str, str]] = field(default_factory=list)

    def key(self, fmt: PromptFormat) -> tuple[str, str]:
        src, tgt = super().key(fmt)
        return fmt.memory_block(self.memory) + src, tgt


@dataclass
class MemoryReport:
    examples: int = 0
    with_memory: int = 0
    entries: int = 0
    dropped: int = 0
    replaced: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _Replacer:
    """Draws a wrong name for a concept: another concept sharing a semantic group, one of its names.

    ``draw`` equals ``rng.choice(pool)`` then ``rng.choice(names)``, where ``pool`` is the sorted ids of
    the concepts sharing a group with the gold concept, without it (all other concepts when empty).
    """

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.all_ids = sorted(kb.concept_ids)
        self.by_group: dict[str, set[str]] = {}
        for c in kb:
            for g in c.semantic_groups:
                self.by_group.setdefault(g, set()).add(c.id)
        self._pools: dict[tuple[str, ...], list[str]] = {}

    def _pool(self, groups: tuple[str, ...]) -> list[str]:
        pool = self._pools.get(groups)
        if pool is None:
            ids: set[str] = set()
            for g in groups:
                ids |= self.by_group.get(g, set())
            pool = self._pools[groups] = sorted(ids)
        return pool

    @staticmethod
    def _choice_without(pool: list[str], main: str, rng: random.Random) -> str | None:
        """``rng.choice([x for x in pool if x != main])`` without building that list (``pool`` is sorted)."""
        from bisect import bisect_left

        pos = bisect_left(pool, main)
        has = pos < len(pool) and pool[pos] == main
        n = len(pool) - (1 if has else 0)
        if n <= 0:
            return None
        j = rng.randrange(n)
        if has and j >= pos:
            j += 1
        return pool[j]

    def draw(self, concept_id: str, rng: random.Random) -> str | None:
        c = self.kb.get(concept_id)
        main = c.id if c is not None else concept_id
        pool = self._pool(tuple(sorted(c.semantic_groups))) if c is not None else []
        if not pool or pool == [main]:  # no other concept shares a group
            pool = self.all_ids
        other_id = self._choice_without(pool, main, rng)
        if other_id is None:
            return None
        return rng.choice(self.kb[other_id].names)


def corrupt_memory(
    entries: Sequence[tuple[str, str, str]],
    rate: float,
    rng: random.Random,
    replacer: _Replacer,
    drop_share: float = 0.5,
    report: MemoryReport | None = None,
) -> list[tuple[str, str]]:
    """Corrupt ``(mention, name, concept_id)`` entries (see the module docstring) into ``(mention, name)``."""
    out: list[tuple[str, str]] = []
    for mention, name, cid in entries:
        if rate > 0 and rng.random() < rate:
            if rng.random() < drop_share:
                if report:
                    report.dropped += 1
                continue
            wrong = replacer.draw(cid, rng)
            if wrong is not None:
                if report:
                    report.replaced += 1
                out.append((mention, wrong))
                continue
        out.append((mention, name))
    return out


def _check(name: str, value: float) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ConfigError(Errors.E401.format(field=name, reason=f"{value!r} is not in [0, 1]"))
    return v


def add_memory(
    examples: Sequence[TrainingExample],
    kb: KnowledgeBase,
    *,
    corruption: float = 0.1,
    fraction: float = 0.5,
    drop_share: float = 0.5,
    seed: int = 0,
    report: MemoryReport | None = None,
) -> list[MemoryExample]:
    """Memory-carrying copies of ``examples`` (which must come in document order), see the module docstring.

    Examples without a document (``query.doc_id is None``) or a position get an empty memory.
    """
    from genbel.generation.encoding import with_memory

    corruption = _check("memory_corruption", corruption)
    fraction = _check("memory_fraction", fraction)
    drop_share = _check("memory drop_share", drop_share)
    rng = random.Random(seed)
    replacer = _Replacer(kb)
    report = report if report is not None else MemoryReport()
    # distinct mentions per document, in order: (start, end, entity_id) -> first (text, target, concept)
    firsts: dict[str, dict[tuple, tuple[str, str, str]]] = {}
    for ex in examples:
        q = ex.query
        if q.doc_id is None or q.start is None:
            continue
        key = (q.start, q.end, q.entity_id)
        firsts.setdefault(q.doc_id, {}).setdefault(key, (q.text, ex.target, ex.concept_id))
    out: list[MemoryExample] = []
    for ex in examples:
        q = ex.query
        memory: list[tuple[str, str]] = []
        report.examples += 1
        carry = rng.random() < fraction
        if carry and q.doc_id is not None and q.start is not None:
            mentions = firsts[q.doc_id]
            key = (q.start, q.end, q.entity_id)
            earlier = []
            for k, entry in mentions.items():
                if k == key:
                    break
                earlier.append(entry)
            report.entries += len(earlier)
            memory = corrupt_memory(earlier, corruption, rng, replacer, drop_share, report)
            report.with_memory += 1
        out.append(
            MemoryExample(
                query=with_memory(q, memory), target=ex.target, concept_id=ex.concept_id, origin=ex.origin,
                memory=memory,
            )
        )
    logger.info("memory examples: %s", report.to_dict())
    return out
