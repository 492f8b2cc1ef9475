"""Span-level scoring of mention detection and of end-to-end linking.

* **NER** (:func:`ner_scores`): precision, recall and F1 of predicted spans against gold mentions,
  with *exact* matching (same start, end and type) and *overlap* matching (a predicted span counts
  as correct when it overlaps a gold mention of its type; a gold mention counts as found when a
  predicted span of its type overlaps it), micro-averaged over all mentions and per entity type.
* **End to end** (:func:`end_to_end_scores`): *strict* F1 — a predicted span is correct when its
  offsets equal those of a gold mention of its type **and** its top concept's ids (main + alternate)
  intersect the gold ids. Gold mentions without a concept (NIL) are left out, together with the
  predictions on exactly their offsets (both are counted and reported).

Entity types are compared as semantic groups (``SpecificDisease`` and ``Disease`` are both
``Disorders``: :func:`genbel.ner.dictionary.entity_group`); ``typed=False`` ignores types.
Confidence intervals: 95% percentile bootstrap over *documents* (as :mod:`genbel.eval.metrics`
does for recall): each resample draws the documents with replacement and recomputes micro P/R/F1.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from genbel.ner.base import Span
from genbel.ner.dictionary import entity_group

if TYPE_CHECKING:
    from genbel.data.model import Document
    from genbel.kb.base import KnowledgeBase
    from genbel.linkers.base import Linker
    from genbel.ner.base import Detector

logger = logging.getLogger(__name__)

__all__ = ["MATCHING", "PRF", "SpanResult", "end_to_end_scores", "evaluate_end_to_end", "gold_spans",
           "link_spans", "ner_scores", "prf_bootstrap"]

MATCHING = ("exact", "overlap")
Triple = tuple[int, int, str]


@dataclass
class PRF:
    """Micro precision/recall/F1 in percent, with document-bootstrap 95% CIs."""

    precision: float
    recall: float
    f1: float
    tp: int
    n_pred: int
    n_gold: int
    f1_ci: tuple[float, float] = (0.0, 0.0)
    precision_ci: tuple[float, float] = (0.0, 0.0)
    recall_ci: tuple[float, float] = (0.0, 0.0)

    def line(self) -> str:
        return (f"P {self.precision:.1f} R {self.recall:.1f} F1 {self.f1:.1f} "
                f"[{self.f1_ci[0]:.1f}, {self.f1_ci[1]:.1f}] ({self.n_pred} predicted, {self.n_gold} gold)")


@dataclass
class SpanResult:
    """What :func:`ner_scores` / :func:`end_to_end_scores` return."""

    scores: dict[str, PRF]                       # "exact", "overlap" (NER) or "strict" (end to end)
    per_type: dict[str, dict[str, PRF]] = field(default_factory=dict)
    n_docs: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"n_docs": self.n_docs, "scores": {k: asdict(v) for k, v in self.scores.items()},
                "per_type": {t: {k: asdict(v) for k, v in d.items()} for t, d in self.per_type.items()},
                "notes": self.notes}


def _f(tp_p: float, n_p: float, tp_g: float, n_g: float) -> tuple[float, float, float]:
    p = tp_p / n_p if n_p else 0.0
    r = tp_g / n_g if n_g else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def prf_bootstrap(counts: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> PRF:
    """Micro P/R/F1 from per-document counts ``counts[D, 4]`` = (correct predictions, predictions,
    found gold mentions, gold mentions), with percentile bootstrap CIs over documents."""
    tot = counts.sum(axis=0) if len(counts) else np.zeros(4)
    p, r, f = _f(*tot)
    out = PRF(round(100 * p, 2), round(100 * r, 2), round(100 * f, 2), int(tot[0]), int(tot[1]), int(tot[3]))
    if len(counts) and n_resamples > 0:
        rng = np.random.default_rng(seed)
        stats = []
        for _ in range(n_resamples):
            s = counts[rng.integers(0, len(counts), size=len(counts))].sum(axis=0)
            stats.append(_f(*s))
        a = np.array(stats) * 100
        lo, hi = np.percentile(a, [2.5, 97.5], axis=0)
        out.precision_ci, out.recall_ci, out.f1_ci = ((round(float(lo[i]), 2), round(float(hi[i]), 2))
                                                      for i in range(3))
    return out


def _match_counts(gold: Sequence[Triple], pred: Sequence[Triple], matching: str) -> tuple[int, int]:
    """``(correct predictions, found gold mentions)``."""
    if matching == "exact":
        g, p = set(gold), set(pred)
        both = len(g & p)
        return both, both
    ok_p = sum(any(ps < ge and gs < pe and pt == gt for gs, ge, gt in gold) for ps, pe, pt in pred)
    ok_g = sum(any(ps < ge and gs < pe and pt == gt for ps, pe, pt in pred) for gs, ge, gt in gold)
    return ok_p, ok_g


def gold_spans(doc: Document, type_of: Callable[[str], str] = entity_group) -> list[Triple]:
    """``(start, end, group)`` of each gold mention of ``doc`` (a discontinuous one: its extent)."""
    return sorted({(e.start, e.end, type_of(e.type)) for e in doc.entities})


def _grouper(typed: bool, type_of: Callable[[str], str]) -> Callable[[str], str]:
    """The scoring type of an entity type: ``type_of`` (memoised), or ``"*"`` when not ``typed``."""
    if not typed:
        return lambda t: "*"
    return functools.lru_cache(maxsize=None)(type_of)


def ner_scores(
    docs: Sequence[Document], predictions: Sequence[Sequence[Span]], *, typed: bool = True,
    n_bootstrap: int = 1000, seed: int = 0, type_of: Callable[[str], str] = entity_group,
) -> SpanResult:
    """NER P/R/F1 (exact and overlap; overall and per type) of ``predictions[i]`` (spans over
    ``docs[i].text``)."""
    group = _grouper(typed, type_of)

    golds = [[(s, e, group(t)) for s, e, t in gold_spans(d, lambda x: x)] for d in docs]
    preds = [[(s.start, s.end, group(s.type)) for s in ps] for ps in predictions]
    types = sorted({t for g in golds for *_, t in g} | {t for p in preds for *_, t in p})
    scores: dict[str, PRF] = {}
    per_type: dict[str, dict[str, PRF]] = {t: {} for t in types}
    for matching in MATCHING:
        for t in [None, *types]:
            rows = []
            for g, p in zip(golds, preds):
                g2 = [x for x in g if t is None or x[2] == t]
                p2 = [x for x in p if t is None or x[2] == t]
                ok_p, ok_g = _match_counts(g2, p2, matching)
                rows.append((ok_p, len(p2), ok_g, len(g2)))
            prf = prf_bootstrap(np.array(rows, dtype=float).reshape(-1, 4), n_bootstrap, seed)
            if t is None:
                scores[matching] = prf
            else:
                per_type[t][matching] = prf
    return SpanResult(scores, per_type if typed else {}, len(docs))


def link_spans(
    docs: Sequence[Document], predictions: Sequence[Sequence[Span]], linker: Linker, *,
    expand_abbreviations: bool = True, k: int = 1, batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> list[list[list[str]]]:
    """The linker's top-``k`` concept ids for every predicted span (``[doc][span]``), with the
    query built as for gold mentions (:func:`genbel.data.queries.queries_from_documents`: the
    document as context, short forms defined in it written out)."""
    from genbel.data.model import Document as Doc
    from genbel.data.model import Entity
    from genbel.data.queries import queries_from_documents

    out: list[list[list[str]]] = []
    for d, spans in zip(docs, predictions):
        ents = [Entity(f"{d.document_id}-p{i}", s.type, [s.text], [(s.start, s.end)])
                for i, s in enumerate(sorted(spans, key=lambda s: (s.start, s.end)))]
        pseudo = Doc(d.id, d.document_id, d.passages, ents)
        queries = queries_from_documents([pseudo], expand_abbreviations=expand_abbreviations)
        ids: list[list[str]] = []
        for b in range(0, len(queries), batch_size):
            cands = linker.link(queries[b:b + batch_size], k=k)
            ids.extend([c.concept_id for c in cs] for cs in cands)
        out.append(ids)
        if progress:
            progress(1)
    return out


def end_to_end_scores(
    docs: Sequence[Document], predictions: Sequence[Sequence[Span]], linked: Sequence[Sequence[Sequence[str]]],
    kb: KnowledgeBase, *, typed: bool = True, n_bootstrap: int = 1000, seed: int = 0,
    type_of: Callable[[str], str] = entity_group,
) -> SpanResult:
    """Strict end-to-end P/R/F1: ``linked[i][j]`` are the concept ids ranked for
    ``sorted(predictions[i])[j]`` (only the first counts)."""
    group = _grouper(typed, type_of)

    rows_by_type: dict[str | None, list[tuple[int, int, int, int]]] = {None: []}
    n_nil = n_nil_pred = 0
    all_types = sorted({group(e.type) for d in docs for e in d.entities}
                       | {group(s.type) for ps in predictions for s in ps})
    for t in all_types:
        rows_by_type[t] = []
    for d, spans, ids in zip(docs, predictions, linked):
        gold: dict[Triple, set[str]] = {}
        nil: set[Triple] = set()
        for e in d.entities:
            key = (e.start, e.end, group(e.type))
            if e.is_nil:
                nil.add(key)
            else:
                gold.setdefault(key, set()).update(e.gold_ids)
        n_nil += len(nil - set(gold))
        nil -= set(gold)
        per: dict[str | None, list[int]] = {t: [0, 0, 0, 0] for t in rows_by_type}
        for key in gold:
            for t in (None, key[2]):
                per[t][3] += 1
        for s, cands in zip(sorted(spans, key=lambda s: (s.start, s.end)), ids):
            key = (s.start, s.end, group(s.type))
            if key in nil:
                n_nil_pred += 1
                continue
            ok = False
            if key in gold and cands:
                top = kb.ids_of(cands[0]) or {cands[0]}
                ok = bool(top & gold[key])
            for t in (None, key[2]):
                per[t][1] += 1
                per[t][0] += ok
                per[t][2] += ok
        for t, row in per.items():
            rows_by_type[t].append(tuple(row))
    scores = {"strict": prf_bootstrap(np.array(rows_by_type[None], dtype=float).reshape(-1, 4), n_bootstrap, seed)}
    per_type = {t: {"strict": prf_bootstrap(np.array(r, dtype=float).reshape(-1, 4), n_bootstrap, seed)}
                for t, r in rows_by_type.items() if t is not None} if typed else {}
    return SpanResult(scores, per_type, len(docs), {"nil_gold_left_out": n_nil, "predictions_on_nil_left_out": n_nil_pred})


def evaluate_end_to_end(
    docs: Sequence[Document], detector: Detector, kb: KnowledgeBase, linker: Linker | None = None, *,
    expand_abbreviations: bool = True, n_bootstrap: int = 1000, seed: int = 0, batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, SpanResult]:
    """Detect mentions in every document, score NER, and with a ``linker`` link the spans and score
    end to end: ``{"ner": …, "end_to_end": …}``."""
    texts = [d.text for d in docs]
    predictions: list[list[Span]] = []
    for b in range(0, len(texts), batch_size):
        predictions.extend(detector.detect_batch(texts[b:b + batch_size]))
        if progress:
            progress(len(texts[b:b + batch_size]))
    out = {"ner": ner_scores(docs, predictions, n_bootstrap=n_bootstrap, seed=seed)}
    if linker is not None:
        linked = link_spans(docs, predictions, linker, expand_abbreviations=expand_abbreviations)
        out["end_to_end"] = end_to_end_scores(docs, predictions, linked, kb, n_bootstrap=n_bootstrap, seed=seed)
    return out
