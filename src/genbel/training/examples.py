"""Training examples for generative linkers: mention queries paired with the concept name to generate.

A :class:`TrainingExample` is what every data builder produces (human annotations, KB-guided
pre-training samples, synthetic contexts): a :class:`~genbel.data.queries.MentionQuery` (formatted
by :class:`~genbel.generation.prompts.PromptFormat` exactly as at inference time) and the *target*
name, one of the gold concept's names.

Synonym-aware fine-tuning (GenBioEL, Yuan et al. 2022, §2.3): the target for a human mention is the
name of its gold concept most similar to the mention — cosine of character 3-gram TF-IDF vectors —
rather than a fixed canonical name, because a generative linker finds textually close names easier
to produce. :class:`TargetSelector` implements that choice.

Composite mentions (several gold ids, e.g. NCBI-disease "breast and ovarian cancer") give one
example per gold id by default (``composite="each"``): the evaluation protocol counts a composite
mention as right when any of its ids is predicted, and one example per id teaches the model every
acceptable answer. ``composite="first"`` keeps the first id only, ``"skip"`` drops such mentions.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from genbel.data.model import Document
from genbel.data.queries import MentionQuery, queries_from_documents
from genbel.errors import Errors, InputError
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase

logger = logging.getLogger(__name__)

COMPOSITE_CHOICES = ("each", "first", "skip")
ABBREVIATION_CHOICES = ("none", "expand", "both")
TARGET_CHOICES = ("tfidf", "preferred")


@dataclass
class TrainingExample:
    """One (query → target name) pair.

    ``origin`` says where it came from: ``human`` (annotated corpus), ``kb`` (KB-guided
    pre-training template) or ``synthetic`` (generated context).
    """

    query: MentionQuery
    target: str
    concept_id: str
    origin: str = "human"

    def key(self, fmt: PromptFormat) -> tuple[str, str]:
        """What the model sees: the formatted prompt and the target (used for de-duplication)."""
        return fmt.source(self.query) + "\n" + fmt.prefix(self.query), fmt.target(self.target)


@dataclass
class BuildReport:
    """Counts of what a builder kept and dropped (logged, written to the run directory)."""

    mentions: int = 0
    examples: int = 0
    nil: int = 0
    missing_ids: Counter = field(default_factory=Counter)
    composite: int = 0
    composite_skipped: int = 0
    duplicates: int = 0

    @property
    def n_missing(self) -> int:
        return sum(self.missing_ids.values())

    def to_dict(self) -> dict:
        return {
            "mentions": self.mentions,
            "examples": self.examples,
            "nil_mentions": self.nil,
            "missing_gold_ids": self.n_missing,
            "missing_gold_id_examples": [i for i, _ in self.missing_ids.most_common(10)],
            "composite_mentions": self.composite,
            "composite_skipped": self.composite_skipped,
            "duplicates_removed": self.duplicates,
        }


class TargetSelector:
    """Pick the name of a concept most similar to a mention (char 3-gram TF-IDF cosine).

    The vectorizer is fitted on all KB names (lower-cased, ``char_wb`` 3-grams, sub-linear tf), so
    that rare n-grams weigh more. Ties go to the earlier name (the preferred name comes first).
    A mention without any known 3-gram falls back to the preferred name.
    """

    def __init__(self, kb: KnowledgeBase, ngram: tuple[int, int] = (3, 3)) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.kb = kb
        names = sorted({n for n, _ in kb.name_pairs()})
        if not names:
            raise InputError(Errors.E017.format(reason="the KB has no names"))
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=ngram, lowercase=True, sublinear_tf=True, dtype=np.float32
        )
        self.vectorizer.fit(names)
        self._cache: dict[str, object] = {}

    def _name_matrix(self, cid: str):
        m = self._cache.get(cid)
        if m is None:
            m = self.vectorizer.transform(self.kb[cid].names)
            self._cache[cid] = m
        return m

    def scores(self, mention: str, concept_id: str) -> list[tuple[str, float]]:
        """``(name, cosine)`` for every name of the concept, in the concept's name order."""
        names = self.kb[concept_id].names
        q = self.vectorizer.transform([mention])
        sims = (self._name_matrix(concept_id) @ q.T).toarray().ravel()
        return list(zip(names, sims.tolist()))

    def select(self, mention: str, concept_id: str) -> str:
        """The concept's name most similar to ``mention``."""
        scored = self.scores(mention, concept_id)
        best = max(range(len(scored)), key=lambda i: (scored[i][1], -i))
        return scored[best][0]


def finetune_examples(
    documents: Sequence[Document],
    kb: KnowledgeBase,
    *,
    selector: TargetSelector | None = None,
    target: str = "tfidf",
    composite: str = "each",
    abbreviations: str = "none",
    entity_types: Sequence[str] | None = None,
    type_map: dict[str, str] | None = None,
    strict: bool = False,
    origin: str = "human",
    report: BuildReport | None = None,
) -> tuple[list[TrainingExample], BuildReport]:
    """Training examples from annotated documents (synonym-aware targets).

    * ``target``: ``tfidf`` (the gold concept's name closest to the mention) or ``preferred``.
    * ``composite``: ``each`` | ``first`` | ``skip`` (see the module docstring).
    * ``abbreviations``: ``none`` (link the surface form), ``expand`` (the long form found by
      :func:`genbel.data.abbreviations.find_abbreviations` as the linked text), ``both`` (one example
      of each when they differ).
    * ``entity_types``: keep only these entity types (e.g. ``["Disease"]`` for BC5CDR).
    * ``type_map``: rewrite entity types (the ``{Group}`` of the prompt), e.g. NCBI's
      ``SpecificDisease`` → ``Disease``.
    * Gold ids missing from the KB are counted in the report and skipped; with ``strict`` a
      :class:`~genbel.errors.InputError` (E018) is raised instead. NIL mentions are counted and skipped.
    """
    if composite not in COMPOSITE_CHOICES:
        raise InputError(
            Errors.E357.format(field="composite", reason=f"{composite!r} not in {COMPOSITE_CHOICES}")
        )
    if abbreviations not in ABBREVIATION_CHOICES:
        raise InputError(
            Errors.E357.format(
                field="abbreviations", reason=f"{abbreviations!r} not in {ABBREVIATION_CHOICES}"
            )
        )
    if target not in TARGET_CHOICES:
        raise InputError(Errors.E357.format(field="target", reason=f"{target!r} not in {TARGET_CHOICES}"))
    report = report if report is not None else BuildReport()
    if target == "tfidf" and selector is None:
        selector = TargetSelector(kb)

    queries = queries_from_documents(
        documents, expand_abbreviations=abbreviations != "none", entity_types=entity_types
    )
    out: list[TrainingExample] = []
    for q in queries:
        report.mentions += 1
        if type_map and q.type in type_map:
            q.type = type_map[q.type]
        variants = [q]
        if abbreviations == "both" and q.text != q.surface:
            plain = MentionQuery(
                text=q.surface,
                surface=q.surface,
                type=q.type,
                context=q.context,
                start=q.start,
                end=q.end,
                doc_id=q.doc_id,
                entity_id=q.entity_id,
                gold_ids=list(q.gold_ids),
            )
            variants = [plain, q]
        gold = list(q.gold_ids)
        if not gold:
            report.nil += 1
            continue
        known: list[str] = []
        for gid in gold:
            main = kb.resolve_id(gid)
            if main is None:
                report.missing_ids[gid] += 1
            elif main not in known:
                known.append(main)
        if len(gold) > 1:
            report.composite += 1
            if composite == "skip":
                report.composite_skipped += 1
                continue
            if composite == "first":
                known = known[:1]
        for cid in known:
            for v in variants:
                name = selector.select(v.text, cid) if selector is not None else kb[cid].name
                out.append(TrainingExample(query=v, target=name, concept_id=cid, origin=origin))
    if strict and report.n_missing:
        examples = ", ".join(i for i, _ in report.missing_ids.most_common(5))
        raise InputError(Errors.E018.format(n=report.n_missing, examples=examples))
    if report.n_missing:
        logger.warning(
            "%d gold ids (%d distinct) are missing from the KB and were skipped (e.g. %s)",
            report.n_missing,
            len(report.missing_ids),
            ", ".join(i for i, _ in report.missing_ids.most_common(5)),
        )
    report.examples += len(out)
    return out, report


def dedupe_examples(
    examples: Iterable[TrainingExample], fmt: PromptFormat
) -> tuple[list[TrainingExample], int]:
    """Drop examples whose (formatted prompt, target) was already seen; returns (kept, n_removed)."""
    seen: set[tuple[str, str]] = set()
    kept: list[TrainingExample] = []
    removed = 0
    for ex in examples:
        k = ex.key(fmt)
        if k in seen:
            removed += 1
            continue
        seen.add(k)
        kept.append(ex)
    return kept, removed
