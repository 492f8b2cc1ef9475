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

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from genbel.errors import ConfigError, Errors, FormatError, InputError, KBError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.ids import mesh_first, split_ids
from genbel.kb.normalize import normalize_name
from genbel.kb.obo import load_obo
from genbel.kb.parsing import file_stem, numbered_lines, parse_ids, row_error, unique_names
from genbel.kb.semantic_groups import normalize_group
from genbel.kb.umls import is_umls_dir, load_umls
from genbel.textio import iter_lines, loads_json

logger = logging.getLogger(__name__)

#: Formats :func:`load_kb` accepts.
KB_FORMATS: tuple[str, ...] = ("medic", "ctd", "biosyn", "umls", "obo", "jsonl", "tsv", "genbel")

#: Default semantic group given by :func:`load_kb` to concepts without one, per format.
DEFAULT_GROUPS: dict[str, str] = {"medic": "Disorders", "ctd": "Disorders"}

_DEFAULT_NAMES: dict[str, str] = {"medic": "MEDIC", "ctd": "CTD", "umls": "UMLS"}



# ------------------------------------------------------------ MEDIC / BioSyn
def _load_pipe_dictionary(path: Path, fmt: str, name: str, *, one_name_per_line: bool) -> KnowledgeBase:
    kb = KnowledgeBase(name=name)
    for ln, line in numbered_lines(path):
        if not line.strip():
            continue
        if "||" not in line:
            raise row_error(path, ln, fmt, "expected 'id||name' (no '||' separator)")
        raw_ids, raw_names = line.split("||", 1)
        ids = mesh_first(parse_ids(raw_ids, path, ln, fmt))  # CTD: the MeSH id is the main id
        if one_name_per_line:
            names = unique_names([raw_names])
        else:
            names = unique_names(raw_names.split("|"))
        if not names:
            raise row_error(path, ln, fmt, "empty name")
        kb.add(Concept(ids[0], names[0], names[1:], alt_ids=ids[1:]))
    return kb


def load_medic(path: str | Path, *, name: str = "MEDIC") -> KnowledgeBase:
    """MEDIC as pre-processed by BioSyn: ``ID[|ALTID...]||name|synonym|...``.

    The main id is the row's MeSH id, as CTD defines a MEDIC disease (its ``DiseaseID``; rows list
    their ids in no fixed order, e.g. ``608446|D009203`` for myocardial infarction), else the first id;
    the others are alternate ids (:func:`~genbel.kb.ids.mesh_first`). The first name is the preferred
    name. The format has no hierarchy (:func:`default_kb` adds the bundled KB's parent links).
    Concepts get no semantic group here (:func:`load_kb` adds ``Disorders``).
    """
    return _load_pipe_dictionary(Path(path), "medic", name, one_name_per_line=False)


def load_biosyn(path: str | Path, *, name: str | None = None) -> KnowledgeBase:
    """A BioSyn dictionary: one ``id||name`` a line.

    Lines with the same main id merge into one concept; of a composite id ``a|b`` the MeSH id is
    the main id (BioSyn's dictionaries are MEDIC's, see :func:`load_medic`), else ``a``; the other
    ids are alternate ids. The first name read
    for a concept is its preferred name.
    """
    p = Path(path)
    return _load_pipe_dictionary(p, "biosyn", name or file_stem(p), one_name_per_line=True)


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
    synonyms = ``Synonyms`` (``|``-separated), definition = ``Definition`` when ``definitions``,
    parents = ``ParentIDs``, tree numbers = ``TreeNumbers`` (the hierarchy, :mod:`genbel.kb.hierarchy`).
    A header row naming the columns (the CSV-style export) is skipped.
    """
    p = Path(path)
    kb = KnowledgeBase(name=name)
    for ln, line in numbered_lines(p):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if cols[0] == "DiseaseName" and len(cols) > 1 and cols[1] == "DiseaseID":
            continue
        if len(cols) < 2 or len(cols) > len(_CTD_COLUMNS):
            raise row_error(p, ln, "ctd", f"expected {len(_CTD_COLUMNS)} tab-separated columns, found {len(cols)}")
        cols += [""] * (len(_CTD_COLUMNS) - len(cols))
        row = dict(zip(_CTD_COLUMNS, cols))
        pref = row["DiseaseName"].strip()
        if not pref:
            raise row_error(p, ln, "ctd", "empty DiseaseName")
        main_ids = split_ids(row["DiseaseID"])
        if len(main_ids) != 1:
            raise row_error(p, ln, "ctd", f"DiseaseID must hold one id, found {row['DiseaseID']!r}")
        alt = [a for a in split_ids(row["AltDiseaseIDs"]) if a != main_ids[0]]
        syns = [s for s in unique_names(row["Synonyms"].split("|")) if s != pref]
        defs = [row["Definition"].strip()] if definitions and row["Definition"].strip() else []
        parents = [x for x in split_ids(row["ParentIDs"]) if x != main_ids[0]]
        trees = unique_names(row["TreeNumbers"].split("|"))
        kb.add(Concept(main_ids[0], pref, syns, alt_ids=alt, definitions=defs, parents=parents,
                       tree_numbers=trees))
    return kb


# ------------------------------------------------------------ JSONL / TSV
def load_jsonl(path: str | Path, *, name: str | None = None) -> KnowledgeBase:
    """One JSON object a line with :meth:`Concept.to_dict` keys (``id`` and ``name`` required)."""
    p = Path(path)
    kb = KnowledgeBase(name=name or file_stem(p))
    for ln, line in numbered_lines(p):
        if not line.strip():
            continue
        d = loads_json(line, p, ln)
        if not isinstance(d, dict):
            raise row_error(p, ln, "jsonl", f"expected a JSON object, found {type(d).__name__}")
        for field in ("id", "name"):
            if not isinstance(d.get(field), str) or not d[field].strip():
                raise FormatError(Errors.E014.format(where=f"{p}:{ln}", field=field))
        for field in ("synonyms", "alt_ids", "semantic_types", "semantic_groups", "definitions", "parents",
                      "tree_numbers"):
            v = d.get(field)
            if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
                raise row_error(p, ln, "jsonl", f"field {field!r} must be a list of strings")
        ids = parse_ids(d["id"], p, ln, "jsonl")
        c = Concept.from_dict(d)
        c.id = ids[0]
        c.name = c.name.strip()
        c.synonyms = [s for s in unique_names(c.synonyms) if s != c.name]
        more = [x for r in c.alt_ids for x in split_ids(r)]
        c.alt_ids = [a for a in dict.fromkeys([*ids[1:], *more]) if a != c.id]
        c.semantic_groups = [normalize_group(g) for g in c.semantic_groups]
        c.parents = [a for a in dict.fromkeys(x for r in c.parents for x in split_ids(r)) if a != c.id]
        c.tree_numbers = unique_names(c.tree_numbers)
        kb.add(c)
    return kb


def load_tsv(path: str | Path, *, name: str | None = None) -> KnowledgeBase:
    """``id<TAB>name[<TAB>syn|syn...]`` a line; ``#`` lines and a header row (first cell ``id``) skipped.

    A composite id ``a|b`` makes ``a`` the main id and ``b`` an alternate id; rows of one id merge.
    """
    p = Path(path)
    kb = KnowledgeBase(name=name or file_stem(p))
    seen_data = False
    for ln, line in numbered_lines(p):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if not seen_data and cols[0].strip().lower() in {"id", "cui", "concept_id", "conceptid"}:
            seen_data = True
            continue
        seen_data = True
        if len(cols) < 2:
            raise row_error(p, ln, "tsv", "expected 'id<TAB>name[<TAB>synonyms]'")
        if len(cols) > 3:
            raise row_error(p, ln, "tsv", f"expected at most 3 tab-separated columns, found {len(cols)}")
        ids = parse_ids(cols[0], p, ln, "tsv")
        pref = cols[1].strip()
        if not pref:
            raise row_error(p, ln, "tsv", "empty name")
        syns = unique_names(cols[2].split("|")) if len(cols) > 2 else []
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
        if not out:
            raise  # nothing to detect from: the decoding error (E157, file:line) is the real one
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
        if is_umls_dir(p):
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
        raise KBError(Errors.E002.format(path=p))
    if any(x.startswith("# The Comparative Toxicogenomics Database") or x.startswith("DiseaseName\tDiseaseID")
           or x.startswith("# DiseaseName\tDiseaseID") for x in head):
        return "ctd"
    if suffix == ".tsv":  # the name says so: a malformed row is the loader's E003 (file:line), not E100
        return "tsv"
    if "\t" in head[0]:
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
#: the bundled KB's parent links (from CTD's ``ParentIDs``; ``benchmarks/build_medic_hierarchy.py``)
DEFAULT_KB_PARENTS = "medic_06Jul2012.parents.tsv.gz"
#: the ``--kb`` value (and :func:`open_kb` spec) that names the bundled KB
DEFAULT_KB_SPEC = "default"


def default_kb() -> KnowledgeBase:
    """The bundled default KB: MEDIC (6 Jul 2012, BioSyn pre-processing), group ``Disorders``, with
    CTD's parent links (:mod:`genbel.kb.hierarchy`; they change neither ids nor names, nor the fingerprint).

    A fresh :class:`KnowledgeBase` is returned on every call (callers may augment it). See
    ``genbel/resources/kb/README.md`` for its source and terms of use (CTD, MeSH, OMIM).
    """
    from importlib.resources import as_file, files

    from genbel.kb.hierarchy import attach_parents, read_parents_file

    res = files("genbel") / "resources" / "kb"
    with as_file(res / DEFAULT_KB_RESOURCE) as path:
        kb = load_kb(path, "medic", name="MEDIC", group="Disorders")
    with as_file(res / DEFAULT_KB_PARENTS) as path:
        attach_parents(kb, read_parents_file(path))
    return kb


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
    "KB_FORMATS",
    "augment_kb",
    "default_kb",
    "detect_kb_format",
    "load_biosyn",
    "load_ctd",
    "load_jsonl",
    "load_kb",
    "load_medic",
    "load_tsv",
    "open_kb",
]
