"""Training lists of the cross-encoder reranker: each training mention with the candidates a retriever
proposes for it (hard negatives), mined so that the lists look like those seen at test time.

**Why fold-wise mining.** The recommended protocol links against a KB augmented with the training
mentions (BioSyn/SapBERT). A retriever over that KB finds each training mention *itself* (the mention
string is a synonym of its gold concept), so its candidate lists would be trivially right and its
negatives easy: the reranker would learn "the exact string wins". At test time a mention is not in the
KB; similar mentions of other documents are. :func:`mine_lists` therefore splits the training documents
into ``folds`` and retrieves the candidates of fold *f*'s mentions from the KB augmented with the
mentions of the *other* folds only (leave-one-fold-out), which is what a test mention meets. With
``augment=False`` the plain KB is used for every fold (the KB-only protocol).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from genbel.data.model import Document
from genbel.data.queries import MentionQuery, queries_from_documents
from genbel.kb.base import KnowledgeBase
from genbel.kb.loaders import augment_kb
from genbel.linkers.rerank import mention_side

logger = logging.getLogger(__name__)


@dataclass
class RerankList:
    """One training mention: its text alone and with context, gold concept ids (main ids), and the
    retrieved candidates ``(concept id, preferred name, retrieval score)``, best first, with
    ``matched[i]`` the name or synonym the retriever matched candidate ``i`` by (the preferred name
    when unknown)."""

    plain: str
    context: str
    gold: frozenset[str]
    candidates: list[tuple[str, str, float]]
    matched: list[str] | None = None

    def matched_name(self, i: int) -> str:
        """The name the retriever matched candidate ``i`` by."""
        if self.matched is not None and i < len(self.matched) and self.matched[i]:
            return self.matched[i]
        return self.candidates[i][1]

    @property
    def gold_retrieved(self) -> bool:
        return any(c in self.gold for c, _, _ in self.candidates)

    def margin(self) -> float:
        """Best gold retrieval score − best wrong one (−inf when the gold concept was not retrieved):
        how easy the list is for the retriever alone."""
        gold = [s for c, _, s in self.candidates if c in self.gold]
        wrong = [s for c, _, s in self.candidates if c not in self.gold]
        if not gold:
            return float("-inf")
        return max(gold) - (max(wrong) if wrong else 0.0)

    def to_dict(self) -> dict:
        out = {"plain": self.plain, "context": self.context, "gold": sorted(self.gold),
               "candidates": [list(c) for c in self.candidates]}
        if self.matched is not None:
            out["matched"] = list(self.matched)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RerankList:
        matched = d.get("matched")
        return cls(d["plain"], d["context"], frozenset(d["gold"]),
                   [(str(c), str(n), float(s)) for c, n, s in d["candidates"]],
                   [str(m) for m in matched] if matched is not None else None)


def hardest(lists: Sequence[RerankList], n: int | None) -> list[RerankList]:
    """The ``n`` lists the retriever finds hardest (smallest gold margin first), in their original
    order; all when ``n`` is ``None``. Lists the retriever gets right by far teach a reranker that
    only sees the retriever's unsure cases (the gate) little."""
    if n is None or n >= len(lists):
        return list(lists)
    keep = set(sorted(range(len(lists)), key=lambda i: (lists[i].margin(), i))[: max(0, int(n))])
    return [x for i, x in enumerate(lists) if i in keep]


def fold_of(doc_id: str, folds: int) -> int:
    """A document's fold: a stable hash of its id (independent of corpus order and Python's hash seed)."""
    return int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) % max(1, folds)


def _keep(queries: Sequence[MentionQuery], kb: KnowledgeBase, unique: bool) -> list[tuple[MentionQuery, frozenset[str]]]:
    out: list[tuple[MentionQuery, frozenset[str]]] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    for q in queries:
        gold = frozenset(m for m in (kb.resolve_id(g) for g in q.gold_ids) if m is not None)
        if not gold or not q.text.strip():
            continue
        key = (" ".join(q.text.lower().split()), gold)
        if unique and key in seen:
            continue
        seen.add(key)
        out.append((q, gold))
    return out


def mine_lists(
    documents: Sequence[Document],
    kb: KnowledgeBase,
    retriever: str,
    *,
    n_candidates: int = 16,
    folds: int = 5,
    augment: bool = True,
    context_window: int = 8,
    expand_abbreviations: bool = True,
    unique: bool = True,
    progress: bool = True,
) -> list[RerankList]:
    """Candidate lists of the training mentions (gold ids in ``kb``), retrieved by the registry spec
    ``retriever`` fold-wise (see the module docstring). ``unique`` keeps one occurrence (the first,
    with its context) of each distinct (mention text, gold concepts)."""
    from genbel.linkers.registry import create_linker

    queries = _keep(queries_from_documents(documents, expand_abbreviations), kb, unique)
    n_folds = max(1, int(folds)) if augment else 1
    out: list[RerankList] = []
    for f in tqdm(range(n_folds), desc="mining candidates", unit="fold", disable=not progress):
        fold_queries = [(q, g) for q, g in queries if n_folds == 1 or fold_of(q.doc_id or "", n_folds) == f]
        if not fold_queries:
            continue
        fold_kb = kb
        if augment:
            fold_kb = kb.filter()  # a copy: the other folds' mentions become synonyms
            others = [d for d in documents if n_folds > 1 and fold_of(d.document_id, n_folds) != f]
            n = augment_kb(fold_kb, others)
            logger.info("fold %d/%d: %d mentions, KB + %d names of the other folds", f + 1, n_folds,
                        len(fold_queries), n)
        linker = create_linker(retriever, fold_kb)
        cands = linker.link([q for q, _ in fold_queries], k=n_candidates)
        for (q, gold), cs in zip(fold_queries, cands):
            out.append(RerankList(plain=mention_side(q, 0), context=mention_side(q, context_window), gold=gold,
                                  candidates=[(c.concept_id, c.name, float(c.score)) for c in cs],
                                  matched=[c.matched for c in cs]))
    found = sum(r.gold_retrieved for r in out)
    logger.info("mined %d lists; the gold concept is among the %d candidates of %d (%.1f%%), first for %d",
                len(out), n_candidates, found, 100 * found / max(1, len(out)),
                sum(bool(r.candidates) and r.candidates[0][0] in r.gold for r in out))
    return out


__all__ = ["RerankList", "fold_of", "hardest", "mine_lists"]
