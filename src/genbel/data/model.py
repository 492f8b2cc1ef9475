"""Document model following the BigBio KB schema.

A :class:`Document` has passages (text with character offsets into the document) and entities
(type, text pieces, offsets, normalized ``db_name``/``db_id`` pairs). Offsets are over
:attr:`Document.text`, the passages joined at their offsets (PubTator: title + " " + abstract).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genbel.errors import Errors, InputError
from genbel.kb.ids import normalize_id


@dataclass
class Normalization:
    db_name: str
    db_id: str

    def to_dict(self) -> dict:
        return {"db_name": self.db_name, "db_id": self.db_id}


@dataclass
class Passage:
    id: str
    type: str
    text: list[str]
    offsets: list[tuple[int, int]]

    def to_dict(self) -> dict:
        return {
            "id": self.id, "type": self.type, "text": list(self.text),
            "offsets": [list(o) for o in self.offsets],
        }


@dataclass
class Entity:
    """A mention: possibly discontinuous (several text pieces and offsets)."""

    id: str
    type: str
    text: list[str]
    offsets: list[tuple[int, int]]
    normalized: list[Normalization] = field(default_factory=list)

    @property
    def mention(self) -> str:
        return " ".join(self.text)

    @property
    def start(self) -> int:
        return min(s for s, _ in self.offsets)

    @property
    def end(self) -> int:
        return max(e for _, e in self.offsets)

    @property
    def gold_ids(self) -> list[str]:
        """Canonical gold ids (NIL dropped, ``MESH:`` stripped, bare digits → ``OMIM:``)."""
        out: list[str] = []
        for n in self.normalized:
            nid = normalize_id(n.db_id)
            if nid is not None and nid not in out:
                out.append(nid)
        return out

    @property
    def is_nil(self) -> bool:
        return not self.gold_ids

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "type": self.type,
            "text": list(self.text),
            "offsets": [list(o) for o in self.offsets],
            "normalized": [n.to_dict() for n in self.normalized],
        }


@dataclass
class Document:
    id: str
    document_id: str
    passages: list[Passage] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The document text over which entity offsets are expressed."""
        pieces: list[tuple[int, str]] = []
        for p in self.passages:
            for t, (s, _e) in zip(p.text, p.offsets):
                pieces.append((s, t))
        pieces.sort(key=lambda x: x[0])
        buf: list[str] = []
        pos = 0
        for s, t in pieces:
            if s > pos:
                buf.append(" " * (s - pos))
                pos = s
            if s < pos:  # overlapping passages: keep the tail only
                t = t[pos - s :]
            buf.append(t)
            pos += len(t)
        return "".join(buf)

    def validate(self, where: str | None = None) -> None:
        """Raise :class:`InputError` naming the entity whose offsets don't match its text."""
        text = self.text
        loc = where or f"document {self.document_id}"
        for e in self.entities:
            if len(e.text) != len(e.offsets):
                raise InputError(
                    Errors.E005.format(
                        where=loc, entity_id=e.id, start=e.start, end=e.end,
                        actual="<%d offsets>" % len(e.offsets),
                        expected=e.text,
                    )
                )
            for piece, (s, t) in zip(e.text, e.offsets):
                if text[s:t] != piece:
                    raise InputError(
                        Errors.E005.format(
                            where=loc, entity_id=e.id, start=s, end=t, actual=text[s:t], expected=piece
                        )
                    )

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "document_id": self.document_id,
            "passages": [p.to_dict() for p in self.passages],
            "entities": [e.to_dict() for e in self.entities],
            "events": [],
            "coreferences": [],
            "relations": [],
        }
