"""Every document format genbel reads or writes, by name and by file extension: what ``genbel annotate``
takes and writes.

Input (:data:`INPUT_FORMATS`): ``text`` (plain text: a file, a folder of ``.txt`` files or ``-`` for
standard input; :mod:`genbel.data.text`), ``pubtator``, ``bigbio-json``, ``bigbio-jsonl``, ``bioc-xml``,
``bioc-json`` (:mod:`genbel.data.bioc`) and ``brat`` (a folder of ``.txt`` + ``.ann``,
:mod:`genbel.data.brat`). :func:`detect_input_format` tells them apart by content; a file that is none
of the annotated formats is plain text.

Output (:data:`OUTPUT_FORMATS`), chosen by name or by the extension of the output path
(:data:`OUTPUT_EXTENSIONS`): BigBio ``.json``/``.jsonl`` (with ranked candidates), ``.pubtator``,
BioC ``.xml``/``.bioc.json``, ``.csv``/``.tsv`` (:mod:`genbel.data.table`) and ``brat`` (a folder: a
path without extension). Every writer takes :class:`~genbel.data.model.Document` objects, linked
documents or the linked BigBio dicts of ``genbel link`` (:mod:`genbel.data.linked`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from genbel.data.linked import LinkedDocument, iter_linked
from genbel.data.model import Document
from genbel.errors import ConfigError, Errors, InputError
from genbel.textio import read_text

logger = logging.getLogger(__name__)

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_EXTENSIONS",
    "OUTPUT_FORMATS",
    "detect_input_format",
    "output_format_of",
    "read_documents",
    "write_documents",
]

INPUT_FORMATS: tuple[str, ...] = (
    "auto", "text", "pubtator", "bigbio-json", "bigbio-jsonl", "bioc-xml", "bioc-json", "brat",
)
OUTPUT_FORMATS: tuple[str, ...] = (
    "bigbio-json", "bigbio-jsonl", "pubtator", "bioc-xml", "bioc-json", "brat", "csv", "tsv",
)
#: output path suffix → format (the longest matching suffix wins: ``x.bioc.json`` is BioC JSON)
OUTPUT_EXTENSIONS: dict[str, str] = {
    ".json": "bigbio-json",
    ".jsonl": "bigbio-jsonl",
    ".ndjson": "bigbio-jsonl",
    ".pubtator": "pubtator",
    ".xml": "bioc-xml",
    ".bioc.xml": "bioc-xml",
    ".bioc.json": "bioc-json",
    ".csv": "csv",
    ".tsv": "tsv",
    "": "brat",
}
#: the formats whose output is a folder
FOLDER_FORMATS = frozenset({"brat"})
_ALIASES = {"json": "bigbio-json", "jsonl": "bigbio-jsonl", "bioc": "bioc-xml", "xml": "bioc-xml",
            "txt": "text", "plain": "text"}


def _canonical(fmt: str, known: tuple[str, ...], option: str) -> str:
    f = _ALIASES.get(fmt.lower(), fmt.lower())
    if f not in known:
        raise ConfigError(Errors.E022.format(value=fmt, field=option, known=", ".join(known)))
    return f


def detect_input_format(source: str | Path, encoding: str = "utf-8") -> str:
    """The format of ``source`` from its content: ``"-"`` (standard input) is text, a folder is brat
    when it holds ``.ann`` files and text otherwise; a file is BioC XML (``<``), BioC JSON (``infons``,
    ``bioctype`` or ``PubTator3`` keys), PubTator or BigBio JSON/JSONL
    (:func:`genbel.data.detect_corpus_format`), and plain text when none of these."""
    from genbel.data import detect_corpus_format
    from genbel.data.text import check_not_binary
    from genbel.errors import FormatError

    if str(source) == "-":
        return "text"
    p = Path(source)
    if p.is_dir():
        return "brat" if any(p.rglob("*.ann")) else "text"
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    if p.stat().st_size == 0:
        return "text"  # the text reader says it is empty (E520)
    check_not_binary(p, encoding)
    read_text(p, encoding=encoding, limit=1 << 16)  # undecodable bytes: E157 naming file:line
    try:
        return detect_corpus_format(p)
    except FormatError:
        return "text"


def read_documents(
    source: str | Path,
    fmt: str = "auto",
    *,
    keep_annotations: bool = False,
    split: str = "auto",
    encoding: str = "utf-8",
    stdin: TextIO | None = None,
) -> list[Document]:
    """The documents of ``source`` in format ``fmt`` (:data:`INPUT_FORMATS`; ``auto``: detected).

    The entities an annotated input already has are dropped unless ``keep_annotations`` (then they are
    the mentions to link, and their ids are kept as gold). ``split`` and ``stdin`` concern plain text
    (:func:`genbel.data.text.read_text_documents`); ``encoding`` is the input's text encoding.
    """
    from genbel.data import load_corpus
    from genbel.data.brat import read_brat
    from genbel.data.text import read_text_documents

    f = _canonical(fmt, INPUT_FORMATS, "--input-format")
    if f == "auto":
        f = detect_input_format(source, encoding)
        logger.info("%s: %s", source, f)
    if f == "text":
        docs = read_text_documents(source, split=split, encoding=encoding, stdin=stdin)
    elif f == "brat":
        docs = read_brat(source, encoding=encoding)
    else:
        docs = load_corpus(source, f, encoding=encoding)
    if not keep_annotations:
        n = sum(len(d.entities) for d in docs)
        if n:
            logger.info("%s: %d existing annotations ignored (keep them with keep_annotations)", source, n)
        docs = [Document(d.id, d.document_id, d.passages, []) for d in docs]
    if not docs:
        raise InputError(Errors.E522.format(path=source, reason="it holds no document"))
    return docs


def output_format_of(path: str | Path, fmt: str | None = None, option: str = "--output-format") -> str:
    """``fmt`` (one of :data:`OUTPUT_FORMATS`, E022 otherwise) or the format the name of ``path`` says
    (:data:`OUTPUT_EXTENSIONS`; E455 for another extension)."""
    if fmt:
        return _canonical(fmt, OUTPUT_FORMATS, option)
    name = Path(path).name.lower()
    for suffix in sorted((s for s in OUTPUT_EXTENSIONS if s), key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return OUTPUT_EXTENSIONS[suffix]
    if Path(path).suffix == "":
        return "brat"
    known = ", ".join(s or "(none: brat folder)" for s in OUTPUT_EXTENSIONS)
    raise ConfigError(Errors.E455.format(path=path, suffix=Path(path).suffix, known=known, option=option))


class _Raw:
    """A BigBio dict written as it is (keeps every key a linker added)."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self.obj = obj

    def to_dict(self) -> Mapping[str, Any]:
        return self.obj


def _as_bigbio(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]]) -> Iterable[Any]:
    for d in docs:
        yield _Raw(d) if isinstance(d, Mapping) else d


def _writer(fmt: str) -> Callable[[Iterable[Any], Path], None]:
    from genbel.data.bigbio import write_bigbio_json, write_bigbio_jsonl
    from genbel.data.bioc import write_bioc_json, write_bioc_xml
    from genbel.data.brat import write_brat
    from genbel.data.pubtator import write_pubtator
    from genbel.data.table import write_csv, write_tsv

    def pubtator(docs: Iterable[Any], path: Path) -> None:
        write_pubtator((ld.to_document() for ld in iter_linked(docs, str(path))), path)

    return {
        "bigbio-json": lambda docs, path: write_bigbio_json(_as_bigbio(docs), path),
        "bigbio-jsonl": lambda docs, path: write_bigbio_jsonl(_as_bigbio(docs), path),
        "pubtator": pubtator,
        "bioc-xml": write_bioc_xml,
        "bioc-json": write_bioc_json,
        "brat": write_brat,
        "csv": write_csv,
        "tsv": write_tsv,
    }[fmt]


def write_documents(
    docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str | Path, fmt: str | None = None
) -> str:
    """Write documents (linked or not) to ``path`` atomically in ``fmt`` or the format its name says
    (:func:`output_format_of`); returns the format."""
    f = output_format_of(path, fmt)
    _writer(f)(docs, Path(path))
    return f
