"""Concept-id normalisation shared by KB loaders, corpus readers and the evaluation harness.

Canonical forms (the protocol in ``docs/benchmarks.md``):

* MeSH ids lose their ``MESH:`` prefix (``MESH:D003924`` → ``D003924``);
* OMIM ids are ``OMIM:<digits>``; bare digits are OMIM (``613097`` → ``OMIM:613097``);
* UMLS CUIs lose a ``UMLS:`` prefix (``UMLS:C0011849`` → ``C0011849``);
* ``-1`` (and empty parts) mean NIL and are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NIL_IDS = frozenset({"-1", "", "CUI-less", "NIL", "nil"})
_STRIP_PREFIXES = ("MESH:", "MeSH:", "mesh:", "UMLS:", "umls:")
_SPLIT = re.compile(r"[|+,]")


def normalize_id(raw: str) -> str | None:
    """Return the canonical form of one concept id, or ``None`` for NIL."""
    s = raw.strip()
    if s in NIL_IDS:
        return None
    for p in _STRIP_PREFIXES:
        if s.startswith(p):
            s = s[len(p) :].strip()
            break
    if s.isdigit():
        return f"OMIM:{s}"
    if s.upper().startswith("OMIM:"):
        return "OMIM:" + s[5:].strip()
    return s or None


def split_ids(raw: str) -> list[str]:
    """Split a composite id field (``D1|D2``, ``D1+D2``) into canonical ids, NIL parts dropped.

    Order is kept and duplicates are removed.
    """
    out: dict[str, None] = {}  # an ordered set: linear in the number of parts
    for part in _SPLIT.split(raw):
        nid = normalize_id(part)
        if nid is not None:
            out[nid] = None
    return list(out)


_MESH_ID = re.compile(r"[CD](?:\d{6}|\d{9})")  # a UMLS CUI is C + 7 digits


def is_mesh_id(cid: str) -> bool:
    """Whether a canonical id is a MeSH descriptor (``D…``) or supplementary concept (``C…``) id."""
    return _MESH_ID.fullmatch(cid) is not None


def mesh_first(ids: list[str]) -> list[str]:
    """``ids`` with the first MeSH id moved to the front, the others in their order.

    CTD defines a MEDIC disease by its MeSH ``DiseaseID`` (OMIM ids are alternates), but MEDIC rows
    pre-processed by BioSyn list the ids in no fixed order (``608446|D009203`` for myocardial
    infarction): the loaders of those rows use this to make the MeSH id the main id. Rows without a
    MeSH id keep their first id.
    """
    for i, cid in enumerate(ids):
        if is_mesh_id(cid):
            return [cid, *ids[:i], *ids[i + 1:]] if i else list(ids)
    return list(ids)


def normalize_ids(ids: Iterable[str]) -> list[str]:
    out: dict[str, None] = {}
    for raw in ids:
        for nid in split_ids(raw):
            out[nid] = None
    return list(out)
