"""What each query may be linked to: candidate concepts, a semantic group, or any KB name.

A :class:`Scope` is decided per query by :meth:`ScopeResolver.resolve`: explicit candidate concept
ids (retrieve-then-generate) restrict the trie to those concepts; otherwise, with group restriction,
a query whose ``type`` resolves to a semantic group of the KB
(:func:`~genbel.kb.semantic_groups.resolve_group`) is restricted to that group's names (a group the KB
lacks leaves nothing to decode). :meth:`ScopeResolver.keep_codes` then keeps, of the codes a decoded
name maps to, those inside the scope (a name may be shared across groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genbel.data.queries import MentionQuery
from genbel.errors import Errors, InputError
from genbel.generation.encoding import EncodedQuery
from genbel.kb.base import KnowledgeBase
from genbel.kb.semantic_groups import resolve_group


@dataclass
class Scope:
    """What one query may be linked to: a trie restriction, and the codes a decoded name may keep."""

    restriction: Any | None
    possible: bool
    group: str | None = None
    concept_ids: set[str] | None = None


def decode_key(enc: EncodedQuery, scope: Scope) -> tuple:
    """What decoding depends on besides the model: the token ids and the query's scope."""
    ids = frozenset(scope.concept_ids) if scope.concept_ids is not None else None
    return (tuple(enc.input_ids), tuple(enc.decoder_ids or ()), scope.group, ids)


class ScopeResolver:
    """Scopes of queries over one KB and its candidate trie (group restrictions are built once)."""

    def __init__(self, kb: KnowledgeBase, trie: Any) -> None:
        self.kb = kb
        self.trie = trie
        self.groups: set[str] = set(kb.semantic_groups)
        self._group_restrictions: dict[str, Any] = {}

    def group_restriction(self, group: str) -> Any | None:
        """The trie restriction to the names of ``group`` (None when the group covers the whole KB)."""
        if group not in self._group_restrictions:
            n_in = sum(1 for c in self.kb if group in c.semantic_groups)
            # a group that covers the whole KB (MEDIC: Disorders) restricts nothing
            self._group_restrictions[group] = (
                None if n_in == len(self.kb) else self.trie.restrict_to_groups([group])
            )
        return self._group_restrictions[group]

    def resolve(
        self,
        queries: Sequence[MentionQuery],
        candidates: Sequence[Sequence[str] | None] | None,
        restrict_to_group: bool,
        where: Sequence[str],
        check_groups: bool,
    ) -> list[Scope]:
        """Per query: what it may be linked to (candidate concepts, a semantic group, or anything).

        ``check_groups`` resolves every query's type (an unknown type raises ``InputError`` naming
        ``where[i]``) even when decoding is not restricted to groups.
        """
        if candidates is not None and len(candidates) != len(queries):
            raise InputError(
                Errors.E252.format(where="candidates", n_candidates=len(candidates), n_queries=len(queries))
            )
        out: list[Scope] = []
        for i, q in enumerate(queries):
            cands = candidates[i] if candidates is not None else None
            if cands is not None:
                ids: set[str] = set()
                for c in cands:
                    main = self.kb.resolve_id(c)
                    if main is None:
                        raise InputError(Errors.E020.format(where=f"{where[i]}: candidates", concept_id=c))
                    ids.add(main)
                r = self.trie.restrict_to_concepts(sorted(ids)) if ids else None
                out.append(Scope(r, bool(ids) and r.num_allowed > 0, concept_ids=ids))
                continue
            group = None
            if q.type and (check_groups or (restrict_to_group and self.groups)):
                group = resolve_group(q.type, self.groups, where[i])
            if restrict_to_group and group is not None and self.groups:
                if group not in self.groups:  # nothing of that group in this KB
                    out.append(Scope(None, False))
                else:
                    out.append(Scope(self.group_restriction(group), True, group=group))
            else:
                out.append(Scope(None, True))
        return out

    def keep_codes(self, codes: Sequence[str], scope: Scope) -> list[str]:
        """The codes of a decoded name that lie in the query's scope (a name may be shared across groups)."""
        if scope.concept_ids is not None:
            return [c for c in codes if c in scope.concept_ids]
        if scope.group is not None:
            return [
                c for c in codes if (x := self.kb.get(c)) is not None and scope.group in x.semantic_groups
            ]
        return list(codes)
