"""Corpora: the BigBio KB document model, PubTator and BigBio JSON/JSONL readers and writers,
a registry of public datasets, abbreviation detection and bundled example documents.

>>> docs = example_documents()
>>> [d.document_id for d in docs]
['9427148', '9400934', '9856499']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from genbel.data.abbreviations import find_abbreviation_pairs, find_abbreviations
from genbel.data.bigbio import read_bigbio_json, read_bigbio_jsonl, write_bigbio_json, write_bigbio_jsonl
from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.data.pubtator import parse_pubtator, read_pubtator, write_pubtator
from genbel.data.registry import DATASETS, DatasetSpec, get_dataset, list_datasets, load_dataset
from genbel.errors import Errors, FormatError, InputError
from genbel.textio import read_text

logger = logging.getLogger(__name__)

__all__ = [
    "Document",
    "Entity",
    "Normalization",
    "Passage",
    "CORPUS_FORMATS",
    "detect_corpus_format",
    "LENIENT",
    "load_corpus",
    "load_documents",
    "write_corpus",
    "entity_has_type",
    "filter_entity_types",
    "parse_entity_types",
    "example_documents",
    "read_pubtator",
    "parse_pubtator",
    "write_pubtator",
    "read_bigbio_json",
    "read_bigbio_jsonl",
    "write_bigbio_json",
    "write_bigbio_jsonl",
    "find_abbreviations",
    "find_abbreviation_pairs",
    "DATASETS",
    "DatasetSpec",
    "get_dataset",
    "list_datasets",
    "load_dataset",
]

#: Corpus formats and their accepted spellings.
CORPUS_FORMATS: dict[str, str] = {
    "pubtator": "pubtator",
    "bigbio-json": "bigbio-json",
    "json": "bigbio-json",
    "bigbio": "bigbio-json",
    "bigbio-jsonl": "bigbio-jsonl",
    "jsonl": "bigbio-jsonl",
    "bioc-xml": "bioc-xml",
    "bioc": "bioc-xml",
    "bioc-json": "bioc-json",
}
#: reader options that tolerate the known quirks of public corpora (byte-identical duplicate
#: documents, mention offsets off by trailing spaces): see :func:`load_documents`
LENIENT: dict[str, str] = {"on_duplicate": "skip-identical", "offsets": "fix"}
_WRITE_EXTENSIONS = {
    ".json": "bigbio-json",
    ".jsonl": "bigbio-jsonl",
    ".pubtator": "pubtator",
    ".txt": "pubtator",
}
_SNIFF_BYTES = 1 << 16
_BIOC_JSON_HINT = re.compile(r'"(?:bioctype|infons|PubTator3)"\s*:')


def _canonical_format(fmt: str, path: str | Path) -> str:
    try:
        return CORPUS_FORMATS[fmt.lower()]
    except KeyError:
        raise FormatError(
            Errors.E154.format(
                value=fmt, option=f"the format of {path}", known=", ".join(sorted(set(CORPUS_FORMATS)))
            )
        ) from None


def detect_corpus_format(path: str | Path) -> str:
    """``"pubtator"``, ``"bigbio-json"`` or ``"bigbio-jsonl"`` from the start of the file's content.

    A first non-blank line ``PMID|t|…`` (or ``PMID|a|…``) means PubTator; ``[`` means BigBio JSON;
    ``{`` means JSONL when the first line is a complete JSON object, else JSON; BioC XML (``<`` and a
    ``<collection>``) and BioC JSON (``infons``, ``bioctype`` or ``PubTator3`` keys, see
    :mod:`genbel.data.bioc`) are ``"bioc-xml"`` and ``"bioc-json"``. ``.gz`` files are
    read through gzip. Raises E006 when the file is missing and E007 when none of these match.
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    head = read_text(p, limit=_SNIFF_BYTES)  # BOM dropped; bad bytes or a corrupt .gz: E157/E158
    stripped = head.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise FormatError(Errors.E016.format(path=p, reason="the file is empty"))
    first_line = stripped.split("\n", 1)[0].rstrip("\r")
    if stripped[0] == "<" and ("<collection" in stripped or "<document" in stripped):
        return "bioc-xml"
    if stripped[0] in "[{" and _BIOC_JSON_HINT.search(stripped):
        return "bioc-json"
    if stripped[0] == "[":
        return "bigbio-json"
    if stripped[0] == "{":
        try:
            obj = json.loads(first_line)
        except (ValueError, RecursionError):  # not one complete line (or too deep): the reader reports it
            return "bigbio-json"
        return "bigbio-jsonl" if isinstance(obj, dict) else "bigbio-json"
    cols = first_line.split("|", 2)
    if len(cols) == 3 and cols[1] in ("t", "a") and cols[0].strip() and "\t" not in cols[0]:
        return "pubtator"
    raise FormatError(Errors.E007.format(path=p))


def load_corpus(path: str | Path, format: str | None = None, **opts: Any) -> list[Document]:
    """Read a corpus file (PubTator, BigBio KB JSON/JSONL, BioC XML/JSON) into documents.

    Args:
        path: the file (``.gz`` PubTator files are decompressed).
        format: ``"pubtator"``, ``"bigbio-json"``/``"json"`` or ``"bigbio-jsonl"``/``"jsonl"``;
            detected from the content when ``None`` (see :func:`detect_corpus_format`).
        **opts: reader options: ``on_duplicate`` (``"error"`` | ``"skip-identical"``), ``offsets``
            (``"error"`` | ``"warn"`` | ``"fix"``), ``encoding``; PubTator also ``default_db``.
            The defaults are strict. The public NCBI-disease train file needs
            ``on_duplicate="skip-identical", offsets="fix"`` (see :mod:`genbel.data.pubtator`).

    Raises:
        InputError: E006 (missing file), E007 (unknown format) or a reader error naming file:line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    fmt = _canonical_format(format, p) if format else detect_corpus_format(p)
    if fmt == "pubtator":
        docs = read_pubtator(p, **opts)
    elif fmt in ("bioc-xml", "bioc-json"):
        from genbel.data.bioc import read_bioc_json, read_bioc_xml

        docs = (read_bioc_xml if fmt == "bioc-xml" else read_bioc_json)(p, **opts)
    else:
        if p.name.endswith(".gz"):
            raise FormatError(
                Errors.E016.format(path=p, reason="gzip-compressed BigBio JSON is not supported")
            )
        docs = (read_bigbio_jsonl if fmt == "bigbio-jsonl" else read_bigbio_json)(p, **opts)
    logger.info("%s (%s): %d documents, %d mentions", p, fmt, len(docs), sum(len(d.entities) for d in docs))
    return docs


def write_corpus(docs: Iterable[Document], path: str | Path, format: str | None = None) -> None:
    """Write documents atomically; the format comes from ``format`` or the extension
    (``.json`` BigBio JSON, ``.jsonl`` BigBio JSONL, ``.pubtator``/``.txt`` PubTator)."""
    p = Path(path)
    if format:
        fmt = _canonical_format(format, p)
    else:
        fmt = _WRITE_EXTENSIONS.get(p.suffix.lower(), "")
        if not fmt:
            raise FormatError(Errors.E007.format(path=p))
    if fmt == "pubtator":
        write_pubtator(docs, p)
    elif fmt == "bigbio-jsonl":
        write_bigbio_jsonl(docs, p)
    else:
        write_bigbio_json(docs, p)


def load_documents(
    sources: str | Path | Sequence[str | Path], data_dir: str | Path | None = None
) -> list[Document]:
    """Documents of one or several corpora, read leniently (:data:`LENIENT`).

    Training, KB augmentation, concept priors and the seen/unseen split read corpora this way;
    evaluation reads its test corpus strictly with :func:`load_corpus`. Each source is a corpus file
    (format detected) or, when no such file exists and ``data_dir`` is given, a registry dataset
    ``NAME:SPLIT`` read from ``data_dir/NAME`` (or ``data_dir`` itself) with :func:`load_dataset`.
    """
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    docs: list[Document] = []
    for spec in items:
        p = Path(spec)
        s = str(spec)
        if not p.exists() and ":" in s and data_dir is not None:
            name, _, split = s.partition(":")
            root = Path(data_dir)
            folder = root / name if (root / name).is_dir() else root
            docs.extend(load_dataset(name, split, folder))
        else:
            docs.extend(load_corpus(p, **LENIENT))
    return docs


def _types_of(entity: Entity) -> set[str]:
    return {t.strip() for t in entity.type.split(",")} | {entity.type}


def parse_entity_types(spec: str | Iterable[str] | None) -> list[str] | None:
    """``"Disease, Chemical"`` (a command-line value) or a list → the type names; ``None`` when empty."""
    if spec is None:
        return None
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    types = [t.strip() for t in parts if t.strip()]
    return types or None


def entity_has_type(entity: Entity, types: Collection[str]) -> bool:
    """genbel's one entity-type rule: whether ``entity`` is of one of ``types``.

    The entity's type column may list several types (MedMentions ``T116,T123``): the entity matches
    when its whole type or any of its comma-separated types is requested. Requested types are
    compared after stripping spaces.
    """
    wanted = {t.strip() for t in types}
    return bool(_types_of(entity) & wanted)


def filter_entity_types(
    docs: Sequence[Document], types: Iterable[str] | None, *, check: bool = True
) -> list[Document]:
    """Copies of ``docs`` keeping only entities of the given types (rule: :func:`entity_has_type`).

    ``types`` ``None`` or empty keeps every entity. Passages are shared with the input documents.
    With ``check`` (the default), a requested type that no entity has is logged, and E012 is raised
    when none of them occurs (a misspelt type would otherwise silently give an empty corpus);
    pass ``check=False`` for a batch of a larger corpus (a type may be absent from one batch).
    The evaluation harness, :func:`genbel.data.queries.queries_from_documents` (``genbel link``,
    training data) and the benchmarks all filter through this function.
    """
    wanted = {t.strip() for t in types or ()} - {""}
    if not wanted:
        return list(docs)
    if check:
        present: set[str] = set()
        for d in docs:
            for e in d.entities:
                present |= _types_of(e)
        if present and not wanted & present:
            raise InputError(
                Errors.E012.format(group=", ".join(sorted(wanted)), known=", ".join(sorted(present)))
            )
        for t in sorted(wanted - present):
            logger.warning("entity type %r occurs in none of the %d documents", t, len(docs))
    return [
        Document(d.id, d.document_id, d.passages, [e for e in d.entities if _types_of(e) & wanted])
        for d in docs
    ]


def example_documents() -> list[Document]:
    """Three NCBI-disease test abstracts with their gold annotations (bundled, public domain).

    PMIDs 9427148 (an abbreviation used throughout), 9400934 (composite mentions) and 9856499
    (OMIM ids); see ``genbel/resources/examples/README.md``.
    """
    res = resources.files("genbel") / "resources" / "examples" / "ncbi_examples.pubtator"
    return parse_pubtator(
        res.read_text(encoding="utf-8"), source="genbel/resources/examples/ncbi_examples.pubtator"
    )
