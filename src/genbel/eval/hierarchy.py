"""Hierarchy-aware scoring (``genbel evaluate --hierarchy``): how far off are the wrong predictions?

SynCABEL judges each prediction with an LLM as exact / broader / narrower / unrelated; genbel computes
it from the KB's own hierarchy (:class:`genbel.kb.hierarchy.Hierarchy`: CTD/MEDIC parent ids, OBO
``is_a``, UMLS ``MRREL`` ``PAR``/``CHD``). For each scored mention the top-1 prediction is:

* ``exact`` — one of its concept's ids is a gold id (the Recall@1 rule, so this share is R@1);
* ``broader`` / ``narrower`` — an ancestor / a descendant of a gold concept;
* ``sibling`` — shares a direct parent with a gold concept;
* ``unrelated`` — none of these (also when the gold concept is not in the KB's hierarchy);
* ``no_prediction`` — the linker returned nothing.

With several gold concepts (composite mentions) the closest relation counts. The tree distance is
the shortest path through a common ancestor (0 for exact), averaged over the mentions whose top-1
prediction and gold concept have one; ``mean_distance_errors`` averages the wrong ones alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from genbel.errors import ConfigError, Errors
from genbel.eval.harness import expand_gold_ids
from genbel.kb.base import KnowledgeBase
from genbel.kb.hierarchy import RELATIONS, Hierarchy

logger = logging.getLogger(__name__)

#: the classes of :class:`HierarchyScores`, in report order
CLASSES: tuple[str, ...] = (*RELATIONS, "no_prediction")


class HierarchyScores(BaseModel):
    """Shares (percent of scored mentions) of each relation of the top-1 prediction to the gold concept,
    and the mean tree distance. ``counts`` are the raw numbers."""

    n_mentions: int
    shares: dict[str, float]
    counts: dict[str, int]
    mean_distance: float | None
    mean_distance_errors: float | None
    n_with_distance: int
    n_errors_with_distance: int
    n_gold_outside_hierarchy: int
    kb: str
    concepts_with_parents: int


def mention_relation(
    hierarchy: Hierarchy, predicted: str | None, gold_ids: Sequence[str]
) -> tuple[str, int | None]:
    """``(relation, tree distance)`` of one top-1 prediction to the gold ids of its mention."""
    kb = hierarchy.kb
    if predicted is None:
        return "no_prediction", None
    gold_all, gold_main = expand_gold_ids(gold_ids, kb)
    pred_ids = kb.ids_of(predicted) or {predicted}
    if pred_ids & gold_all:
        return "exact", 0
    best: tuple[int, str] | None = None
    dist: int | None = None
    for g in sorted(gold_main):
        rel = hierarchy.relation(predicted, g)
        rank = RELATIONS.index(rel)
        if best is None or rank < best[0]:
            best = (rank, rel)
        d = hierarchy.distance(predicted, g)
        if d is not None and (dist is None or d < dist):
            dist = d
    return (best[1] if best else "unrelated"), dist


def score_hierarchy(
    pairs: Iterable[tuple[str | None, Sequence[str]]], kb: KnowledgeBase, hierarchy: Hierarchy | None = None
) -> HierarchyScores:
    """Score ``(top-1 predicted concept id or None, gold ids)`` pairs against ``kb``'s hierarchy.

    Raises ``E560`` when ``kb`` has no parent links (its format has no hierarchy).
    """
    h = hierarchy if hierarchy is not None else Hierarchy(kb)
    if not h:
        raise ConfigError(Errors.E560.format(kb=kb.name))
    counts = dict.fromkeys(CLASSES, 0)
    dists: list[int] = []
    err_dists: list[int] = []
    outside = 0
    n = 0
    for predicted, gold_ids in pairs:
        n += 1
        rel, d = mention_relation(h, predicted, gold_ids)
        counts[rel] += 1
        if not any(h.in_hierarchy(g) for g in expand_gold_ids(gold_ids, kb)[1]):
            outside += 1
        if d is not None:
            dists.append(d)
            if rel != "exact":
                err_dists.append(d)
    if outside:
        logger.info("%d of %d mentions have a gold concept outside the hierarchy of %s", outside, n, kb.name)

    def mean(xs: list[int]) -> float | None:
        return round(sum(xs) / len(xs), 3) if xs else None

    return HierarchyScores(
        n_mentions=n,
        shares={c: round(100 * v / n, 2) if n else 0.0 for c, v in counts.items()},
        counts=counts,
        mean_distance=mean(dists),
        mean_distance_errors=mean(err_dists),
        n_with_distance=len(dists),
        n_errors_with_distance=len(err_dists),
        n_gold_outside_hierarchy=outside,
        kb=kb.name,
        concepts_with_parents=len(h),
    )


def check_hierarchy(kb: KnowledgeBase) -> None:
    """Raise ``E560`` when ``kb`` has no parent links (before linking anything)."""
    if not kb.has_hierarchy:
        raise ConfigError(Errors.E560.format(kb=kb.name))


def top1_pairs(predictions: Iterable[Any]) -> list[tuple[str | None, list[str]]]:
    """``(top-1 concept id, gold ids)`` of the per-mention predictions of an
    :class:`~genbel.eval.harness.EvaluationResult` (``keep_predictions=True``)."""
    out: list[tuple[str | None, list[str]]] = []
    for p in predictions:
        top = p.predicted[0] if p.predicted else None
        cid = (top.get("code") or top.get("concept_id")) if top else None
        out.append((cid, list(p.gold_ids)))
    return out


def hierarchy_of_result(result: Any, kb: KnowledgeBase) -> HierarchyScores:
    """:func:`score_hierarchy` of an evaluation result computed with ``keep_predictions=True``."""
    if result.predictions is None:
        raise ConfigError(Errors.E561)
    return score_hierarchy(top1_pairs(result.predictions), kb)


__all__ = ["CLASSES", "HierarchyScores", "check_hierarchy", "hierarchy_of_result", "mention_relation", "score_hierarchy", "top1_pairs"]
