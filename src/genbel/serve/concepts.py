"""What the API says about KB concepts: a concept's record, the public page of its source vocabulary,
and a name search over the KB (``GET /search``)."""

from __future__ import annotations

import bisect
import re
from typing import Any

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.normalize import normalize_name

_MESH = re.compile(r"^(?:D\d{6}|D\d{9}|C\d{6}|C\d{9})$")  # descriptors, supplementary concepts (not UMLS C+7)
_OMIM = re.compile(r"^OMIM:(\d{6})$")
_OBO = re.compile(r"^(HP|MONDO|DOID|GO|CHEBI|UBERON|CL|SO|ORPHA|NCBITaxon):(\d+)$")


def vocabulary_url(concept_id: str) -> str | None:
    """The public web page of a concept id's vocabulary, where the id scheme has one: MeSH descriptors
    and supplementary concepts (meshb.nlm.nih.gov), OMIM (omim.org), OBO ontologies (purl.obolibrary.org);
    ``None`` otherwise (e.g. UMLS CUIs, whose browser needs a licence login)."""
    if _MESH.match(concept_id):
        return f"https://meshb.nlm.nih.gov/record/ui?ui={concept_id}"
    m = _OMIM.match(concept_id)
    if m:
        return f"https://omim.org/entry/{m.group(1)}"
    m = _OBO.match(concept_id)
    if m:
        if m.group(1) == "ORPHA":
            return f"https://www.orpha.net/en/disease/detail/{m.group(2)}"
        return f"https://purl.obolibrary.org/obo/{m.group(1)}_{m.group(2)}"
    return None


def concept_record(concept: Concept, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """``GET /concepts/{id}``: ids, names, types, groups, definitions, the direct parents in the KB's
    hierarchy (id, preferred name when ``kb`` has the parent, vocabulary page) and the vocabulary page."""
    parents = []
    for pid in concept.parents:
        parent = kb.get(pid) if kb is not None else None
        main = parent.id if parent is not None else pid
        parents.append({"id": main, "name": parent.name if parent is not None else None,
                        "url": vocabulary_url(main)})
    return {
        "id": concept.id,
        "name": concept.name,
        "synonyms": list(concept.synonyms),
        "alt_ids": list(concept.alt_ids),
        "semantic_types": list(concept.semantic_types),
        "semantic_groups": list(concept.semantic_groups),
        "definitions": list(concept.definitions),
        "parents": parents,
        "tree_numbers": list(concept.tree_numbers),
        "url": vocabulary_url(concept.id),
        "alt_urls": {a: u for a in concept.alt_ids if (u := vocabulary_url(a)) is not None},
    }


class NameSearch:
    """Find concepts by name: exact (normalised) names first, then names starting with the query, then
    names containing it as a word prefix, then anywhere; shorter names first within each rank.

    The normalised names are sorted once (MEDIC: 76k names, ~0.3 s); a prefix search is a bisection, the
    containment scan a pass over the names (a few ms for MEDIC)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        rows: list[tuple[str, str, str]] = []
        for name, cid in kb.name_pairs():
            key = normalize_name(name)
            if key:
                rows.append((key, name, cid))
        rows.sort()
        self._keys = [r[0] for r in rows]
        self._rows = rows

    def search(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        q = normalize_name(query)
        if not q:
            return []
        found: dict[str, tuple[tuple[int, int, str], str]] = {}

        def add(rank: int, row: tuple[str, str, str]) -> None:
            key, name, cid = row
            score = (rank, len(key), key)
            if cid not in found or score < found[cid][0]:
                found[cid] = (score, name)

        i = bisect.bisect_left(self._keys, q)
        while i < len(self._keys) and self._keys[i].startswith(q):
            add(0 if self._keys[i] == q else 1, self._rows[i])
            i += 1
            if len(found) >= 50 * limit:
                break
        if len(found) < limit:
            word = " " + q
            for row in self._rows:
                key = row[0]
                if word in key:
                    add(2, row)
                elif q in key:
                    add(3, row)
        best = sorted(found.items(), key=lambda kv: kv[1][0])[:limit]
        out = []
        for cid, (_, matched) in best:
            c = self.kb[cid]
            out.append({"id": c.id, "name": c.name, "matched": matched,
                        "semantic_groups": list(c.semantic_groups), "url": vocabulary_url(c.id)})
        return out
