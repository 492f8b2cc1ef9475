"""Plain text in: a file, a folder of ``.txt`` files, or standard input, as :class:`Document` objects.

A text becomes one document (``split="file"``) or one document per paragraph (``split="paragraph"``:
paragraphs are separated by blank lines). ``split="auto"`` is ``file`` for a folder and ``paragraph``
for one file or standard input. A document's text is exactly the file's (or the paragraph's) text, so
the offsets of detected mentions are offsets into it; the text is never rewritten (line breaks, tabs and
non-ASCII characters are kept, only a UTF-8 byte-order mark is dropped).

Document ids: the file name without ``.txt`` (in a folder: the path relative to it, ``/`` kept); a
paragraph adds ``-p<n>`` (``notes-p2``, counted from 1 in the file); standard input is ``stdin``.

Errors: a missing file is E006, undecodable bytes E157 (``file:line``; pass ``encoding``), an empty file
E520, a binary file (a NUL byte) E521, a folder without ``.txt`` files or input without any text E522.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from genbel.data.model import Document, Passage
from genbel.errors import Errors, FormatError, InputError
from genbel.textio import read_text

logger = logging.getLogger(__name__)

__all__ = ["STDIN", "TEXT_SPLITS", "TEXT_SUFFIXES", "check_not_binary", "iter_text_documents", "read_text_documents", "text_documents"]

#: the source name that means standard input
STDIN = "-"
#: how a text is cut into documents
TEXT_SPLITS: tuple[str, ...] = ("auto", "file", "paragraph")
#: the files of a folder that are read
TEXT_SUFFIXES: tuple[str, ...] = (".txt",)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def _check_split(split: str) -> None:
    if split not in TEXT_SPLITS:
        raise InputError(Errors.E154.format(value=split, option="split", known=", ".join(TEXT_SPLITS)))


def check_not_binary(path: str | Path, encoding: str = "utf-8") -> None:
    """E521 when the first 8 KiB of the file hold a NUL byte (an image, a PDF, a zip …), which no text in
    an 8-bit or UTF-8 encoding has; UTF-16/32 text is not checked."""
    if encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32", "utf16", "utf32")):
        return
    with open(path, "rb") as fh:
        head = fh.read(8192)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise InputError(Errors.E521.format(path=path, offset=nul))


def _check_text(text: str, path: str) -> None:
    nul = text.find("\x00")
    if nul >= 0:
        raise InputError(Errors.E521.format(path=path, offset=len(text[:nul].encode("utf-8"))))
    if not text.strip():
        raise InputError(Errors.E520.format(path=path))


def text_documents(text: str, doc_id: str, split: str = "file") -> list[Document]:
    """The documents of one text: the whole text (``file``) or each non-blank paragraph (``paragraph``)."""
    _check_split(split)
    if split != "paragraph":
        return [_document(doc_id, text)] if text.strip() else []
    docs: list[Document] = []
    start = 0
    n = 0
    for m in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = m.start() if m is not None else len(text)
        para = text[start:end]
        para = para.strip()  # a paragraph's text, without the whitespace around it
        if para:
            n += 1
            docs.append(_document(f"{doc_id}-p{n}", para))
        if m is not None:
            start = m.end()
    return docs


def _read_stdin(encoding: str) -> str:
    """Standard input decoded as ``encoding`` (bad bytes: E157 naming the line, NUL bytes: E521)."""
    data = sys.stdin.buffer.read()
    if b"\x00" in data[:8192] and not encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        raise InputError(Errors.E521.format(path="<stdin>", offset=data.find(b"\x00")))
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        raise FormatError(Errors.E157.format(
            path="<stdin>", line=line, encoding=encoding, data=data[e.start:e.start + 4], offset=e.start - start,
            reason=e.reason,
        )) from None
    except LookupError:
        raise InputError(Errors.E154.format(value=encoding, option="encoding", known="a Python codec name")) from None


def _document(doc_id: str, text: str) -> Document:
    return Document(doc_id, doc_id, [Passage(f"{doc_id}-text", "text", [text], [(0, len(text))])], [])


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _doc_id(path: Path, root: Path | None) -> str:
    rel = path.relative_to(root) if root is not None else Path(path.name)
    return rel.with_suffix("").as_posix() if rel.suffix.lower() in TEXT_SUFFIXES else rel.as_posix()


def iter_text_documents(
    source: str | Path, *, split: str = "auto", encoding: str = "utf-8", stdin: TextIO | None = None
) -> Iterator[Document]:
    """The documents of ``source`` (a file, a folder of ``.txt`` files, or ``"-"`` for standard input),
    one file at a time. See the module documentation for ``split``, ids and errors."""
    _check_split(split)
    if str(source) == STDIN:
        text = (_read_stdin(encoding) if stdin is None else stdin.read()).removeprefix("\ufeff")
        _check_text(text, "<stdin>")
        yield from text_documents(text, "stdin", "file" if split == "file" else "paragraph")
        return
    p = Path(source)
    if p.is_dir():
        files = _files(p)
        if not files:
            raise InputError(Errors.E522.format(path=p, reason="the folder holds no .txt file"))
        mode = "file" if split == "auto" else split
        for f in files:
            check_not_binary(f, encoding)
            text = read_text(f, encoding=encoding)
            _check_text(text, str(f))
            yield from text_documents(text, _doc_id(f, p), mode)
        return
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    check_not_binary(p, encoding)
    text = read_text(p, encoding=encoding)
    _check_text(text, str(p))
    yield from text_documents(text, _doc_id(p, None), "paragraph" if split == "auto" else split)


def read_text_documents(
    source: str | Path, *, split: str = "auto", encoding: str = "utf-8", stdin: TextIO | None = None
) -> list[Document]:
    """:func:`iter_text_documents` as a list; E522 when no document has any text."""
    docs = list(iter_text_documents(source, split=split, encoding=encoding, stdin=stdin))
    if not docs:
        raise InputError(Errors.E522.format(path=source, reason="no text"))
    seen: set[str] = set()
    for d in docs:
        if d.document_id in seen:  # e.g. notes.txt and notes.TXT
            raise InputError(Errors.E522.format(path=source, reason=f"two documents are named {d.document_id!r}"))
        seen.add(d.document_id)
    logger.info("%s: %d text documents", source, len(docs))
    return docs
