"""Which semantic group a ``{Group}`` or a corpus entity type restricts decoding to.

Corpora label mentions with their own types (NCBI-disease ``SpecificDisease``, BC5CDR ``Chemical``,
MedMentions ST21pv TUIs ``T047``…); KBs label concepts with UMLS semantic groups (``Disorders``,
``Chemicals & Drugs``…). The tables live in :mod:`genbel.kb.semantic_groups`;
:data:`GROUP_ALIASES` is the corpus-type table and :func:`resolve_group` applies the KB's own
groups first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from genbel.errors import ConfigError, Errors, InputError
from genbel.kb import semantic_groups as _sg

#: corpus entity type → semantic group name. Keys are compared lower-cased with only letters and
#: digits kept (``"SpecificDisease"``, ``"specific_disease"`` → ``"Disorders"``). Group codes
#: (``DISO``) and TUIs (``T047``) are resolved through :func:`genbel.kb.semantic_groups.normalize_group`.
GROUP_ALIASES: Mapping[str, str] = MappingProxyType(_sg._ENTITY_TYPE_ALIASES)


def resolve_group(type_: str, kb_groups: Iterable[str] = (), where: str = "<input>") -> str:
    """The semantic group that a group name, group code, TUI or corpus entity type stands for.

    A group of the KB itself wins (exact, then case-insensitive), so KBs with their own group
    names work; then :func:`~genbel.kb.semantic_groups.normalize_group`. Anything else raises
    :class:`~genbel.errors.InputError` (``E250``) naming ``where``.
    """
    kb_groups = list(kb_groups)
    if type_ in kb_groups:
        return type_
    low = type_.strip().lower()
    for g in kb_groups:
        if g.lower() == low:
            return g
    try:
        return _sg.normalize_group(type_)
    except ConfigError:
        known = sorted(set(kb_groups) | set(_sg.GROUPS.values()))
        raise InputError(Errors.E250.format(where=where, group=type_, known="; ".join(known))) from None
