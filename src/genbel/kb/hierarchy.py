"""A KB's hierarchy: parent links between concepts, and how two concepts relate in it.

The loaders keep the parent links where the format has them (:attr:`Concept.parents
<genbel.kb.concept.Concept.parents>`: CTD ``ParentIDs``, OBO ``is_a``, UMLS ``MRREL`` ``PAR``/``CHD``;
the bundled MEDIC gets CTD's, :func:`read_parents_file`). :class:`Hierarchy` resolves them to main
ids and answers, for a predicted and a gold concept, what SynCABEL asks an LLM to judge:

* ``exact`` — the same concept;
* ``broader`` — the prediction is an ancestor of the gold concept;
* ``narrower`` — the prediction is a descendant of the gold concept;
* ``sibling`` — they share a direct parent (and neither is an ancestor of the other);
* ``unrelated`` — anything else;

and the tree distance: the length of the shortest path from one to the other through a common
ancestor (``d(a, c) + d(b, c)``, minimised over their common ancestors ``c``; 0 for the same
concept; ``None`` without a common ancestor).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

from genbel.kb.base import KnowledgeBase
from genbel.kb.ids import split_ids
from genbel.kb.parsing import numbered_lines, row_error

logger = logging.getLogger(__name__)

#: the relations :meth:`Hierarchy.relation` returns, closest first
RELATIONS: tuple[str, ...] = ("exact", "broader", "narrower", "sibling", "unrelated")


class Hierarchy:
    """The parent graph of a KB over main ids (a parent that is not a KB concept stays a node).

    Cycles (which some vocabularies have) are harmless: ancestor walks visit a node once.
    """

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.parents: dict[str, tuple[str, ...]] = {}
        children: dict[str, list[str]] = {}
        for c in kb:
            ps = tuple(dict.fromkeys(p for p in (kb.resolve_id(x) or x for x in c.parents) if p != c.id))
            if ps:
                self.parents[c.id] = ps
                for p in ps:
                    children.setdefault(p, []).append(c.id)
        self.children = {k: tuple(v) for k, v in children.items()}
        self._anc: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        """How many concepts have a parent."""
        return len(self.parents)

    def __bool__(self) -> bool:
        return bool(self.parents)

    def main_id(self, cid: str) -> str:
        """The KB's main id for ``cid`` (``cid`` itself when it is not in the KB)."""
        return self.kb.resolve_id(cid) or cid

    def in_hierarchy(self, cid: str) -> bool:
        """Whether the concept has a parent or a child."""
        m = self.main_id(cid)
        return m in self.parents or m in self.children

    def ancestors(self, cid: str) -> dict[str, int]:
        """Every ancestor of ``cid`` with its distance (parents 1, grandparents 2, …), ``cid`` itself 0."""
        m = self.main_id(cid)
        got = self._anc.get(m)
        if got is None:
            got = {m: 0}
            queue = deque([m])
            while queue:
                x = queue.popleft()
                for p in self.parents.get(x, ()):
                    if p not in got:
                        got[p] = got[x] + 1
                        queue.append(p)
            if len(self._anc) < 100_000:  # bounded memo: evaluation asks for the same gold concepts often
                self._anc[m] = got
        return got

    def distance(self, a: str, b: str) -> int | None:
        """Shortest path from ``a`` to ``b`` through a common ancestor; ``None`` when they have none."""
        anc_a, anc_b = self.ancestors(a), self.ancestors(b)
        if len(anc_b) < len(anc_a):
            anc_a, anc_b = anc_b, anc_a
        best = min((da + anc_b[c] for c, da in anc_a.items() if c in anc_b), default=None)
        return best

    def relation(self, predicted: str, gold: str) -> str:
        """How ``predicted`` relates to ``gold`` (one of :data:`RELATIONS`)."""
        p, g = self.main_id(predicted), self.main_id(gold)
        if p == g:
            return "exact"
        if p in self.ancestors(g):
            return "broader"
        if g in self.ancestors(p):
            return "narrower"
        if set(self.parents.get(p, ())) & set(self.parents.get(g, ())):
            return "sibling"
        return "unrelated"


def read_parents_file(path: str | Path) -> dict[str, list[str]]:
    """``id<TAB>parent|parent…`` lines (``#`` comments skipped; ids canonicalised) → id → parent ids.

    The format of the bundled KB's hierarchy (``resources/kb/medic_06Jul2012.parents.tsv.gz``).
    """
    p = Path(path)
    out: dict[str, list[str]] = {}
    for ln, line in numbered_lines(p):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise row_error(p, ln, "parents", f"expected 'id<TAB>parent|parent...', found {len(cols)} columns")
        ids = split_ids(cols[0])
        if len(ids) != 1:
            raise row_error(p, ln, "parents", f"expected one concept id, found {cols[0]!r}")
        out.setdefault(ids[0], []).extend(x for x in split_ids(cols[1]) if x not in out[ids[0]])
    return out


def attach_parents(kb: KnowledgeBase, parents: Mapping[str, Iterable[str]]) -> int:
    """Give the concepts of ``kb`` the parent ids of ``parents`` (keyed by any of their ids); returns
    how many concepts got a parent. Ids and names are untouched (the KB fingerprint stays)."""
    n = 0
    for cid, ps in parents.items():
        c = kb.get(cid)
        if c is None:
            continue
        new = [x for x in ps if x not in c.parents and kb.resolve_id(x) != c.id]
        if new:
            n += 0 if c.parents else 1
            c.parents.extend(new)
    return n


__all__ = ["RELATIONS", "Hierarchy", "attach_parents", "read_parents_file"]
