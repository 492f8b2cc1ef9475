"""brat standoff: a folder with ``DOC.txt`` (the document text) and ``DOC.ann`` (its annotations) per document.

Written lines (https://brat.nlplab.org/standoff.html)::

    T1<TAB>Disease 10 23<TAB>breast cancer          (text-bound; a discontinuous one: "10 16;20 23")
    N1<TAB>Reference T1 MESH:D001943<TAB>Breast Neoplasms    (the top concept and its preferred name)
    #1<TAB>AnnotatorNotes T1<TAB>MESH:D001943 0.93 | MESH:D018567 0.41   (linked: the ranked candidates)

An id without a ``DB:`` prefix is written with the prefix :func:`genbel.data.pubtator.infer_db_name`
gives it. Line breaks in an entity's text are written as spaces (the offsets are into ``DOC.txt``, which
keeps them). A document id becomes a file name with ``/`` kept as sub-folders; a name that would leave the
folder is E526. :func:`read_brat` reads ``T`` and ``N`` lines back (other lines are skipped); a malformed
line is E524 naming ``file:line`` and an entity whose text differs from ``DOC.txt`` at its offsets is E005.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from genbel.data.linked import LinkedDocument, iter_linked
from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.data.pubtator import infer_db_name
from genbel.errors import Errors, FormatError, InputError
from genbel.io import atomic_directory
from genbel.textio import iter_lines, read_text

logger = logging.getLogger(__name__)

__all__ = ["brat_lines", "read_brat", "write_brat"]


def _ref(cid: str) -> str:
    return cid if ":" in cid else f"{infer_db_name(cid)}:{cid}"


def _flat(s: str) -> str:
    return s.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def brat_lines(ld: LinkedDocument, where: str = "<output>") -> list[str]:
    """The ``.ann`` lines of a (linked) document."""
    lines: list[str] = []
    n_ref = 0
    for i, le in enumerate(ld.entities, 1):
        e = le.entity
        etype = e.type.strip().replace(" ", "_") or "Entity"
        if any(c in etype for c in "\t\n\r;"):
            raise FormatError(Errors.E526.format(where=where, doc_id=ld.document.document_id, fmt="brat",
                                                 reason=f"entity type {e.type!r} holds a TAB, ';' or line break"))
        spans = ";".join(f"{s} {t}" for s, t in e.offsets)
        lines.append(f"T{i}\t{etype} {spans}\t{_flat(' '.join(e.text))}")
        concepts = le.concepts
        if concepts:
            n_ref += 1
            top = concepts[0]
            lines.append(f"N{n_ref}\tReference T{i} {_ref(top.id)}\t{_flat(top.name)}")
        if le.candidates:
            ranked = " | ".join(f"{_ref(c.id)} {c.score:.4g}" if c.score is not None else _ref(c.id)
                                for c in le.candidates)
            lines.append(f"#{i}\tAnnotatorNotes T{i}\t{ranked}")
    return lines


def _doc_path(root: Path, doc_id: str, where: str) -> Path:
    rel = PurePosixPath(doc_id)
    if not doc_id or rel.is_absolute() or ".." in rel.parts or any(c in doc_id for c in "\\\x00"):
        raise FormatError(Errors.E526.format(where=where, doc_id=doc_id, fmt="brat",
                                             reason="its id is not a relative file name"))
    return root.joinpath(*rel.parts)


def write_brat(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], folder: str | Path) -> None:
    """Write each document as ``DOC.txt`` + ``DOC.ann`` in ``folder`` (created, or replaced as a whole
    when it is an earlier brat output: the folder appears complete or not at all)."""
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise FormatError(Errors.E525.format(path=target, kind="file", fmt="brat",
                                             expected="a folder of .txt and .ann files"))
    if target.is_dir() and any(p for p in target.iterdir() if p.suffix not in (".txt", ".ann")):
        raise FormatError(Errors.E525.format(path=target, kind="folder holding other files than .txt/.ann",
                                             fmt="brat", expected="a folder of .txt and .ann files only"))
    with atomic_directory(target) as tmp:
        seen: set[str] = set()
        for ld in iter_linked(docs, str(target)):
            doc_id = ld.document.document_id
            base = _doc_path(tmp, doc_id, str(target))
            if doc_id in seen:
                raise FormatError(Errors.E526.format(where=str(target), doc_id=doc_id, fmt="brat",
                                                     reason="two documents have this id"))
            seen.add(doc_id)
            base.parent.mkdir(parents=True, exist_ok=True)
            txt = base.with_name(base.name + ".txt")
            text = ld.document.text
            # readers drop one leading BOM (read_text): a text that itself starts with U+FEFF gets one more
            with open(txt, "w", encoding="utf-8-sig" if text.startswith("\ufeff") else "utf-8", newline="") as fh:
                fh.write(text)
            with open(base.with_name(base.name + ".ann"), "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(line + "\n" for line in brat_lines(ld, f"{target}: document {doc_id}"))
    if not any(target.iterdir()):
        logger.warning("%s: no document was written", target)


def _read_ann(ann: Path, text: str, doc_id: str) -> list[Entity]:
    entities: dict[str, Entity] = {}
    for lineno, raw in enumerate(iter_lines(ann), 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        cols = line.split("\t")
        where = f"{ann}:{lineno}"
        if line.startswith("T"):
            if len(cols) < 3:
                raise FormatError(Errors.E524.format(where=where, reason="a T line has 3 TAB-separated columns"))
            etype, _, spans = cols[1].partition(" ")
            offsets: list[tuple[int, int]] = []
            try:
                for piece in spans.split(";"):
                    s, t = piece.split()
                    offsets.append((int(s), int(t)))
            except ValueError:
                raise FormatError(Errors.E524.format(where=where, reason=f"bad offsets {spans!r}")) from None
            for s, t in offsets:
                if not 0 <= s <= t <= len(text):
                    raise FormatError(Errors.E524.format(
                        where=where, reason=f"offsets {s}-{t} outside the text ({len(text)} characters)"))
            pieces = [text[s:t] for s, t in offsets]
            if len(offsets) == 1 and _flat(pieces[0]) != cols[2]:
                raise InputError(Errors.E005.format(where=where, entity_id=cols[0], start=offsets[0][0],
                                                    end=offsets[0][1], actual=pieces[0], expected=cols[2]))
            entities[cols[0]] = Entity(cols[0], etype, pieces, offsets)
        elif line.startswith("N"):
            parts = cols[1].split() if len(cols) > 1 else []
            if len(parts) != 3 or parts[1] not in entities:
                raise FormatError(Errors.E524.format(
                    where=where, reason="an N line is 'N<n><TAB>Reference T<n> DB:ID<TAB>name' after its T line"))
            ref = parts[2]
            db, _, rid = ref.partition(":")
            entities[parts[1]].normalized.append(Normalization(db if rid else infer_db_name(ref), ref))
    return list(entities.values())


def read_brat(folder: str | Path, *, encoding: str = "utf-8") -> list[Document]:
    """The documents of a brat folder: every ``DOC.txt`` with its ``DOC.ann`` (an absent ``.ann``: no entity)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(Errors.E006.format(path=root))
    docs = []
    for txt in sorted(root.rglob("*.txt")):
        doc_id = txt.relative_to(root).with_suffix("").as_posix()
        text = read_text(txt, encoding=encoding)
        doc = Document(doc_id, doc_id, [Passage(f"{doc_id}-text", "text", [text], [(0, len(text))])], [])
        ann = txt.with_suffix(".ann")
        if ann.is_file():
            doc.entities = _read_ann(ann, text, doc_id)
        docs.append(doc)
    if not docs:
        raise InputError(Errors.E522.format(path=root, reason="the folder holds no .txt file"))
    return docs
