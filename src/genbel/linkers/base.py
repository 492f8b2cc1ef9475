"""The linker interface every genbel linker implements.

A linker ranks KB concepts for mentions. The unit of work is a :class:`MentionQuery` (a mention
with its document context); the answer is a ranked list of :class:`Candidate` per query, best
first, at most ``k`` distinct concepts.

Document-level linkers (which need the mentions of a document in order) override
:meth:`Linker.link_documents`; everything else implements :meth:`Linker.link`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from genbel.data.model import Document


@dataclass
class Candidate:
    concept_id: str
    name: str
    score: float

    def to_dict(self) -> dict:
        return {"code": self.concept_id, "name": self.name, "score": float(self.score)}


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


class Linker(ABC):
    """Base class of all linkers."""

    #: registry name (``exact``, ``tfidf``, ``sparse``, ``dense``, ``generative`` …)
    name: str = "linker"

    @abstractmethod
    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        """Ranked candidates (at most ``k`` distinct concepts, best first) for each query."""

    def link_documents(
        self, documents: Sequence[Document], k: int = 5, expand_abbreviations: bool = False,
        entity_types: Sequence[str] | None = None,
    ) -> list[tuple[MentionQuery, list[Candidate]]]:
        """Link every entity of the documents, in document order."""
        queries = queries_from_documents(documents, expand_abbreviations, entity_types)
        return list(zip(queries, self.link(queries, k=k)))


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
