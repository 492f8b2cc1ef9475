"""A :class:`~genbel.kb.base.KnowledgeBase` read from its SQLite store on demand.

``KnowledgeBase.load(path)`` reads every concept into Python objects: ~0.54 GB per million names, so a
UMLS-sized KB (7M names) takes ~5 GB before any index is loaded. ``KnowledgeBase.load(path, lazy=True)``
(or :class:`LazyKnowledgeBase` directly) keeps the store open instead and reads a concept when it is
asked for (``kb[cid]``, ``kb.get``, ``kb.resolve_id``, ``kb.ids_of``: indexed SQLite look-ups, the last
4,096 concepts cached); iteration streams the concepts in pages; the fingerprint comes from
``meta.json`` (checked against the data with ``verify=True``, one streamed pass).

It is read-only: ``add``, ``add_synonyms`` and ``deduplicate_synonyms`` raise ``E606`` (load the KB
whole to change it). ``lookup(name)`` builds the same normalised-name dictionary as the in-memory KB
on first use (memory of the names). Stores saved before the per-concept indexes existed are refused
with ``E605`` (save them again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from genbel.errors import Errors, KBError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.ids import normalize_id
from genbel.kb.store import StoreReader

logger = logging.getLogger(__name__)

#: concepts kept after a look-up (the same object is returned while it stays cached)
CACHE_SIZE = 4096


class LazyKnowledgeBase(KnowledgeBase):
    """The read-only :class:`KnowledgeBase` interface over a KB store directory, without materialising it."""

    def __init__(self, path: str | Path, *, verify: bool = False) -> None:
        self._reader = StoreReader(path)
        meta = self._reader.meta
        self.path = Path(path)
        self.name = str(meta.get("name") or self.path.name)
        self._by_norm = None
        self._fingerprint = meta.get("fingerprint")
        self._len = self._reader.count("concepts")
        self._concept = lru_cache(maxsize=CACHE_SIZE)(self._read_concept)
        if verify:
            actual = KnowledgeBase.fingerprint_of(self._reader.iter_concepts(by_id=True))
            if actual != self._fingerprint:
                raise KBError(Errors.E101.format(path=self.path, expected=self._fingerprint, actual=actual))
        logger.info("opened KB %s lazily from %s: %d concepts", self.name, self.path, self._len)

    def _read_concept(self, idx: int) -> Concept:
        return self._reader.concepts([idx])[0]

    # ------------------------------------------------------------------ read-only
    def _read_only(self, what: str) -> KBError:
        return KBError(Errors.E606.format(path=self.path, what=what))

    def add(self, concept: Concept) -> None:
        raise self._read_only("add")

    def add_synonyms(self, concept_id: str, names: Iterable[str]) -> int:
        raise self._read_only("add_synonyms")

    def deduplicate_synonyms(self) -> int:
        raise self._read_only("deduplicate_synonyms")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Concept]:
        return self._reader.iter_concepts()

    def _idx(self, cid: str) -> int | None:
        """Stored position of the concept a main or alternate id names (any accepted spelling)."""
        for key in dict.fromkeys([cid, normalize_id(cid)]):
            if key is None:
                continue
            idx = self._reader.idx_of(key)
            if idx is None:
                idx = self._reader.idx_of_alt(key)
            if idx is not None:
                return idx
        return None

    def resolve_id(self, cid: str) -> str | None:
        idx = self._idx(cid)
        return self._concept(idx).id if idx is not None else None

    def get(self, cid: str) -> Concept | None:
        idx = self._idx(cid)
        return self._concept(idx) if idx is not None else None

    @property
    def concept_ids(self) -> list[str]:
        return self._reader.ids()

    @property
    def semantic_groups(self) -> list[str]:
        return self._reader.groups()

    def name_pairs(self) -> Iterator[tuple[str, str]]:
        for c in self:
            for n in c.names:
                yield n, c.id

    def n_names(self) -> int:
        return self._reader.count("names")

    def fingerprint(self) -> str:
        return str(self._fingerprint)

    def content_fingerprint(self) -> str:
        return KnowledgeBase.content_fingerprint_of(self._reader.iter_concepts(by_id=True))

    @property
    def has_hierarchy(self) -> bool:
        return self._reader.has_parents()

    def summary(self) -> dict:
        counts = self._reader.meta.get("counts", {})
        return {
            "name": self.name,
            "concepts": len(self),
            "names": self.n_names(),
            "alt_ids": self._reader.n_alt_ids(),
            "semantic_groups": self.semantic_groups,
            "with_definition": counts.get("with_definition"),
            "with_parents": counts.get("with_parents"),
            "fingerprint": self.fingerprint(),
        }

    def close(self) -> None:
        self._reader.close()

    def __repr__(self) -> str:
        return f"LazyKnowledgeBase(name={self.name!r}, concepts={len(self)}, path={str(self.path)!r})"
