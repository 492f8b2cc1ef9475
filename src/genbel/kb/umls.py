"""The UMLS Metathesaurus loader: RRF files of a release (``MRCONSO``, ``MRSTY``, ``MRDEF``) → a KB.

One module of its own: the RRF column layouts, suppression flags, Semantic Network tree and source
codes are UMLS's alone. :func:`genbel.kb.load_kb` dispatches ``format="umls"`` here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from genbel.errors import Errors, InputError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.ids import normalize_id
from genbel.kb.parsing import numbered_lines, row_error
from genbel.kb.semantic_groups import groups_of_tuis

logger = logging.getLogger(__name__)

#: UMLS ``SUPPRESS`` values dropped by default: obsolete, editor-suppressed, suppressible.
DEFAULT_SUPPRESS: tuple[str, ...] = ("O", "E", "Y")


# MRCONSO.RRF columns (each row ends with a trailing '|', hence 19 fields after split)
_MRCONSO = ("CUI", "LAT", "TS", "LUI", "STT", "SUI", "ISPREF", "AUI", "SAUI", "SCUI", "SDUI", "SAB", "TTY",
            "CODE", "STR", "SRL", "SUPPRESS", "CVF")
_MRSTY = ("CUI", "TUI", "STN", "STY", "ATUI", "CVF")
_MRDEF = ("CUI", "AUI", "ATUI", "SATUI", "SAB", "DEF", "SUPPRESS", "CVF")
_MRREL = ("CUI1", "AUI1", "STYPE1", "REL", "CUI2", "AUI2", "STYPE2", "RELA", "RUI", "SRUI", "SAB", "SL", "RG",
          "DIR", "SUPPRESS", "CVF")


def _rrf_file(directory: Path, stem: str, required: bool) -> Path | None:
    for cand in (directory / f"{stem}.RRF", directory / f"{stem}.RRF.gz"):
        if cand.is_file():
            return cand
    if required:
        raise InputError(Errors.E006.format(path=directory / f"{stem}.RRF"))
    return None


def _rrf_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    n = len(columns)
    for ln, line in numbered_lines(path):
        if not line:
            continue
        f = line.split("|")
        if f[-1] == "":  # the '|' that terminates the last field
            f.pop()
        if len(f) != n:
            raise row_error(path, ln, "umls", f"{path.name} rows have {n} '|'-terminated fields, found {len(f)}")
        yield ln, f


def _umls_code_id(sab: str, code: str) -> str | None:
    if sab == "MSH":
        return normalize_id(code)
    if sab == "OMIM":
        return normalize_id(code if code.isdigit() else code.split(".")[0])
    return f"{sab}:{code}" if code and code != "NOCODE" else None


def _semantic_network_stns(meta_dir: Path) -> dict[str, str]:
    """TUI → tree number (STN) from the Semantic Network ``SRDEF`` of the release, if present."""
    for cand in (meta_dir / "SRDEF", meta_dir.parent / "NET" / "SRDEF", meta_dir / "SRDEF.gz",
                 meta_dir.parent / "NET" / "SRDEF.gz"):
        if cand.is_file():
            out: dict[str, str] = {}
            for ln, line in numbered_lines(cand):
                if not line:
                    continue
                f = line.split("|")
                if len(f) < 4:
                    raise row_error(cand, ln, "umls", f"SRDEF rows have 10 '|'-terminated fields, found {len(f)}")
                if f[0] == "STY" and f[1] and f[3]:
                    out[f[1]] = f[3]
            return out
    return {}


def _parents_from_mrrel(
    d: Path, kept: Collection[str], drop: Collection[str], sabs: Collection[str] | None
) -> dict[str, dict[str, None]]:
    """CUI → its parent CUIs (an ordered set) from ``MRREL.RRF[.gz]`` in ``d`` (empty if absent)."""
    mrrel = _rrf_file(d, "MRREL", required=False)
    out: dict[str, dict[str, None]] = {}
    if mrrel is None:
        return out
    for _, f in tqdm(_rrf_rows(mrrel, _MRREL), desc="MRREL", unit=" relations", disable=None, leave=False):
        rel = f[3]
        if rel not in ("PAR", "CHD") or f[14].upper() in drop or (sabs is not None and f[10] not in sabs):
            continue
        child, parent = (f[0], f[4]) if rel == "PAR" else (f[4], f[0])
        if child != parent and child in kept:
            out.setdefault(child, {})[parent] = None
    return out


def is_umls_dir(path: Path) -> bool:
    """Whether ``path`` (a release folder, its ``META`` folder) holds ``MRCONSO.RRF[.gz]``."""
    return _rrf_file(_umls_dir(path), "MRCONSO", required=False) is not None


def _umls_dir(directory: Path) -> Path:
    """The directory holding ``MRCONSO.RRF``: ``directory`` itself or its ``META`` folder."""
    if directory.is_file() and directory.name.upper().startswith("MRCONSO"):
        return directory.parent
    if directory.is_dir() and _rrf_file(directory, "MRCONSO", required=False) is None:
        meta = directory / "META"
        if _rrf_file(meta, "MRCONSO", required=False) is not None:
            return meta
    return directory


def load_umls(
    directory: str | Path,
    *,
    name: str = "UMLS",
    languages: Collection[str] | None = ("ENG",),
    suppress: Collection[str] = DEFAULT_SUPPRESS,
    sources: Collection[str] | None = None,
    semantic_types: Collection[str] | None = None,
    include_descendant_types: bool = True,
    definitions: bool = True,
    code_sources: Collection[str] = (),
    hierarchy: bool = True,
) -> KnowledgeBase:
    """A UMLS Metathesaurus subset from the RRF files of a release.

    ``directory`` is the ``META`` folder (or the release folder holding ``META/``, or the
    ``MRCONSO.RRF`` file itself); ``.RRF.gz`` files are read too.

    * ``MRCONSO.RRF`` gives the names: atoms whose ``LAT`` is in ``languages`` (``None`` = all),
      whose ``SUPPRESS`` flag is not in ``suppress`` (default: drop ``O``, ``E``, ``Y``; pass
      ``()`` to keep every atom) and, if ``sources`` is given, whose ``SAB`` is one of them.
      The preferred name is the ``ISPREF=Y``/``TS=P``/``STT=PF`` atom in the first of
      ``languages`` (else the first kept atom). Concepts left without a name are dropped.
    * ``MRSTY.RRF`` gives semantic types (TUIs), mapped to semantic groups
      (:mod:`genbel.kb.semantic_groups`). With ``semantic_types`` (e.g.
      :data:`~genbel.kb.semantic_groups.ST21PV_TUIS`) only concepts having one of these TUIs are
      kept — with ``include_descendant_types`` also those whose type lies below one of them in
      the Semantic Network tree (tree numbers from ``NET/SRDEF`` when present, else from the
      ``STN`` column of ``MRSTY.RRF``), as MedMentions ST21pv does.
    * ``MRDEF.RRF`` (optional) gives definitions; suppressible ones are dropped likewise.
    * ``code_sources`` (e.g. ``{"MSH", "OMIM"}``) adds the source codes of kept atoms as
      alternate ids (MeSH codes in canonical form ``D003924``, OMIM as ``OMIM:n``, others as
      ``SAB:CODE``), so gold ids of MeSH-annotated corpora resolve to CUIs.
    * ``MRREL.RRF`` (optional; with ``hierarchy``) gives the parent links: a ``PAR`` row makes ``CUI2``
      a parent of ``CUI1``, a ``CHD`` row makes ``CUI1`` a parent of ``CUI2`` (MRREL reads right to
      left; both directions are usually listed), for kept concepts, from the ``sources`` when given,
      suppressible rows dropped as above (the hierarchy, :mod:`genbel.kb.hierarchy`).
    """
    d = _umls_dir(Path(directory))
    if not d.is_dir():
        raise InputError(Errors.E006.format(path=d))
    mrconso = _rrf_file(d, "MRCONSO", required=True)
    mrsty = _rrf_file(d, "MRSTY", required=semantic_types is not None)
    mrdef = _rrf_file(d, "MRDEF", required=False) if definitions else None
    assert mrconso is not None

    langs = [x.upper() for x in languages] if languages is not None else None
    first_lang = langs[0] if langs else None
    drop = {x.upper() for x in suppress}
    sabs = set(sources) if sources is not None else None
    codes_from = set(code_sources)

    # semantic types first: they may restrict the CUIs to read
    # per-CUI values are dicts used as ordered sets: de-duplication stays linear
    tuis_of: dict[str, dict[str, None]] = {}
    if mrsty is not None:
        stn_of_tui = _semantic_network_stns(d)
        for _, f in _rrf_rows(mrsty, _MRSTY):
            cui, tui, stn = f[0], f[1], f[2]
            tuis_of.setdefault(cui, {})[tui] = None
            if stn:
                stn_of_tui.setdefault(tui, stn)
        if semantic_types is not None:
            wanted = set(semantic_types)
            if include_descendant_types:
                roots = [stn_of_tui[t] for t in wanted if t in stn_of_tui]
                unknown = sorted(t for t in wanted if t not in stn_of_tui)
                if unknown:
                    logger.warning("no tree number for %s (no SRDEF, no MRSTY row): their descendant types "
                                   "cannot be included", ", ".join(unknown))
                for tui, stn in stn_of_tui.items():
                    if any(stn == r or stn.startswith(r + ".") for r in roots):
                        wanted.add(tui)
            tuis_of = {c: ts for c, ts in tuis_of.items() if wanted.intersection(ts)}
    keep_cuis = set(tuis_of) if semantic_types is not None else None

    names: dict[str, dict[str, None]] = {}
    preferred: dict[str, str] = {}
    alt: dict[str, dict[str, None]] = {}
    n_atoms = 0
    lang_set = set(langs) if langs is not None else None
    for _, f in tqdm(_rrf_rows(mrconso, _MRCONSO), desc="MRCONSO", unit=" atoms", disable=None, leave=False):
        cui, lat, ts, stt, ispref = f[0], f[1], f[2], f[4], f[6]
        sab, code, s, supp = f[11], f[13], f[14], f[16]
        if lang_set is not None and lat.upper() not in lang_set:
            continue
        if supp.upper() in drop:
            continue
        if sabs is not None and sab not in sabs:
            continue
        if keep_cuis is not None and cui not in keep_cuis:
            continue
        s = s.strip()
        if not s:
            continue
        n_atoms += 1
        names.setdefault(cui, {})[s] = None
        if ispref == "Y" and ts == "P" and stt == "PF" and (first_lang is None or lat.upper() == first_lang):
            preferred.setdefault(cui, s)
        if sab in codes_from:
            cid = _umls_code_id(sab, code)
            if cid is not None and cid != cui:
                alt.setdefault(cui, {})[cid] = None

    defs: dict[str, dict[str, None]] = {}
    if mrdef is not None:
        for _, f in _rrf_rows(mrdef, _MRDEF):
            cui, sab, text, supp = f[0], f[4], f[5].strip(), f[6]
            if cui not in names or not text or supp.upper() in drop:
                continue
            if sabs is not None and sab not in sabs:
                continue
            defs.setdefault(cui, {})[text] = None

    parents = _parents_from_mrrel(d, names, drop, sabs) if hierarchy else {}

    kb = KnowledgeBase(name=name)
    for cui, ns in names.items():
        pref = preferred.get(cui, next(iter(ns)))
        tuis = list(tuis_of.get(cui, ()))
        kb.add(
            Concept(cui, pref, [n for n in ns if n != pref], alt_ids=list(alt.get(cui, ())),
                    semantic_types=tuis, semantic_groups=groups_of_tuis(tuis),
                    definitions=list(defs.get(cui, ())), parents=list(parents.get(cui, ())))
        )
    logger.info("UMLS %s: %d atoms kept, %d concepts", d, n_atoms, len(kb))
    return kb
