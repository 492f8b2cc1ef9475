"""The concept record of a knowledge base."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Concept:
    """One KB concept.

    ``id`` is the canonical main id (see :mod:`genbel.kb.ids`); ``alt_ids`` are further ids that
    denote the same concept (MEDIC rows with several ids, CTD ``AltDiseaseIDs``). ``name`` is the
    preferred name; ``synonyms`` are further names (never containing ``name``).

    ``parents`` are the ids of the concept's direct parents in its KB's hierarchy where the format has
    one (CTD ``ParentIDs``, OBO ``is_a``, UMLS ``MRREL`` ``PAR``/``CHD``); ``tree_numbers`` are its
    positions in a tree-numbered hierarchy (CTD/MeSH ``TreeNumbers``). Both are empty for formats
    without a hierarchy (see :mod:`genbel.kb.hierarchy`).
    """

    id: str
    name: str
    synonyms: list[str] = field(default_factory=list)
    alt_ids: list[str] = field(default_factory=list)
    semantic_types: list[str] = field(default_factory=list)
    semantic_groups: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    tree_numbers: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Preferred name first, then the synonyms, without duplicates."""
        seen: set[str] = set()
        out: list[str] = []
        for n in [self.name, *self.synonyms]:
            if n and n not in seen:
                seen.add(n)
                out.append(n)
        return out

    @property
    def all_ids(self) -> list[str]:
        return [self.id, *[a for a in self.alt_ids if a != self.id]]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "synonyms": list(self.synonyms),
            "alt_ids": list(self.alt_ids),
            "semantic_types": list(self.semantic_types),
            "semantic_groups": list(self.semantic_groups),
            "definitions": list(self.definitions),
            "parents": list(self.parents),
            "tree_numbers": list(self.tree_numbers),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Concept:
        return cls(
            id=d["id"],
            name=d["name"],
            synonyms=list(d.get("synonyms") or []),
            alt_ids=list(d.get("alt_ids") or []),
            semantic_types=list(d.get("semantic_types") or []),
            semantic_groups=list(d.get("semantic_groups") or []),
            definitions=list(d.get("definitions") or []),
            parents=list(d.get("parents") or []),
            tree_numbers=list(d.get("tree_numbers") or []),
        )
