"""The in-memory :class:`KnowledgeBase`: concepts, names, alternate ids, semantic groups.

:meth:`KnowledgeBase.save` / :meth:`KnowledgeBase.load` persist it through :mod:`genbel.kb.store`
(which knows concepts and the on-disk layout, not this class: the import goes one way).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from genbel.errors import Errors, KBError
from genbel.kb.concept import Concept
from genbel.kb.ids import normalize_id
from genbel.kb.normalize import normalize_name
from genbel.kb.store import kb_meta, read_store, write_store

logger = logging.getLogger(__name__)


class KnowledgeBase:
    """A set of :class:`Concept` records with name and id indexes.

    * ``kb[cid]`` / ``kb.get(cid)`` accept a main id or an alternate id (in any accepted form,
      e.g. ``MESH:D003924`` or bare OMIM digits) and return the concept;
    * ``kb.lookup(name)`` returns the ids of the concepts that have ``name`` (after
      :func:`~genbel.kb.normalize.normalize_name`) among their names;
    * ``kb.name_pairs()`` yields every ``(name, concept_id)`` pair, the unit that tries and
      indexes are built from.
    """

    def __init__(self, concepts: Iterable[Concept] = (), name: str = "kb") -> None:
        self.name = name
        self._concepts: dict[str, Concept] = {}
        self._alt: dict[str, str] = {}
        self._by_norm: dict[str, list[str]] | None = None
        self._fingerprint: str | None = None
        # (list, its length, its items as a set) per (concept id, attribute) merged into by add():
        # membership tests stay O(1), so merging many rows into one concept is linear
        self._seen: dict[tuple[str, str], tuple[list[str], int, set[str]]] = {}
        for c in concepts:
            self.add(c)

    # ------------------------------------------------------------------ building
    def add(self, concept: Concept) -> None:
        """Add a concept; a concept with the same main id is merged (names, ids, groups)."""
        existing = self._concepts.get(concept.id)
        if existing is None:
            self._concepts[concept.id] = concept
            existing = concept
            new_alt_ids = existing.alt_ids
        else:
            self._extend(existing, "synonyms", (n for n in concept.names if n != existing.name))
            for attr in ("semantic_types", "semantic_groups", "definitions", "parents", "tree_numbers"):
                self._extend(existing, attr, getattr(concept, attr))
            new_alt_ids = self._extend(existing, "alt_ids", concept.alt_ids)
        for a in new_alt_ids:
            if a != existing.id and a not in self._concepts:
                self._alt.setdefault(a, existing.id)
        self._invalidate()

    def _extend(self, concept: Concept, attr: str, values: Iterable[str]) -> list[str]:
        """Append the ``values`` not yet in ``concept.<attr>`` (in order); return those appended."""
        lst: list[str] = getattr(concept, attr)
        key = (concept.id, attr)
        cached = self._seen.get(key)
        if cached is not None and cached[0] is lst and cached[1] == len(lst):
            seen = cached[2]
        else:  # first merge, or the list was replaced or changed outside add(): rebuild
            seen = set(lst)
        added: list[str] = []
        for v in values:
            if v not in seen:
                seen.add(v)
                lst.append(v)
                added.append(v)
        self._seen[key] = (lst, len(lst), seen)
        return added

    def add_synonyms(self, concept_id: str, names: Iterable[str]) -> int:
        """Add names to a concept (e.g. training mentions, BioSyn-style augmentation).

        Returns how many were new.
        """
        c = self[concept_id]
        have = set(c.names)
        n = 0
        for name in names:
            name = name.strip()
            if name and name not in have:
                c.synonyms.append(name)
                have.add(name)
                n += 1
        if n:
            self._invalidate()
        return n

    def _invalidate(self) -> None:
        self._by_norm = None
        self._fingerprint = None

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self._concepts.values())

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str) and self.resolve_id(cid) is not None

    def __getitem__(self, cid: str) -> Concept:
        c = self.get(cid)
        if c is None:
            raise KeyError(Errors.E020.format(where=self.name, concept_id=cid))
        return c

    def resolve_id(self, cid: str) -> str | None:
        """Main id for a main or alternate id (any accepted spelling), or ``None``."""
        if cid in self._concepts:
            return cid
        if cid in self._alt:
            return self._alt[cid]
        nid = normalize_id(cid)
        if nid is None:
            return None
        if nid in self._concepts:
            return nid
        return self._alt.get(nid)

    def get(self, cid: str) -> Concept | None:
        main = self.resolve_id(cid)
        return self._concepts[main] if main is not None else None

    def ids_of(self, cid: str) -> set[str]:
        """All ids (main + alternate) of the concept that ``cid`` names; empty if unknown."""
        c = self.get(cid)
        return set(c.all_ids) if c is not None else set()

    @property
    def concept_ids(self) -> list[str]:
        return list(self._concepts)

    @property
    def semantic_groups(self) -> list[str]:
        return sorted({g for c in self for g in c.semantic_groups})

    def name_pairs(self) -> Iterator[tuple[str, str]]:
        """Every ``(name, concept_id)`` pair, preferred name first within a concept."""
        for c in self._concepts.values():
            for n in c.names:
                yield n, c.id

    def n_names(self) -> int:
        return sum(len(c.names) for c in self)

    def lookup(self, name: str) -> list[str]:
        """Concept ids having ``name`` as one of their names, after normalisation."""
        if self._by_norm is None:
            idx: dict[str, list[str]] = defaultdict(list)
            for n, cid in self.name_pairs():
                key = normalize_name(n)
                if key and cid not in idx[key]:
                    idx[key].append(cid)
            self._by_norm = dict(idx)
        return list(self._by_norm.get(normalize_name(name), []))

    def fingerprint(self) -> str:
        """A short hash of ids and names: indexes and tries store it and refuse another KB."""
        if self._fingerprint is None:
            self._fingerprint = self.fingerprint_of(sorted(self._concepts.values(), key=lambda c: c.id))
        return self._fingerprint

    @staticmethod
    def fingerprint_of(concepts_by_id: Iterable[Concept]) -> str:
        """:meth:`fingerprint` of concepts given sorted by id (streamed: a store can feed it page by page)."""
        h = hashlib.sha256()
        for c in concepts_by_id:
            h.update(c.id.encode("utf-8", "surrogatepass"))  # same bytes as UTF-8 for valid text
            h.update(b"\x00")
            for n in c.names:
                h.update(n.encode("utf-8", "surrogatepass"))
                h.update(b"\x01")
            h.update(b"\x02")
        return h.hexdigest()[:16]

    def content_fingerprint(self) -> str:
        """A short hash of every field of every concept: id, names, alternate ids, semantic types and
        groups, definitions, parents and tree numbers (in order). :meth:`save` records it and :meth:`load` checks it (``E107``),
        so an edit of any field inside ``kb.sqlite`` is noticed.

        Kept apart from :meth:`fingerprint` (ids and names), which indexes, tries, dense-index cache
        keys and saved linkers record: changing that would invalidate every one of them and every KB
        saved so far."""
        # not cached: loaders and callers edit concept lists in place (e.g. a default group)
        return self.content_fingerprint_of(sorted(self._concepts.values(), key=lambda c: c.id))

    @staticmethod
    def content_fingerprint_of(concepts_by_id: Iterable[Concept]) -> str:
        """:meth:`content_fingerprint` of concepts given sorted by id (streamed)."""
        h = hashlib.sha256()
        for c in concepts_by_id:
            h.update(c.id.encode("utf-8", "surrogatepass"))
            for part in (c.names, c.alt_ids, c.semantic_types, c.semantic_groups, c.definitions):
                h.update(b"\x00")
                for v in part:
                    h.update(v.encode("utf-8", "surrogatepass"))
                    h.update(b"\x01")
            if c.parents or c.tree_numbers:  # hashed only when present: KBs saved before they existed still verify
                for part in (c.parents, c.tree_numbers):
                    h.update(b"\x03")
                    for v in part:
                        h.update(v.encode("utf-8", "surrogatepass"))
                        h.update(b"\x01")
            h.update(b"\x02")
        return h.hexdigest()[:16]

    @property
    def has_hierarchy(self) -> bool:
        """Whether any concept has a parent link (see :mod:`genbel.kb.hierarchy`)."""
        return any(c.parents for c in self)

    # ------------------------------------------------------------------ transforms
    def filter(self, groups: Iterable[str] | None = None, ids: Iterable[str] | None = None) -> KnowledgeBase:
        """A new KB with the concepts of the given semantic groups and/or ids."""
        gset = set(groups) if groups is not None else None
        idset = {self.resolve_id(i) for i in ids} if ids is not None else None
        out = KnowledgeBase(name=self.name)
        for c in self:
            if gset is not None and not gset.intersection(c.semantic_groups):
                continue
            if idset is not None and c.id not in idset:
                continue
            out.add(Concept.from_dict(c.to_dict()))
        return out

    def deduplicate_synonyms(self) -> int:
        """GenBioEL's synonym de-duplication.

        A name (compared after normalisation) shared by several concepts stays only with the
        concept that has the fewest other synonyms (ties: the concept whose preferred name it
        is, then the smallest id). A concept never loses its preferred name. Returns the number
        of names removed.
        """
        owners: dict[str, list[str]] = defaultdict(list)
        for c in self:
            for n in {normalize_name(x) for x in c.names}:
                owners[n].append(c.id)
        removed = 0
        for norm, cids in owners.items():
            if len(cids) < 2:
                continue

            def rank(cid: str) -> tuple[int, int, str]:
                c = self._concepts[cid]
                return (len(c.names), 0 if normalize_name(c.name) == norm else 1, cid)

            keep = min(cids, key=rank)
            for cid in cids:
                if cid == keep:
                    continue
                c = self._concepts[cid]
                before = len(c.synonyms)
                c.synonyms = [s for s in c.synonyms if normalize_name(s) != norm]
                removed += before - len(c.synonyms)
        if removed:
            self._invalidate()
        logger.info("synonym de-duplication removed %d names", removed)
        return removed

    def summary(self) -> dict:
        return {
            "name": self.name,
            "concepts": len(self),
            "names": self.n_names(),
            "alt_ids": len(self._alt),
            "semantic_groups": self.semantic_groups,
            "with_definition": sum(1 for c in self if c.definitions),
            "with_parents": sum(1 for c in self if c.parents),
            "fingerprint": self.fingerprint(),
        }

    def check_not_empty(self, source: str | Path) -> KnowledgeBase:
        if len(self) == 0 or self.n_names() == 0:
            raise KBError(Errors.E002.format(path=source))
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, source: str | None = None) -> Path:
        """Write the KB to a directory (``kb.sqlite`` + ``meta.json``) and return it.

        Crash-safe: the files are built in a hidden temporary folder inside ``path`` and renamed into
        place; on any error or kill an existing KB at ``path`` is left whole (see :mod:`genbel.kb.store`). An existing genbel KB
        directory (or an empty directory) is replaced; any other existing path raises ``E103``.
        ``source`` is recorded in ``meta.json``.
        """
        concepts = list(self)
        meta = kb_meta(concepts, name=self.name, fingerprint=self.fingerprint(), source=source,
                       content_fingerprint=self.content_fingerprint())
        return write_store(path, concepts, meta)

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True, lazy: bool = False) -> KnowledgeBase:
        """Read a KB directory written by :meth:`save`.

        ``lazy=True`` returns a read-only :class:`~genbel.kb.lazy.LazyKnowledgeBase` that reads concepts
        from the store when asked (a UMLS-sized KB without its ~5 GB of Python objects); ``verify`` then
        checks the id-and-name fingerprint in one streamed pass (the content fingerprint is not checked).

        Raises ``E008`` when ``kb.sqlite`` or ``meta.json`` is missing, ``E102`` for another store
        version and, with ``verify``, ``E101`` when the data no longer gives the recorded fingerprint
        (ids and names) and ``E107`` when it no longer gives the recorded content fingerprint (every
        field; KBs saved by earlier versions of genbel do not record one).
        """
        if lazy:
            from genbel.kb.lazy import LazyKnowledgeBase

            return LazyKnowledgeBase(path, verify=verify)
        p = Path(path)
        concepts, meta = read_store(p)
        kb = cls(concepts, name=str(meta.get("name") or p.name))
        if verify and kb.fingerprint() != meta.get("fingerprint"):
            raise KBError(
                Errors.E101.format(path=p, expected=meta.get("fingerprint"), actual=kb.fingerprint())
            )
        recorded = meta.get("content_fingerprint")  # absent in KBs saved before it was recorded
        if verify and recorded is not None:
            actual = kb.content_fingerprint()
            if actual != recorded:
                raise KBError(Errors.E107.format(path=p, expected=recorded, actual=actual))
        logger.info("loaded KB %s from %s: %d concepts", kb.name, p, len(kb))
        return kb

    def __repr__(self) -> str:
        return f"KnowledgeBase(name={self.name!r}, concepts={len(self)})"
