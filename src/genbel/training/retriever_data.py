"""Training data of dense retrievers: mentions with gold concepts, and synonym pairs of a KB.

Positions refer to a :class:`~genbel.linkers.nametable.NameTable` (concept ``j``'s names are rows
``concept_starts[j]`` … ``concept_end(j)``), so that losses compare concept positions, not ids.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from genbel.data.model import Document
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.nametable import NameTable

logger = logging.getLogger(__name__)


@dataclass
class TrainingMention:
    """A normalised mention string and the positions of its gold concepts in a :class:`NameTable`."""

    key: str
    concepts: frozenset[int]


@dataclass
class MentionReport:
    kept: int = 0
    duplicates: int = 0
    nil: int = 0
    not_in_kb: int = 0
    empty: int = 0
    examples_not_in_kb: list[str] = field(default_factory=list)


def training_mentions(
    documents: Iterable[Document], kb: KnowledgeBase, table: NameTable, unique: bool = True
) -> tuple[list[TrainingMention], MentionReport]:
    """Mentions with their gold concepts (resolved through alternate ids); a composite mention
    keeps all its concepts as positives. NIL mentions and gold ids absent from the KB are counted
    and dropped."""
    pos = {cid: j for j, cid in enumerate(table.concept_ids)}
    out: list[TrainingMention] = []
    seen: set[tuple[str, frozenset[int]]] = set()
    rep = MentionReport()
    for doc in documents:
        for e in doc.entities:
            if not e.gold_ids:
                rep.nil += 1
                continue
            mains = {kb.resolve_id(g) for g in e.gold_ids}
            concepts = frozenset(pos[m] for m in mains if m is not None and m in pos)
            if not concepts:
                rep.not_in_kb += 1
                if len(rep.examples_not_in_kb) < 5:
                    rep.examples_not_in_kb.append(f"{doc.document_id}:{e.mention}:{'|'.join(e.gold_ids)}")
                continue
            key = normalize_name(e.mention)
            if not key:
                rep.empty += 1
                continue
            if unique:
                if (key, concepts) in seen:
                    rep.duplicates += 1
                    continue
                seen.add((key, concepts))
            out.append(TrainingMention(key, concepts))
            rep.kept += 1
    if rep.not_in_kb:
        logger.warning("%d training mentions have gold ids not in the KB (e.g. %s); skipped",
                       rep.not_in_kb, ", ".join(rep.examples_not_in_kb))
    return out, rep


def synonym_pairs(
    table: NameTable, rng: random.Random, pairs_per_name: int = 1, concepts: set[int] | None = None
) -> list[tuple[int, int]]:
    """``(row, row)`` pairs of different names of one concept: each name with up to
    ``pairs_per_name`` other names of its concept (sampled with ``rng``)."""
    pairs: list[tuple[int, int]] = []
    for j in range(table.n_concepts):
        if concepts is not None and j not in concepts:
            continue
        lo, hi = int(table.concept_starts[j]), table.concept_end(j)
        rows = list(range(lo, hi))
        if len(rows) < 2:
            continue
        for r in rows:
            others = [o for o in rows if o != r]
            for o in rng.sample(others, min(pairs_per_name, len(others))):
                pairs.append((r, o))
    return pairs


__all__ = ["MentionReport", "TrainingMention", "synonym_pairs", "training_mentions"]
