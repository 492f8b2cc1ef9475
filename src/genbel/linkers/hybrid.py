"""Retrieve-then-generate: a retrieval linker proposes concepts, a generative linker decides.

Two modes (``mode=``):

* ``constrain`` — the retriever's top ``n_candidates`` concepts restrict the generative linker's
  prefix trie for that mention (:meth:`GenerativeLinker.link` with ``candidates=``); beam search then
  writes only names of those concepts. Retrieved concepts the beams did not reach follow, in retrieval
  order, so a mention always gets up to ``k`` candidates.
* ``rerank`` — the generative model scores names of each retrieved concept by teacher forcing, all
  (mention, name) pairs in one batched pass (:meth:`GenerativeLinker.score_candidates`); a concept
  scores its best name's mean token log-probability, plus ``retriever_weight`` × the retrieval score.
  ``names_per_concept`` names per concept are scored: the retrieved (best-matching) name first, then
  the preferred name and synonyms in KB order.

Both are exact about the candidate set: nothing outside the retrieved concepts is returned, except
that ``constrain`` falls back to the retrieval order when generation yields nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import ConfigError, Errors
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.linkers.registry import create_linker, register_linker

logger = logging.getLogger(__name__)

MODES = ("constrain", "rerank")


class HybridLinker(Linker):
    """A retriever (any :class:`Linker`, usually ``sparse``/``dense``/``biosyn``) + a generative linker."""

    name = "hybrid"

    def __init__(
        self,
        kb: KnowledgeBase,
        generator: Any,
        retriever: Linker,
        *,
        mode: str = "rerank",
        n_candidates: int = 10,
        names_per_concept: int = 1,
        retriever_weight: float = 0.0,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(
                Errors.E022.format(value=mode, field="mode", known=", ".join(MODES))
            )
        if int(n_candidates) < 1 or int(names_per_concept) < 1:
            raise ConfigError(
                Errors.E023.format(value=(n_candidates, names_per_concept), field="n_candidates/names_per_concept", constraint=">= 1")
            )
        self.kb = kb
        self.generator = generator
        self.retriever = retriever
        self.mode = mode
        self.n_candidates = int(n_candidates)
        self.names_per_concept = int(names_per_concept)
        self.retriever_weight = float(retriever_weight)

    def retrieve(self, queries: Sequence[MentionQuery]) -> list[list[Candidate]]:
        return self.retriever.link(queries, k=self.n_candidates)

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        retrieved = self.retrieve(queries)
        if self.mode == "constrain":
            return self._constrain(queries, retrieved, k)
        return self._rerank(queries, retrieved, k)

    # ------------------------------------------------------------------ constrain
    def _constrain(
        self, queries: Sequence[MentionQuery], retrieved: list[list[Candidate]], k: int
    ) -> list[list[Candidate]]:
        out: list[list[Candidate]] = [[] for _ in queries]
        todo = [i for i, r in enumerate(retrieved) if r]
        if todo:
            generated = self.generator.link(
                [queries[i] for i in todo],
                k=k,
                candidates=[[c.concept_id for c in retrieved[i]] for i in todo],
            )
            for i, gen in zip(todo, generated):
                row = list(gen[:k])
                have = {c.concept_id for c in row}
                for c in retrieved[i]:  # concepts the beams did not reach, in retrieval order, below them
                    if len(row) >= k:
                        break
                    if c.concept_id not in have:
                        row.append(Candidate(c.concept_id, c.name, 0.0, c.matched))
                        have.add(c.concept_id)
                out[i] = row
        return out

    # ------------------------------------------------------------------ rerank
    def _names(self, cand: Candidate) -> list[str]:
        names = [cand.matched]  # the name the retriever matched (a synonym), not the preferred name
        concept = self.kb.get(cand.concept_id)
        if concept is not None:
            for n in concept.names:
                if len(names) >= self.names_per_concept:
                    break
                if n not in names:
                    names.append(n)
        return names[: self.names_per_concept]

    def _rerank(
        self, queries: Sequence[MentionQuery], retrieved: list[list[Candidate]], k: int
    ) -> list[list[Candidate]]:
        names: list[list[str]] = []
        owners: list[list[int]] = []  # per query: the retrieved-candidate index of each name
        for cands in retrieved:
            qn: list[str] = []
            qo: list[int] = []
            for j, c in enumerate(cands):
                for n in self._names(c):
                    qn.append(n)
                    qo.append(j)
            names.append(qn)
            owners.append(qo)
        scores = self.generator.score_candidates(list(queries), names, normalize=True) if any(names) else [
            [] for _ in queries]
        out: list[list[Candidate]] = []
        for cands, qn, qo, qs in zip(retrieved, names, owners, scores):
            best: dict[int, tuple[float, str]] = {}
            for n, j, s in zip(qn, qo, qs):
                if j not in best or s > best[j][0]:
                    best[j] = (s, n)
            ranked = sorted(
                ((s + self.retriever_weight * cands[j].score, j, n) for j, (s, n) in best.items()),
                key=lambda t: (-t[0], t[1]),
            )
            out.append([
                Candidate(cands[j].concept_id, cands[j].name, float(s), matched=n) for s, j, n in ranked[:k]
            ])
        return out


def _as_float(value: Any) -> float:
    v = float(value)
    if math.isnan(v):
        raise ConfigError(Errors.E023.format(value=value, field="retriever_weight", constraint="a number (not NaN)"))
    return v


@register_linker("hybrid")
def _factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> HybridLinker:
    """``hybrid:GENERATIVE_PATH`` with options ``retriever`` (a registry spec, default ``sparse``),
    ``mode`` (``rerank``/``constrain``), ``n_candidates``, ``names_per_concept``, ``retriever_weight``;
    other options go to the generative linker."""
    if not path:
        raise ConfigError(
            Errors.E311
        )
    retriever_spec = str(options.pop("retriever", "sparse"))
    hybrid_opts = {
        key: options.pop(key) for key in ("mode", "n_candidates", "names_per_concept") if key in options
    }
    if "retriever_weight" in options:
        hybrid_opts["retriever_weight"] = _as_float(options.pop("retriever_weight"))
    generator = create_linker(f"generative:{path}", kb, **options)
    retriever = create_linker(retriever_spec, kb)
    return HybridLinker(kb, generator, retriever, **hybrid_opts)
