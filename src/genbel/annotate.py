"""Raw text to linked concepts: what ``genbel annotate`` does, for Python users.

1. **Read** documents in any input format (:func:`genbel.data.formats.read_documents`: plain text, PubTator,
   BigBio, BioC XML/JSON, brat); their own annotations are dropped unless ``keep_annotations``.
2. **Detect** mentions (:func:`detect_mentions`, a :class:`genbel.ner.Detector`; by default
   :func:`genbel.ner.default_detector`). Long texts are cut into windows of at most
   :data:`WINDOW_CHARS` characters at whitespace, so a 50 MB single line is detected in bounded memory;
   offsets stay offsets into the whole text.
3. **Link** each mention (:meth:`genbel.linkers.Linker.link_documents`, by default
   :func:`genbel.linkers.default.default_linker`), with abbreviations written out: a short form defined in
   the document (``... polyposis coli (APC) ...``) is linked as its long form.
4. **Write** in any output format (:func:`genbel.data.formats.write_documents`), each entity with its
   offsets, type, top concept (id, preferred name from the KB, score) and ranked candidates.

:func:`annotate_to_file` streams: documents are detected and linked in chunks and appended to
``OUT.partial`` (:func:`genbel.pipeline.link_to_file`, which also resumes an interrupted run: E456 when
the settings differ), and ``OUT`` is written in its format when all are done. :func:`annotate` does the
same in memory and returns the linked documents.

Example::

    from genbel.annotate import annotate
    from genbel.kb import open_kb

    kb = open_kb("default")                                   # the bundled MEDIC KB
    [doc] = annotate(["Familial adenomatous polyposis (FAP) is an inherited cancer syndrome."], kb,
                     detector="dictionary", linker="tfidf")
    for ent in doc.entities:
        print(ent.entity.start, ent.entity.end, ent.entity.text, ent.top.id, ent.top.name, ent.top.score)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genbel.data.formats import FOLDER_FORMATS, output_format_of, write_documents
from genbel.data.linked import LinkedDocument
from genbel.data.model import Document, Entity, Passage
from genbel.pipeline import link_to_file, linked_documents

if TYPE_CHECKING:
    from genbel.kb.base import KnowledgeBase
    from genbel.linkers.base import Linker
    from genbel.ner.base import Detector

logger = logging.getLogger(__name__)

__all__ = [
    "WINDOW_CHARS",
    "AnnotateRun",
    "add_preferred_names",
    "annotate",
    "annotate_to_file",
    "detect_mentions",
    "documents_digest",
    "make_detector",
    "make_linker",
]

#: the longest text given to a detector at once; longer texts are cut at whitespace
WINDOW_CHARS = 100_000
#: documents linked (and appended to the partial output) at a time
CHUNK_DOCUMENTS = 32


def make_detector(spec: str | Detector, kb: KnowledgeBase | None) -> Detector:
    """The detector ``spec`` names (``default``, ``dictionary``, ``tagger[:PATH]``, ``combined``)."""
    from genbel.ner import create_detector

    return create_detector(spec, kb)


def make_linker(spec: str | Linker, kb: KnowledgeBase, **options: Any) -> Linker:
    """The linker ``spec`` names; ``default`` is :func:`genbel.linkers.default.default_linker`."""
    from genbel.linkers.base import Linker as _Linker

    if isinstance(spec, _Linker):
        return spec
    if spec == "default":
        from genbel.linkers.default import default_linker

        return default_linker(kb)
    from genbel.linkers.registry import create_linker

    return create_linker(spec, kb, **options)


def _windows(text: str, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` pieces of ``text`` of at most ``size`` characters, cut after whitespace."""
    if len(text) <= size:
        return [(0, len(text))]
    out = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start + size // 2:
                end = cut + 1
        out.append((start, end))
        start = end
    return out


def detect_mentions(
    docs: Sequence[Document], detector: Detector, *, window: int = WINDOW_CHARS
) -> list[Document]:
    """Copies of ``docs`` whose entities are the mentions ``detector`` finds in their text
    (ids ``T1``, ``T2`` … in text order; type = the span's type)."""
    pieces: list[tuple[int, int, int]] = []  # (doc index, start, end)
    texts = [d.text for d in docs]
    for i, text in enumerate(texts):
        pieces.extend((i, s, e) for s, e in _windows(text, window))
    found = detector.detect_batch([texts[i][s:e] for i, s, e in pieces])
    spans: list[list[tuple[int, int, str]]] = [[] for _ in docs]
    for (i, s, _e), hits in zip(pieces, found):
        spans[i].extend((s + h.start, s + h.end, h.type) for h in hits)
    out = []
    for d, text, found_spans in zip(docs, texts, spans):
        entities = [
            Entity(f"T{n}", etype, [text[s:e]], [(s, e)])
            for n, (s, e, etype) in enumerate(sorted(found_spans), 1)
        ]
        out.append(Document(d.id, d.document_id, d.passages, entities))
    return out


def add_preferred_names(docs: Iterable[dict], kb: KnowledgeBase) -> Iterable[dict]:
    """Linked BigBio dicts whose candidates carry ``preferred_name`` (the concept's name in ``kb``) when
    the linker did not say which name it gives (a candidate with ``matched`` has its preferred name as
    ``name``; without it, ``name`` may be the synonym the linker matched)."""
    for d in docs:
        for e in d.get("entities", []):
            for c in e.get("candidates", []):
                if "preferred_name" not in c and "matched" not in c:
                    concept = kb.get(c["code"])
                    c["preferred_name"] = concept.name if concept is not None else c.get("name", "")
        yield d


def documents_digest(docs: Sequence[Document]) -> str:
    """sha256 over the documents' ids, texts and given entities (what a resumed run must find again)."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.document_id.encode("utf-8", "surrogatepass") + b"\x00")
        h.update(d.text.encode("utf-8", "surrogatepass") + b"\x01")
        for e in d.entities:
            h.update(f"{e.offsets}{e.type}".encode() + b"\x02")
    return h.hexdigest()


@dataclass
class AnnotateRun:
    """What :func:`annotate_to_file` did."""

    out: Path
    format: str
    n_documents: int
    n_mentions: int
    n_characters: int
    resumed: int


def annotate_to_file(
    docs: Sequence[Document],
    out: str | Path,
    *,
    kb: KnowledgeBase,
    linker: Linker,
    detector: Detector | None = None,
    fmt: str | None = None,
    k: int = 5,
    expand_abbreviations: bool = True,
    settings: Mapping[str, Any] | None = None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    chunk_documents: int = CHUNK_DOCUMENTS,
) -> AnnotateRun:
    """Detect (unless ``detector`` is ``None``: the documents' own entities are linked), link and write
    ``docs`` to ``out`` in ``fmt`` (default: its extension's format, :func:`output_format_of`).

    Streams through ``OUT.partial`` and resumes with ``resume`` as :func:`genbel.pipeline.link_to_file`;
    ``settings`` (the caller's record of input, KB, detector, linker …) must then equal the earlier run's.
    """
    out = Path(out)
    f = output_format_of(out, fmt)
    record = dict(settings or {})
    record.update({
        "command": "annotate",
        "documents_sha256": documents_digest(docs),
        "output_format": f,
        "detector": detector.describe() if detector is not None else None,
    })

    def prepare(chunk: list[Document]) -> list[Document]:
        return detect_mentions(chunk, detector) if detector is not None else chunk

    def write(linked: Iterable[dict], path: Path) -> None:
        write_documents(add_preferred_names(linked, kb), path, f)

    run = link_to_file(
        docs, linker, out, kb_name=kb.name, k=k, expand_abbreviations=expand_abbreviations,
        settings=record, resume=resume, chunk_mentions=chunk_documents, progress=progress,
        prepare=prepare, write=write,
    )
    chars = sum(len(d.text) for d in docs[run.resumed:])
    return AnnotateRun(out, f, run.n_documents, run.n_mentions, chars, run.resumed)


def _as_documents(items: Iterable[str | Document]) -> list[Document]:
    out = []
    for i, item in enumerate(items, 1):
        if isinstance(item, Document):
            out.append(item)
        else:
            doc_id = str(i)
            out.append(Document(doc_id, doc_id, [Passage(f"{doc_id}-text", "text", [item], [(0, len(item))])]))
    return out


def annotate(
    texts: Iterable[str | Document],
    kb: KnowledgeBase,
    *,
    detector: str | Detector = "default",
    linker: str | Linker = "default",
    k: int = 5,
    expand_abbreviations: bool = True,
) -> list[LinkedDocument]:
    """Detect and link the mentions of ``texts`` (strings or documents) in memory.

    Each result's :attr:`~genbel.data.linked.LinkedDocument.entities` hold the mentions with offsets
    into the text, type, top concept (``.top``: id, preferred name, score) and ranked candidates.
    """
    docs = detect_mentions(_as_documents(texts), make_detector(detector, kb))
    lk = make_linker(linker, kb)
    results = lk.link_documents(docs, k=k, expand_abbreviations=expand_abbreviations)
    dicts = add_preferred_names(linked_documents(docs, results, kb.name), kb)
    return [LinkedDocument.from_dict(d, f"document #{i}") for i, d in enumerate(dicts)]


def is_folder_format(fmt: str) -> bool:
    """Whether the output of ``fmt`` is a folder (brat)."""
    return fmt in FOLDER_FORMATS
