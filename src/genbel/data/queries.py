"""Mentions to link and the candidates a linker returns: the records every linker shares.

A :class:`MentionQuery` is a mention with its document context; a linker answers each with a
ranked list of :class:`Candidate` (best first, at most ``k`` distinct concepts).
:func:`queries_from_documents` makes the queries of a corpus (one per entity, in document order,
abbreviations optionally written out); :func:`as_query` turns the plain inputs that
:meth:`genbel.linkers.base.Linker.link` accepts (a string, a ``(text, context)`` pair) into queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

from genbel.data.model import Document
from genbel.errors import Errors, InputError


@dataclass
class Candidate:
    """A ranked concept for a mention.

    ``name`` is the concept's preferred name in the KB (what users read: "Panic Disorder");
    ``matched`` is the text the linker matched it by: the KB name or synonym a retriever scored best
    ("Attack, Panic"), the name a generative linker wrote, the KB spelling of an exact match. It
    defaults to ``name``, so ``Candidate(concept_id, name, score)`` keeps working.
    """

    concept_id: str
    name: str
    score: float
    matched: str = ""

    def __post_init__(self) -> None:
        if not self.matched:
            self.matched = self.name

    def to_dict(self) -> dict:
        """``{"code", "name", "matched", "score"}``: what ``genbel link`` and ``genbel evaluate`` write."""
        return {
            "code": self.concept_id, "name": self.name, "matched": self.matched, "score": float(self.score),
        }


@dataclass
class MentionQuery:
    """A mention to link.

    ``text`` is what the linker should link (the surface form, or the abbreviation's long form
    when expansion is on; ``surface`` always holds the surface form). ``context`` is the text of
    the document and ``start``/``end`` the mention's offsets in it (``None`` without context).
    ``type`` is the entity type or semantic group given by the corpus/NER.
    """

    text: str
    surface: str = ""
    type: str | None = None
    context: str | None = None
    start: int | None = None
    end: int | None = None
    doc_id: str | None = None
    entity_id: str | None = None
    gold_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.surface:
            self.surface = self.text


#: what :meth:`Linker.link` accepts per query: a :class:`MentionQuery`, the mention text, or a
#: ``(text, context)`` pair (the mention's first occurrence in ``context`` is the one linked)
QueryInput = Union[MentionQuery, str, "tuple[str, str | None]"]


def as_query(query: QueryInput, index: int = 0) -> MentionQuery:
    """One :class:`MentionQuery` from a query, its text, or a ``(text, context)`` pair.

    Raises E155 when the text does not occur in the context and E156 for any other kind of value.
    """
    if isinstance(query, MentionQuery):
        return query
    if isinstance(query, str):
        return MentionQuery(text=query)
    if (
        isinstance(query, tuple) and len(query) == 2 and isinstance(query[0], str)
        and (query[1] is None or isinstance(query[1], str))
    ):
        text, context = query
        if context is None:
            return MentionQuery(text=text)
        start = context.find(text)
        if start < 0:
            raise InputError(Errors.E155.format(index=index, text=text, context=context[:200]))
        return MentionQuery(text=text, context=context, start=start, end=start + len(text))
    raise InputError(Errors.E156.format(index=index, kind=type(query).__name__))


def as_queries(queries: Sequence[QueryInput] | str) -> Sequence[MentionQuery]:
    """:func:`as_query` for each query (a single string is one query); a sequence of
    :class:`MentionQuery` objects is returned as it is."""
    if isinstance(queries, (str, MentionQuery)):
        queries = [queries]
    if not isinstance(queries, Sequence) or isinstance(queries, bytes):
        raise InputError(Errors.E156.format(index=0, kind=type(queries).__name__))
    if all(isinstance(q, MentionQuery) for q in queries):
        return queries  # type: ignore[return-value]
    return [as_query(q, i) for i, q in enumerate(queries)]


def dedupe_candidates(cands: Sequence[Candidate], k: int) -> list[Candidate]:
    """Keep the first (best) candidate of each concept, at most ``k``."""
    seen: set[str] = set()
    out: list[Candidate] = []
    for c in cands:
        if c.concept_id in seen:
            continue
        seen.add(c.concept_id)
        out.append(c)
        if len(out) >= k:
            break
    return out


def queries_from_documents(
    documents: Sequence[Document],
    expand_abbreviations: bool = False,
    entity_types: Sequence[str] | None = None,
) -> list[MentionQuery]:
    """One :class:`MentionQuery` per entity, in document order.

    ``entity_types`` keeps the entities of these types (the rule of
    :func:`genbel.data.filter_entity_types`, unchecked: ``documents`` may be one batch of a corpus).
    """
    from genbel.data import filter_entity_types
    from genbel.data.abbreviations import expand_abbreviations as expand
    from genbel.data.abbreviations import find_abbreviations

    if entity_types:
        documents = filter_entity_types(documents, entity_types, check=False)
    out: list[MentionQuery] = []
    for doc in documents:
        text = doc.text
        abbrevs = find_abbreviations(text) if expand_abbreviations else {}
        for e in sorted(doc.entities, key=lambda e: (e.start, e.end)):
            surface = e.mention
            linked = expand(surface, abbrevs) if abbrevs else surface
            out.append(
                MentionQuery(
                    text=linked, surface=surface, type=e.type, context=text, start=e.start, end=e.end,
                    doc_id=doc.document_id, entity_id=e.id, gold_ids=e.gold_ids,
                )
            )
    return out
