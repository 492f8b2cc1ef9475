"""The OBO ontology loader (read with :mod:`pronto`, offline: no ``import:`` is followed)."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Collection
from pathlib import Path

from genbel.errors import Errors, FormatError, InputError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.ids import normalize_id
from genbel.kb.parsing import file_stem, unique_names
from genbel.textio import loads_json, read_text


def load_obo(
    path: str | Path,
    *,
    name: str | None = None,
    synonym_scopes: Collection[str] = ("EXACT", "RELATED"),
    xrefs_as_alt_ids: bool = False,
) -> KnowledgeBase:
    """An OBO ontology read with :mod:`pronto` (no ``import:`` is followed; works offline).

    Each non-obsolete term with a name becomes a concept: main id = term id, alternate ids =
    ``alt_id`` values (plus ``xref`` ids when ``xrefs_as_alt_ids``; ``MESH:``/``OMIM:`` xrefs
    are canonicalised), synonyms of the given scopes, the definition when present, parents = the
    term's direct ``is_a`` superclasses (the hierarchy, :mod:`genbel.kb.hierarchy`).
    """
    import pronto

    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    scopes = {s.upper() for s in synonym_scopes}
    # decoded here (not by pronto, which guesses another encoding for bad bytes): BOM dropped,
    # bad bytes and corrupt .gz files raise E157/E158 naming file:line
    text = read_text(p)
    if text.lstrip().startswith("{"):  # pronto reads OBO Graphs JSON too: E013 for bad or deep JSON first
        loads_json(text, p)
    try:
        with warnings.catch_warnings():  # the bytes are UTF-8 (decoded above); pronto still guesses and warns
            warnings.simplefilter("ignore", UnicodeWarning)
            onto = pronto.Ontology(io.BytesIO(text.encode("utf-8")), import_depth=0, threads=1)
    except BaseException as e:  # pronto raises several exception types for syntax errors
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise  # KeyboardInterrupt etc.; a PanicException (fastobo's Rust parser) is a BaseException
        # pronto names the in-memory stream it was given (``<_io.BytesIO object at 0x…>``): say "the file"
        reason = re.sub(r"<_io\.\w+ object at 0x[0-9a-f]+>", "the file", str(e)) or type(e).__name__
        raise FormatError(Errors.E104.format(path=p, reason=reason)) from e
    kb = KnowledgeBase(name=name or (onto.metadata.ontology or file_stem(p)))
    for term in onto.terms():
        if term.obsolete or not term.name or not term.name.strip():
            continue
        main = normalize_id(term.id)
        if main is None:
            continue
        pref = term.name.strip()
        syns = unique_names(s.description for s in sorted(term.synonyms, key=lambda s: s.description)
                      if s.scope and s.scope.upper() in scopes)
        alts: list[str] = []
        extra = [*sorted(term.alternate_ids)]
        if xrefs_as_alt_ids:
            extra += sorted(x.id for x in term.xrefs)
        for a in extra:
            na = normalize_id(a)
            if na is not None and na != main and na not in alts:
                alts.append(na)
        defs = [str(term.definition).strip()] if term.definition and str(term.definition).strip() else []
        parents = [pid for pid in dict.fromkeys(normalize_id(t.id) for t in _direct_superclasses(term))
                   if pid is not None and pid != main]
        kb.add(Concept(main, pref, [s for s in syns if s != pref], alt_ids=alts, definitions=defs,
                       parents=sorted(parents)))
    return kb


def _direct_superclasses(term: object) -> list:
    """The direct ``is_a`` parents of a pronto term (a parent missing from the file is skipped)."""
    try:
        return list(term.superclasses(distance=1, with_self=False))  # type: ignore[attr-defined]
    except KeyError:  # an is_a naming a term that is not in the file (pronto looks it up)
        return []
