"""Linked documents: a :class:`~genbel.data.model.Document` whose entities carry ranked candidates.

What ``genbel link`` and ``genbel annotate`` write is a BigBio KB document in which every linked
entity also has ``candidates`` (best first, each ``{"code", "name", "score"}``, optionally
``preferred_name``) and ``normalized`` = the top concept. The writers of the other formats (PubTator,
BioC, brat, CSV/TSV) read these dicts through :class:`LinkedDocument`, so each writer sees the same
entity record: offsets into the document text, type, top concept (id, preferred name, score) and the
ranked candidates. A plain :class:`Document` (no linker ran) is a linked document whose entities'
concepts are their ``normalized`` ids, without scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from genbel.data.bigbio import document_from_dict
from genbel.data.model import Document, Entity, Normalization
from genbel.errors import Errors, FormatError

__all__ = ["LinkedConcept", "LinkedDocument", "LinkedEntity", "as_linked", "iter_linked"]


@dataclass(frozen=True)
class LinkedConcept:
    """One ranked candidate: concept id, preferred name (may be ``""``), score (``None``: not scored)."""

    id: str
    name: str = ""
    score: float | None = None

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> LinkedConcept:
        if not isinstance(obj, Mapping) or "code" not in obj:
            raise FormatError(Errors.E014.format(where=where, field="candidates[].code"))
        name = obj.get("preferred_name") or obj.get("name") or ""
        score = obj.get("score")
        if score is not None and not isinstance(score, (int, float)):
            raise FormatError(
                Errors.E024.format(value=score, field=f"{where} candidates[].score", kind="a number")
            )
        return cls(str(obj["code"]), str(name), None if score is None else float(score))


@dataclass(frozen=True)
class LinkedEntity:
    """An entity and its ranked candidates (empty when none was found or nothing was linked)."""

    entity: Entity
    candidates: tuple[LinkedConcept, ...] = ()

    @property
    def top(self) -> LinkedConcept | None:
        """The best candidate, else the first ``normalized`` id (a corpus' own annotation), else ``None``."""
        if self.candidates:
            return self.candidates[0]
        ids = [n.db_id for n in self.entity.normalized if n.db_id.strip()]
        return LinkedConcept(ids[0]) if ids else None

    @property
    def concepts(self) -> list[LinkedConcept]:
        """The ranked candidates, else the ``normalized`` ids (unscored)."""
        if self.candidates:
            return list(self.candidates)
        return [LinkedConcept(n.db_id) for n in self.entity.normalized if n.db_id.strip()]


@dataclass
class LinkedDocument:
    """A document and, per entity (same order as ``document.entities``), its candidates."""

    document: Document
    candidates: list[tuple[LinkedConcept, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.document.entities)
        self.candidates = list(self.candidates) + [()] * (n - len(self.candidates))

    @property
    def entities(self) -> list[LinkedEntity]:
        return [LinkedEntity(e, c) for e, c in zip(self.document.entities, self.candidates)]

    def to_document(self) -> Document:
        """A plain :class:`Document` whose linked entities are normalized to their top concept."""
        from genbel.data.pubtator import infer_db_name

        entities = [
            Entity(e.id, e.type, e.text, e.offsets, [Normalization(infer_db_name(c[0].id), c[0].id)])
            if c else e
            for e, c in zip(self.document.entities, self.candidates)
        ]
        d = self.document
        return Document(d.id, d.document_id, d.passages, entities)

    def to_dict(self) -> dict:
        """The BigBio dict, each linked entity with ``candidates`` and ``normalized`` = its top concept."""
        from genbel.data.pubtator import infer_db_name

        out = self.document.to_dict()
        for ed, cands in zip(out["entities"], self.candidates):
            if cands:
                if ed["normalized"]:
                    ed["gold_normalized"] = ed["normalized"]
                ed["candidates"] = [{"code": c.id, "name": c.name, "score": c.score} for c in cands]
                ed["normalized"] = [{"db_name": infer_db_name(cands[0].id), "db_id": cands[0].id}]
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = "<input>") -> LinkedDocument:
        """From a BigBio dict with optional ``candidates`` per entity (the output of ``genbel link``)."""
        doc = document_from_dict(obj, where)
        cands: list[tuple[LinkedConcept, ...]] = []
        for i, ed in enumerate(obj.get("entities") or []):
            raw = ed.get("candidates") if isinstance(ed, Mapping) else None
            eloc = f"{where} (document {doc.document_id}) entity #{i}"
            cands.append(tuple(LinkedConcept.from_dict(c, eloc) for c in raw or ()))
        return cls(doc, cands)


def as_linked(item: Document | LinkedDocument | Mapping[str, Any], where: str = "<input>") -> LinkedDocument:
    """A :class:`LinkedDocument` from a document, a linked document or a (linked) BigBio dict."""
    if isinstance(item, LinkedDocument):
        return item
    if isinstance(item, Document):
        return LinkedDocument(item)
    return LinkedDocument.from_dict(item, where)


def iter_linked(items: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str) -> Iterator[LinkedDocument]:
    """:func:`as_linked` for each item, naming ``path`` and the item's position in errors."""
    for i, item in enumerate(items):
        yield as_linked(item, f"{path}: document #{i}")
