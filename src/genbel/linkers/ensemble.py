"""Ensembles of input configurations (LongBEL "+ Ensemble"): fuse the ranked beams of several linkers.

Typical members are :class:`~genbel.linkers.document.DocumentLinker` variants over the *same* model
that differ in their input — with and without memory, different context windows — built with
:meth:`DocumentLinker.variant`; any :class:`~genbel.linkers.base.Linker` works.

Fusion (per mention): member ``m`` returns concepts ``c`` with scores ``s_m(c) >= 0`` (for generative
linkers ``beam_score = exp(s_i - s_max)``, the per-token probability ratio to the best beam). They are
normalised to a distribution over that member's candidates, ``p_m(c) = s_m(c) / sum_c' s_m(c')``
(uniform when all scores are 0), and the ensemble score is the weighted sum

    S(c) = sum_m w_m * p_m(c)        (w_m = 1 by default; a concept a member did not return adds 0)

Candidates are ranked by ``S`` (ties: the order in which members listed them, first member first),
at most ``k``. Normalisation is monotone, so an ensemble of one configuration ranks exactly as that
configuration does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from genbel.data.model import Document
from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import ConfigError, Errors
from genbel.linkers.base import Linker

logger = logging.getLogger(__name__)

__all__ = ["EnsembleLinker", "default_ensemble", "fuse"]


def fuse(
    member_candidates: Sequence[Sequence[Candidate]], weights: Sequence[float], k: int
) -> list[Candidate]:
    """Fuse one mention's candidate lists (one per member) as described in the module docstring."""
    total: dict[str, float] = {}
    first: dict[str, Candidate] = {}  # per concept: its candidate in the first member listing it
    order: dict[str, int] = {}
    for cands, w in zip(member_candidates, weights):
        if not cands:
            continue
        scores = [max(0.0, float(c.score)) for c in cands]
        z = sum(scores)
        probs = [s / z for s in scores] if z > 0 else [1.0 / len(cands)] * len(cands)
        seen: set[str] = set()
        for c, p in zip(cands, probs):
            if c.concept_id in seen:  # a member listing a concept twice counts it once (its best)
                continue
            seen.add(c.concept_id)
            total[c.concept_id] = total.get(c.concept_id, 0.0) + w * p
            first.setdefault(c.concept_id, c)
            order.setdefault(c.concept_id, len(order))
    ranked = sorted(total, key=lambda cid: (-total[cid], order[cid]))[:k]
    return [Candidate(cid, first[cid].name, total[cid], first[cid].matched) for cid in ranked]


class EnsembleLinker(Linker):
    """Several linkers whose per-mention candidates are fused by :func:`fuse`.

    ``member_k`` candidates are asked from each member (default ``max(k, 5)``); every member must link
    the same mentions in the same order (the documents' entities in document order).
    """

    name = "ensemble"

    def __init__(
        self,
        members: Sequence[Linker],
        weights: Sequence[float] | None = None,
        *,
        member_k: int | None = None,
    ) -> None:
        if not members:
            raise ConfigError(Errors.E400.format(reason="an ensemble needs at least one member linker"))
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise ConfigError(
                Errors.E400.format(reason=f"{len(weights)} weights given for {len(members)} member linkers")
            )
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(
                Errors.E400.format(reason=f"weights must be >= 0 with a positive sum, got {weights}")
            )
        self.members = list(members)
        self.weights = weights
        self.member_k = member_k

    @property
    def kb(self) -> Any:
        return getattr(self.members[0], "kb", None)

    def _k(self, k: int) -> int:
        return self.member_k or max(k, 5)

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        per_member = [m.link(queries, k=self._k(k)) for m in self.members]
        return [fuse([pm[i] for pm in per_member], self.weights, k) for i in range(len(queries))]

    def link_documents(
        self, documents: Sequence[Document], k: int = 5, expand_abbreviations: bool = False,
        entity_types: Sequence[str] | None = None,
    ) -> list[tuple[MentionQuery, list[Candidate]]]:
        results = [
            m.link_documents(documents, k=self._k(k), expand_abbreviations=expand_abbreviations,
                             entity_types=entity_types)
            for m in self.members
        ]
        first = results[0]
        for j, r in enumerate(results[1:], 1):
            if len(r) != len(first) or any(
                (a.doc_id, a.entity_id, a.start, a.end) != (b.doc_id, b.entity_id, b.start, b.end)
                for (a, _), (b, _) in zip(first, r)
            ):
                raise ConfigError(
                    Errors.E400.format(
                        reason=f"member {j} linked other mentions than member 0 (not the same order)"
                    )
                )
        return [
            (q, fuse([r[i][1] for r in results], self.weights, k)) for i, (q, _) in enumerate(first)
        ]


def default_ensemble(linker: Any, weights: Sequence[float] | None = None) -> EnsembleLinker:
    """The two-configuration ensemble of a :class:`~genbel.linkers.document.DocumentLinker`: the linker
    as configured and its variant with the other memory setting (with / without memory)."""
    other = linker.variant(use_memory=not linker.use_memory)
    ens = EnsembleLinker([linker, other], weights)
    return ens
