"""Exact-match reference linker: a mention links to the concepts that have its normalised string as a name."""

from __future__ import annotations

from collections.abc import Sequence

from genbel.data.queries import Candidate, MentionQuery
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.base import Linker
from genbel.linkers.registry import register_linker


class ExactMatchLinker(Linker):
    """Lowercase, strip punctuation (:func:`~genbel.kb.normalize.normalize_name`), look the string up.

    Every matching concept scores 1.0, in KB order; a mention with no match gets no candidate.
    """

    name = "exact"

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        kb.lookup("")  # build the normalised-name index now, not during the first link

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        out: list[list[Candidate]] = []
        for q in queries:
            text = q.text
            ids = self.kb.lookup(text)
            if not ids and q.text != q.surface:
                text = q.surface
                ids = self.kb.lookup(text)
            out.append([self._candidate(cid, text) for cid in ids[:k]])
        return out

    def _candidate(self, cid: str, text: str) -> Candidate:
        """The concept ``cid`` (preferred name) and the KB name that ``text`` matched."""
        concept = self.kb[cid]
        key = normalize_name(text)
        matched = next((n for n in concept.names if normalize_name(n) == key), concept.name)
        return Candidate(cid, concept.name, 1.0, matched=matched)


@register_linker("exact")
def _factory(kb: KnowledgeBase, path: str | None = None, **_: object) -> ExactMatchLinker:
    return ExactMatchLinker(kb)
