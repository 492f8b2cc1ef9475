"""Loaders that turn common biomedical vocabularies into a :class:`KnowledgeBase`.

Every loader canonicalises ids through :mod:`genbel.kb.ids` (``MESH:`` dropped, bare digits →
``OMIM:``), reads ``.gz`` files transparently and reports bad input as
:class:`~genbel.errors.FormatError` naming ``file:line``.

========  =====================================================================================
format    source
========  =====================================================================================
medic     BioSyn-preprocessed MEDIC: ``ID[|ALTID...]||name|synonym|...`` (one concept a line)
ctd       ``CTD_diseases.tsv``: ``#`` header lines, 9 tab-separated columns, definitions
biosyn    BioSyn dictionaries: ``id||name`` (one name a line; lines of one id merge)
umls      a UMLS ``META`` directory: ``MRCONSO.RRF`` (+ ``MRSTY.RRF``, optional ``MRDEF.RRF``)
obo       an OBO ontology, read with :mod:`pronto`
jsonl     one concept a line, :meth:`Concept.to_dict` keys
tsv       ``id<TAB>name<TAB>syn|syn...`` with an optional header
genbel    a KB directory written by :meth:`KnowledgeBase.save <genbel.kb.base.KnowledgeBase.save>`
========  =====================================================================================

:func:`load_kb` dispatches on ``format`` or detects it (:func:`detect_kb_format`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from genbel.errors import ConfigError, Errors, FormatError, InputError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.ids import normalize_id, split_ids
from genbel.kb.normalize import normalize_name
from genbel.kb.semantic_groups import groups_of_tuis, normalize_group
from genbel.textio import iter_lines, loads_json, read_text

logger = logging.getLogger(__name__)

#: Formats :func:`load_kb` accepts.
KB_FORMATS: tuple[str, ...] = ("medic", "ctd", "biosyn", "umls", "obo", "jsonl", "tsv", "genbel")

#: Default semantic group given by :func:`load_kb` to concepts without one, per format.
DEFAULT_GROUPS: dict[str, str] = {"medic": "Disorders", "ctd": "Disorders"}

_DEFAULT_NAMES: dict[str, str] = {"medic": "MEDIC", "ctd": "CTD", "umls": "UMLS"}

#: UMLS ``SUPPRESS`` values dropped by default: obsolete, editor-suppressed, suppressible.
DEFAULT_SUPPRESS: tuple[str, ...] = ("O", "E", "Y")


# ------------------------------------------------------------ helpers
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without the end-of-line)`` for every line of a text file.

    Decoding goes through :func:`genbel.textio.iter_lines`: a leading BOM is dropped, bad bytes
    and corrupt ``.gz`` files raise coded errors naming ``file:line``.
    """
    for i, line in enumerate(iter_lines(path), 1):
        yield i, line.rstrip("\r\n")


def _bad(path: Path, line: int, fmt: str, reason: str) -> FormatError:
    return FormatError(Errors.E003.format(path=path, line=line, fmt=fmt, reason=reason))


def _ids(raw: str, path: Path, line: int, fmt: str) -> list[str]:
    ids = split_ids(raw)
    if not ids:
        raise _bad(path, line, fmt, f"no concept id in {raw!r}")
    return ids


def _names(raw: Iterable[str]) -> list[str]:
    """Stripped, non-empty, de-duplicated names in order (linear: a dict keeps the first-seen order)."""
    return [n for n in dict.fromkeys(x.strip() for x in raw) if n]


def _stem(path: Path) -> str:
    name = path.name
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).stem or name


# ------------------------------------------------------------ MEDIC / BioSyn
def _load_pipe_dictionary(path: Path, fmt: str, name: str, *, one_name_per_line: bool) -> KnowledgeBase:
    kb = KnowledgeBase(name=name)
    for ln, line in _lines(path):
        if not line.strip():
            continue
        if "||" not in line:
            raise _bad(path, ln, fmt, "expected 'id||name' (no '||' separator)")
        raw_ids, raw_names = line.split("||", 1)
        ids = _ids(raw_ids, path, ln, fmt)
        if one_name_per_line:
            names = _names([raw_names])
        else:
            names = _names(raw_names.split("|"))
        if not names:
            raise _bad(path, ln, fmt, "empty name")
        kb.add(Concept(ids[0], names[0], names[1:], alt_ids=ids[1:]))
    return kb


def load_medic(path: str | Path, *, name: str = "MEDIC") -> KnowledgeBase:
    """MEDIC as pre-processed by BioSyn: ``ID[|ALTID...]||name|synonym|...``.

    The first id of a row is the main id, the others are alternate ids; the first name is the
    preferred name. Concepts get no semantic group here (:func:`load_kb` adds ``Disorders``).
    """
    return _load_pipe_dictionary(Path(path), "medic", name, one_name_per_line=False)


def load_biosyn(path: str | Path, *, name: str | None = None) -> KnowledgeBase:
    """A BioSyn dictionary: one ``id||name`` a line.

    Lines with the same (first) id merge into one concept; a composite id ``a|b`` makes ``a``
    the main id and ``b`` an alternate id. The first name read
    for a concept is its preferred name.
    """
    p = Path(path)
    return _load_pipe_dictionary(p, "biosyn", name or _stem(p), one_name_per_line=True)


# ------------------------------------------------------------ CTD
_CTD_COLUMNS = (
    "DiseaseName",
    "DiseaseID",
    "AltDiseaseIDs",
    "Definition",
    "ParentIDs",
    "TreeNumbers",
    "ParentTreeNumbers",
    "Synonyms",
    "SlimMappings",
)


def load_ctd(path: str | Path, *, name: str = "CTD", definitions: bool = True) -> KnowledgeBase:
    """``CTD_diseases.tsv``: ``#`` header lines then the 9 columns of :data:`_CTD_COLUMNS`.

    Main id = ``DiseaseID``, alternate ids = ``AltDiseaseIDs``, preferred name = ``DiseaseName``,
    synonyms = ``Synonyms`` (``|``-separated), definition = ``Definition`` when ``definitions``.
    A header row naming the columns (the CSV-style export) is skipped.
    """
    p = Path(path)
    kb = KnowledgeBase(name=name)
    for ln, line in _lines(p):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if cols[0] == "DiseaseName" and len(cols) > 1 and cols[1] == "DiseaseID":
            continue
        if len(cols) < 2 or len(cols) > len(_CTD_COLUMNS):
            raise _bad(p, ln, "ctd", f"expected {len(_CTD_COLUMNS)} tab-separated columns, found {len(cols)}")
        cols += [""] * (len(_CTD_COLUMNS) - len(cols))
        row = dict(zip(_CTD_COLUMNS, cols))
        pref = row["DiseaseName"].strip()
        if not pref:
            raise _bad(p, ln, "ctd", "empty DiseaseName")
        main_ids = split_ids(row["DiseaseID"])
        if len(main_ids) != 1:
            raise _bad(p, ln, "ctd", f"DiseaseID must hold one id, found {row['DiseaseID']!r}")
        alt = [a for a in split_ids(row["AltDiseaseIDs"]) if a != main_ids[0]]
        syns = [s for s in _names(row["Synonyms"].split("|")) if s != pref]
        defs = [row["Definition"].strip()] if definitions and row["Definition"].strip() else []
        kb.add(Concept(main_ids[0], pref, syns, alt_ids=alt, definitions=defs))
    return kb


# ------------------------------------------------------------ UMLS
# MRCONSO.RRF columns (each row ends with a trailing '|', hence 19 fields after split)
_MRCONSO = ("CUI", "LAT", "TS", "LUI", "STT", "SUI", "ISPREF", "AUI", "SAUI", "SCUI", "SDUI", "SAB", "TTY",
            "CODE", "STR", "SRL", "SUPPRESS", "CVF")
_MRSTY = ("CUI", "TUI", "STN", "STY", "ATUI", "CVF")
_MRDEF = ("CUI", "AUI", "ATUI", "SATUI", "SAB", "DEF", "SUPPRESS", "CVF")


def _rrf_file(directory: Path, stem: str, required: bool) -> Path | None:
    for cand in (directory / f"{stem}.RRF", directory / f"{stem}.RRF.gz"):
        if cand.is_file():
            return cand
    if required:
        raise InputError(Errors.E006.format(path=directory / f"{stem}.RRF"))
    return None


def _rrf_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    n = len(columns)
    for ln, line in _lines(path):
        if not line:
            continue
        f = line.split("|")
        if f[-1] == "":  # the '|' that terminates the last field
            f.pop()
        if len(f) != n:
            raise _bad(path, ln, "umls", f"{path.name} rows have {n} '|'-terminated fields, found {len(f)}")
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
            for ln, line in _lines(cand):
                if not line:
                    continue
                f = line.split("|")
                if len(f) < 4:
                    raise _bad(cand, ln, "umls", f"SRDEF rows have 10 '|'-terminated fields, found {len(f)}")
                if f[0] == "STY" and f[1] and f[3]:
                    out[f[1]] = f[3]
            return out
    return {}


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

    kb = KnowledgeBase(name=name)
    for cui, ns in names.items():
        pref = preferred.get(cui, next(iter(ns)))
        tuis = list(tuis_of.get(cui, ()))
        kb.add(
            Concept(cui, pref, [n for n in ns if n != pref], alt_ids=list(alt.get(cui, ())),
                    semantic_types=tuis, semantic_groups=groups_of_tuis(tuis),
                    definitions=list(defs.get(cui, ())))
        )
    logger.info("UMLS %s: %d atoms kept, %d concepts", d, n_atoms, len(kb))
    return kb


# ------------------------------------------------------------ OBO
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
    are canonicalised), synonyms of the given scopes, the definition when present.
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
        onto = pronto.Ontology(io.BytesIO(text.encode("utf-8")), import_depth=0, threads=1)
    except BaseException as e:  # pronto raises several exception types for syntax errors
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise  # KeyboardInterrupt etc.; a PanicException (fastobo's Rust parser) is a BaseException
        raise FormatError(Errors.E104.format(path=p, reason=str(e) or type(e).__name__)) from e
    kb = KnowledgeBase(name=name or (onto.metadata.ontology or _stem(p)))
    for term in onto.terms():
        if term.obsolete or not term.name or not term.name.strip():
            continue
        main = normalize_id(term.id)
        if main is None:
            continue
        pref = term.name.strip()
        syns = _names(s.description for s in sorted(term.synonyms, key=lambda s: s.description)
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
        kb.add(Concept(main, pref, [s for s in syns if s != pref], alt_ids=alts, definitions=defs))
    return kb


# ------------------------------------------------------------ JSONL / TSV
def load_jsonl(path: str | Path, *, name: str | None = None) -> KnowledgeBase:
    """One JSON object a line with :meth:`Concept.to_dict` keys (``id`` and ``name`` required)."""
    p = Path(path)
    kb = KnowledgeBase(name=name or _stem(p))
    for ln, line in _lines(p):
        if not line.strip():
            continue
        d = loads_json(line, p, ln)
        if not isinstance(d, dict):
            raise _bad(p, ln, "jsonl", f"expected a JSON object, found {type(d).__name__}")
        for field in ("id", "name"):
            if not isinstance(d.get(field), str) or not d[field].strip():
                raise FormatError(Errors.E014.format(where=f"{p}:{ln}", field=field))
        for field in ("synonyms", "alt_ids", "semantic_types", "semantic_groups", "definitions"):
            v = d.get(field)
            if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
                raise _bad(p, ln, "jsonl", f"field {field!r} must be a list of strings")
        ids = _ids(d["id"], p, ln, "jsonl")
        c = Concept.from_dict(d)
        c.id = ids[0]
        c.name = c.name.strip()
        c.synonyms = [s for s in _names(c.synonyms) if s != c.name]
        more = [x for r in c.alt_ids for x in split_ids(r)]
        c.alt_ids = [a for a in dict.fromkeys([*ids[1:], *more]) if a != c.id]
        c.semantic_groups = [normalize_group(g) for g in c.semantic_groups]
        kb.add(c)
    return kb


def load_tsv(path: str | Path, *, name: str | None = None) -> KnowledgeBase:
    """``id<TAB>name[<TAB>syn|syn...]`` a line; ``#`` lines and a header row (first cell ``id``) skipped.

    A composite id ``a|b`` makes ``a`` the main id and ``b`` an alternate id; rows of one id merge.
    """
    p = Path(path)
    kb = KnowledgeBase(name=name or _stem(p))
    seen_data = False
    for ln, line in _lines(p):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if not seen_data and cols[0].strip().lower() in {"id", "cui", "concept_id", "conceptid"}:
            seen_data = True
            continue
        seen_data = True
        if len(cols) < 2:
            raise _bad(p, ln, "tsv", "expected 'id<TAB>name[<TAB>synonyms]'")
        if len(cols) > 3:
            raise _bad(p, ln, "tsv", f"expected at most 3 tab-separated columns, found {len(cols)}")
        ids = _ids(cols[0], p, ln, "tsv")
        pref = cols[1].strip()
        if not pref:
            raise _bad(p, ln, "tsv", "empty name")
        syns = _names(cols[2].split("|")) if len(cols) > 2 else []
        kb.add(Concept(ids[0], pref, [s for s in syns if s != pref], alt_ids=ids[1:]))
    return kb


# ------------------------------------------------------------ dispatch
def _is_genbel_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "meta.json").exists() or (p / "kb.sqlite").exists())


def _head(path: Path, n: int = 50) -> list[str]:
    out: list[str] = []
    try:
        for line in iter_lines(path):
            out.append(line.rstrip("\r\n"))
            if len(out) >= n:
                break
    except FormatError:  # undecodable bytes: detect from the lines before (the loader names the line)
        return out
    return out


def detect_kb_format(source: str | Path) -> str:
    """Guess the format of ``source`` from its name, then its first lines.

    A directory is ``genbel`` (``meta.json``/``kb.sqlite``) or ``umls`` (``MRCONSO.RRF``). For
    files, ``.gz`` is looked through: ``.obo`` → obo, ``.jsonl``/``.ndjson`` → jsonl,
    ``MRCONSO.RRF`` → umls; ``.tsv`` is ctd when it has the CTD header, else tsv; ``||`` files are
    medic when a row holds several names (or the file name contains ``medic``), else biosyn.
    Raises :class:`~genbel.errors.FormatError` (``E100``) when nothing matches.
    """
    p = Path(source)
    known = ", ".join(KB_FORMATS)
    if not p.exists():
        raise InputError(Errors.E006.format(path=p))
    if p.is_dir():
        if _is_genbel_dir(p):
            return "genbel"
        if _rrf_file(_umls_dir(p), "MRCONSO", required=False) is not None:
            return "umls"
        raise FormatError(Errors.E100.format(path=p, known=known))
    fname = p.name[:-3] if p.name.endswith(".gz") else p.name
    suffix = Path(fname).suffix.lower()
    if fname.upper().startswith("MRCONSO") and suffix == ".rrf":
        return "umls"
    if suffix == ".obo":
        return "obo"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    head = [x for x in _head(p) if x.strip()]
    if not head:
        raise FormatError(Errors.E100.format(path=p, known=known))
    if any(x.startswith("# The Comparative Toxicogenomics Database") or x.startswith("DiseaseName\tDiseaseID")
           or x.startswith("# DiseaseName\tDiseaseID") for x in head):
        return "ctd"
    if suffix == ".tsv" or "\t" in head[0]:
        data = [x for x in head if not x.startswith("#")]
        if data and all("\t" in x for x in data):
            return "tsv"
    first = head[0].lstrip()
    if first.startswith("{"):
        return "jsonl"
    if first.startswith("format-version:") or any(x.strip() == "[Term]" for x in head):
        return "obo"
    if all("||" in x for x in head):
        if "medic" in fname.lower() or any("|" in x.split("||", 1)[1] for x in head):
            return "medic"
        return "biosyn"
    raise FormatError(Errors.E100.format(path=p, known=known))


_LOADERS: dict[str, Callable[..., KnowledgeBase]] = {
    "medic": load_medic,
    "ctd": load_ctd,
    "biosyn": load_biosyn,
    "umls": load_umls,
    "obo": load_obo,
    "jsonl": load_jsonl,
    "tsv": load_tsv,
}


def load_kb(
    source: str | Path,
    format: str | None = None,  # noqa: A002 - the public keyword is ``format``
    *,
    name: str | None = None,
    group: str | None = None,
    dedupe: bool = False,
) -> KnowledgeBase:
    """Load a knowledge base from a file or directory.

    ``format`` is one of :data:`KB_FORMATS` or ``None`` to detect it (:func:`detect_kb_format`).
    ``name`` overrides the KB name (defaults: ``MEDIC``, ``CTD``, ``UMLS``, else the file stem).
    ``group`` (a group name, code or TUI, see :func:`~genbel.kb.semantic_groups.normalize_group`)
    is given to concepts that have no semantic group; MEDIC and CTD concepts get ``Disorders``
    unless told otherwise. ``dedupe`` applies GenBioEL's
    :meth:`~genbel.kb.base.KnowledgeBase.deduplicate_synonyms`.

    Errors: unknown format ``E001``, undetectable format ``E100``, missing file ``E006``, empty
    KB ``E002``, malformed row ``E003`` (``file:line``), bad KB directory ``E008``.
    """
    p = Path(source)
    if format is not None:
        fmt = format.strip().lower()
        if fmt not in KB_FORMATS:
            raise ConfigError(Errors.E001.format(fmt=format, known=", ".join(KB_FORMATS)))
    else:
        fmt = detect_kb_format(p)
    if not p.exists():
        raise InputError(Errors.E006.format(path=p))
    grp = normalize_group(group) if group is not None else DEFAULT_GROUPS.get(fmt)

    if fmt == "genbel":
        kb = KnowledgeBase.load(p)
        if name is not None:
            kb.name = name
    else:
        if fmt in ("medic", "ctd", "umls"):
            kb = _LOADERS[fmt](p, name=name or _DEFAULT_NAMES[fmt])
        else:
            kb = _LOADERS[fmt](p, name=name)
    kb.check_not_empty(p)
    if grp is not None:
        n = 0
        for c in kb:
            if not c.semantic_groups:
                c.semantic_groups.append(grp)
                n += 1
        if n:
            logger.info("semantic group %r given to %d concepts", grp, n)
    if dedupe:
        kb.deduplicate_synonyms()
    logger.info("loaded KB %s (%s): %d concepts, %d names", kb.name, fmt, len(kb), kb.n_names())
    return kb


# ------------------------------------------------------------ bundled KB
DEFAULT_KB_RESOURCE = "medic_06Jul2012.txt.gz"
#: the ``--kb`` value (and :func:`open_kb` spec) that names the bundled KB
DEFAULT_KB_SPEC = "default"


def default_kb() -> KnowledgeBase:
    """The bundled default KB: MEDIC (6 Jul 2012, BioSyn pre-processing), group ``Disorders``.

    A fresh :class:`KnowledgeBase` is returned on every call (callers may augment it). See
    ``genbel/resources/kb/README.md`` for its source and terms of use (CTD, MeSH, OMIM).
    """
    from importlib.resources import as_file, files

    res = files("genbel") / "resources" / "kb" / DEFAULT_KB_RESOURCE
    with as_file(res) as path:
        return load_kb(path, "medic", name="MEDIC", group="Disorders")


def open_kb(spec: str | Path, format: str | None = None) -> KnowledgeBase:  # noqa: A002
    """The KB a command-line ``--kb SPEC`` names: ``"default"`` (the bundled KB, :func:`default_kb`),
    a KB directory written by :meth:`KnowledgeBase.save`, or any vocabulary file or directory
    :func:`load_kb` reads (``format`` as there; detected when ``None``).

    A file or directory called ``default`` wins over the bundled KB.
    """
    if str(spec) == DEFAULT_KB_SPEC and format is None and not Path(spec).exists():
        return default_kb()
    return load_kb(spec, format)


# ------------------------------------------------------------ augmentation
def augment_kb(kb: KnowledgeBase, documents: Iterable, *, exact: bool = False) -> int:
    """Add mention strings of annotated documents as synonyms of their gold concepts.

    This is the BioSyn/SapBERT protocol of augmenting the dictionary with training (and dev)
    mentions. Gold ids are resolved through alternate ids. A mention whose gold ids name
    several different concepts (a composite mention such as "breast and ovarian cancer") is
    skipped: it is not a synonym of either. A mention is not added when the concept already has
    it — compared after :func:`~genbel.kb.normalize.normalize_name`, or exactly with
    ``exact=True``. Gold ids absent from the KB are skipped (and counted in the log).

    ``documents`` are :class:`genbel.data.model.Document` objects. Returns the number of names added.
    """
    added = 0
    missing = 0
    composite = 0
    seen_norm: dict[str, set[str]] = {}
    for doc in documents:
        for ent in doc.entities:
            gold = ent.gold_ids
            if not gold:  # NIL
                continue
            mains = {m for m in (kb.resolve_id(g) for g in gold) if m is not None}
            if not mains:
                missing += 1
                continue
            if len(mains) > 1:
                composite += 1
                continue
            cid = mains.pop()
            mention = " ".join(ent.mention.split())
            if not mention:
                continue
            if not exact:
                have = seen_norm.get(cid)
                if have is None:
                    have = seen_norm[cid] = {normalize_name(n) for n in kb[cid].names}
                key = normalize_name(mention)
                if not key or key in have:
                    continue
                have.add(key)
            added += kb.add_synonyms(cid, [mention])
    logger.info("augmented KB %s with %d names (%d mentions with gold ids not in KB, %d composite skipped)",
                kb.name, added, missing, composite)
    if added == 0 and missing and not composite:
        logger.warning("no name added: the gold ids of %d mentions are not in KB %s", missing, kb.name)
    return added


__all__ = [
    "DEFAULT_GROUPS",
    "DEFAULT_KB_SPEC",
    "DEFAULT_SUPPRESS",
    "KB_FORMATS",
    "augment_kb",
    "default_kb",
    "detect_kb_format",
    "load_biosyn",
    "load_ctd",
    "load_jsonl",
    "load_kb",
    "load_medic",
    "load_obo",
    "load_tsv",
    "load_umls",
    "open_kb",
]
