"""The evaluation harness: Recall@k, bootstrap CIs, subsets, speed and memory for any linker.

Protocol (``docs/benchmarks.md``): gold mention spans are given; gold ids are canonicalised
(:mod:`genbel.kb.ids`); NIL mentions (no id left) are dropped and counted; a prediction is correct
when the predicted concept's ids (main + alternate) intersect the gold ids (so a composite mention
is right if any of its ids is predicted); Recall@k is over the top-k distinct concepts; no
prediction counts as wrong; the 95% CI is a percentile bootstrap over documents.
"""

from __future__ import annotations

import datetime as _dt
import logging
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from genbel.data import filter_entity_types
from genbel.data.model import Document
from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import ConfigError, Errors, InputError
from genbel.eval.metrics import bootstrap_ci, first_correct_rank, recall_at
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker

logger = logging.getLogger(__name__)


class SubsetScore(BaseModel):
    n_mentions: int
    recall_at_1: float
    recall_at_5: float


class MentionPrediction(BaseModel):
    doc_id: str | None
    entity_id: str | None
    mention: str
    linked_text: str
    type: str | None
    gold_ids: list[str]
    predicted: list[dict]
    rank: int | None


class EvaluationResult(BaseModel):
    """What ``genbel evaluate`` prints and writes. ``recall_at_1``, ``recall_at_5``, ``ci95``,
    ``n_mentions`` and ``mentions_per_second`` are a stable contract for scripts."""

    recall_at_1: float
    recall_at_5: float
    ci95: dict[str, list[float]]
    n_mentions: int
    mentions_per_second: float
    n_documents: int
    n_nil_dropped: int
    n_gold_not_in_kb: int
    k: int
    linker: str
    kb: str
    corpus: str = ""
    expand_abbreviations: bool = False
    kb_augmented_with: list[str] = Field(default_factory=list)
    link_seconds: float
    setup_seconds: float = 0.0
    peak_rss_mb: float
    subsets: dict[str, SubsetScore] = Field(default_factory=dict)
    date: str = Field(default_factory=lambda: _dt.date.today().isoformat())
    predictions: list[MentionPrediction] | None = None

    @property
    def primary_metric(self) -> str:
        return "recall_at_1"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def gold_concepts(documents: Sequence[Document], kb: KnowledgeBase) -> set[str]:
    """Main ids of the KB concepts annotated anywhere in ``documents`` (for the seen/unseen split)."""
    out: set[str] = set()
    for d in documents:
        for e in d.entities:
            for gid in e.gold_ids:
                main = kb.resolve_id(gid)
                out.add(main if main is not None else gid)
    return out


def expand_gold_ids(gold_ids: Sequence[str], kb: KnowledgeBase) -> tuple[set[str], set[str]]:
    """``(all ids, main ids)`` of a mention's gold concepts: the gold ids plus every id of the KB
    concepts they resolve to (main and alternate ids), and the main ids alone (empty when no gold id
    is in the KB). A prediction is correct when one of its concept's ids is in the first set."""
    gold_main = {kb.resolve_id(g) for g in gold_ids} - {None}
    gold_all = set(gold_ids)
    for g in gold_main:
        gold_all |= kb.ids_of(g)  # type: ignore[arg-type]
    return gold_all, gold_main  # type: ignore[return-value]


def evaluate(
    documents: Sequence[Document],
    kb: KnowledgeBase,
    linker: Linker,
    *,
    k: int = 5,
    entity_types: Sequence[str] | None = None,
    train_documents: Sequence[Document] | None = None,
    expand_abbreviations: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    keep_predictions: bool = False,
    corpus_name: str = "",
    setup_seconds: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Link every gold mention of ``documents`` with ``linker`` and score it against the gold ids.

    ``entity_types`` keeps the mentions of these types (the rule of
    :func:`genbel.data.filter_entity_types`; E012 when none of them occurs in ``documents``).
    E457 when no mention is left to score (every mention NIL, or no mention at all): a recall over
    nothing would be reported as 0.0.

    ``k`` is how many candidates the linker is asked for per mention; at least 5 are always asked for,
    since Recall@5 is reported. ``expand_abbreviations`` links a short form defined in its document by
    its long form (:mod:`genbel.data.abbreviations`). ``n_bootstrap`` resamples of the documents give
    the 95% confidence intervals (at least 1).
    """
    if not isinstance(kb, KnowledgeBase) or not isinstance(linker, Linker):
        raise ConfigError(Errors.E029.format(
            what="evaluate(documents, kb, linker)",
            expected="a sequence of Documents, a KnowledgeBase and a Linker",
            got=f"{type(documents).__name__}, {type(kb).__name__}, {type(linker).__name__}",
        ))
    if isinstance(documents, (str, bytes)) or not all(isinstance(d, Document) for d in documents):
        raise ConfigError(Errors.E029.format(
            what="evaluate: documents", expected="a sequence of Documents (genbel.load_corpus(path))",
            got=type(documents).__name__,
        ))
    if int(k) < 1:
        raise ConfigError(Errors.E023.format(value=k, field="k", constraint=">= 1"))
    if int(n_bootstrap) < 1:
        raise ConfigError(Errors.E023.format(value=n_bootstrap, field="n_bootstrap", constraint=">= 1"))
    k = max(int(k), 5)
    if entity_types:
        documents = filter_entity_types(documents, entity_types)
    # drop NIL mentions (counted) before linking so that linkers never see them
    n_nil = 0
    kept_docs: list[Document] = []
    for d in documents:
        ents = []
        for e in d.entities:
            if e.is_nil:
                n_nil += 1
                continue
            ents.append(e)
        kept_docs.append(Document(id=d.id, document_id=d.document_id, passages=d.passages, entities=ents))
    if not any(d.entities for d in kept_docs):
        # a recall of 0.0 [0.0, 0.0] would look like a result
        reason = f"no mention with a gold id in {len(kept_docs)} documents ({n_nil} NIL mentions dropped"
        reason += f", entity types {', '.join(entity_types)})" if entity_types else ")"
        raise InputError(Errors.E457.format(corpus=corpus_name or "the corpus", reason=reason))

    t0 = time.perf_counter()
    pairs: list[tuple[MentionQuery, list[Candidate]]] = linker.link_documents(
        kept_docs, k=k, expand_abbreviations=expand_abbreviations
    )
    link_seconds = time.perf_counter() - t0

    seen = gold_concepts(train_documents, kb) if train_documents is not None else None
    doc_number = {d.document_id: i for i, d in enumerate(kept_docs)}
    ranks: list[int | None] = []
    doc_idx: list[int] = []
    subsets: dict[str, list[int | None]] = defaultdict(list)
    preds: list[MentionPrediction] = []
    n_missing = 0
    for q, cands in pairs:
        gold = set(q.gold_ids)
        gold_all, gold_main = expand_gold_ids(q.gold_ids, kb)
        if not gold_main:
            n_missing += 1
        predicted = [kb.ids_of(c.concept_id) or {c.concept_id} for c in cands[:k]]
        r = first_correct_rank(predicted, gold_all)
        ranks.append(r)
        doc_idx.append(doc_number.get(q.doc_id or "", 0))
        subsets["words:single" if len(q.surface.split()) == 1 else "words:multi"].append(r)
        if q.type:
            subsets[f"type:{q.type}"].append(r)
        if seen is not None:
            subsets["concept:seen" if gold_main & seen else "concept:unseen"].append(r)
        if q.text != q.surface:
            subsets["abbreviation:expanded"].append(r)
        if keep_predictions:
            preds.append(
                MentionPrediction(
                    doc_id=q.doc_id, entity_id=q.entity_id, mention=q.surface, linked_text=q.text,
                    type=q.type,
                    gold_ids=sorted(gold), predicted=[c.to_dict() for c in cands[:k]], rank=r,
                )
            )
    if n_missing:
        logger.warning("%d mentions have no gold id in the KB %s (they count as wrong)", n_missing, kb.name)

    hits1 = np.array([1.0 if r is not None and r < 1 else 0.0 for r in ranks])
    hits5 = np.array([1.0 if r is not None and r < 5 else 0.0 for r in ranks])
    didx = np.array(doc_idx, dtype=np.int64)
    n = len(ranks)
    return EvaluationResult(
        recall_at_1=round(100 * recall_at(ranks, 1), 2),
        recall_at_5=round(100 * recall_at(ranks, 5), 2),
        ci95={
            "recall_at_1": list(bootstrap_ci(hits1, didx, n_bootstrap, seed)),
            "recall_at_5": list(bootstrap_ci(hits5, didx, n_bootstrap, seed)),
        },
        n_mentions=n,
        mentions_per_second=round(n / link_seconds, 2) if link_seconds > 0 else float("inf"),
        n_documents=len(kept_docs),
        n_nil_dropped=n_nil,
        n_gold_not_in_kb=n_missing,
        k=k,
        linker=getattr(linker, "spec", None) or linker.name,
        kb=kb.name,
        corpus=corpus_name,
        expand_abbreviations=expand_abbreviations,
        link_seconds=round(link_seconds, 3),
        setup_seconds=round(setup_seconds, 3),
        peak_rss_mb=round(peak_rss_mb(), 1),
        subsets={
            name: SubsetScore(
                n_mentions=len(rs),
                recall_at_1=round(100 * recall_at(rs, 1), 2),
                recall_at_5=round(100 * recall_at(rs, 5), 2),
            )
            for name, rs in sorted(subsets.items())
        },
        predictions=preds if keep_predictions else None,
    )
