"""PubTator reader and writer (NCBI-disease, BC5CDR, MedMentions).

Format::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids[<TAB>individual mentions]
    PMID<TAB>CID<TAB>D1<TAB>D2          (relation rows: skipped)
    <blank line between documents>

The document text is ``title + " " + abstract``; the title passage has offsets ``[0, len(title)]``
and the abstract starts at ``len(title) + 1``. Entities get stable ids ``"<pmid>-<n>"`` (``n`` counts
the document's mention rows from 0). The id column is split on ``|`` and ``+``; every part becomes
one :class:`~genbel.data.model.Normalization` whose ``db_id`` is the part as written (surrounding
spaces stripped, prefix kept: ``MESH:C535662``, ``UMLS:C0010674``, ``OMIM:215600``, ``613097``,
``-1`` for NIL) and whose ``db_name`` is inferred from it (``MESH``, ``OMIM``, ``UMLS``).
:attr:`Entity.gold_ids <genbel.data.model.Entity.gold_ids>` turns these into canonical ids.

Known quirks of the public files and the options that handle them:

* NCBI-disease train holds PMID 8528200 twice, byte-identical → ``on_duplicate="skip-identical"``;
* one NCBI-disease train mention (PMID 10923035, line 3249) has two trailing spaces in its mention
  column, so its offsets (right for the text) give a string two characters shorter → ``offsets="fix"``.

The defaults (``on_duplicate="error"``, ``offsets="error"``) are strict; load the NCBI train file with
``read_pubtator(path, on_duplicate="skip-identical", offsets="fix")``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.errors import Errors, FormatError, InputError
from genbel.io import atomic_open
from genbel.textio import iter_lines

logger = logging.getLogger(__name__)

__all__ = [
    "read_pubtator",
    "parse_pubtator",
    "write_pubtator",
    "format_pubtator",
    "infer_db_name",
]

OnDuplicate = Literal["error", "skip-identical"]
OffsetMode = Literal["error", "warn", "fix"]
ON_DUPLICATE = ("error", "skip-identical")
OFFSET_MODES = ("error", "warn", "fix")
FIX_WINDOW = 50

_TEXT_LINE = re.compile(r"^([^|\t]+)\|([ta])\|(.*)$")
_ID_SPLIT = re.compile(r"[|+]")
_MESH_ID = re.compile(r"^[DC]\d{6}$|^D\d{9}$")
_UMLS_CUI = re.compile(r"^C\d{7}$")
_NIL = frozenset({"-1", "CUI-less", "NIL", "nil"})


def infer_db_name(raw_id: str, default: str = "MESH") -> str:
    """The knowledge base an id belongs to: ``MESH``, ``OMIM``, ``UMLS``, another prefix, or ``default``.

    >>> [infer_db_name(x) for x in ["D003924", "MESH:C535662", "613097", "OMIM:215600", "UMLS:C0010674"]]
    ['MESH', 'MESH', 'OMIM', 'OMIM', 'UMLS']
    """
    s = raw_id.strip()
    if ":" in s:
        prefix = s.split(":", 1)[0].upper()
        return prefix
    if s.isdigit():
        return "OMIM"
    if _UMLS_CUI.match(s):
        return "UMLS"
    if _MESH_ID.match(s):
        return "MESH"
    return default


def parse_ids(column: str, default_db: str = "MESH") -> list[Normalization]:
    """One :class:`Normalization` per ``|``/``+`` part of a PubTator id column (empty parts dropped)."""
    out: list[Normalization] = []
    for part in _ID_SPLIT.split(column):
        p = part.strip()
        if not p:
            continue
        db = default_db if p in _NIL else infer_db_name(p, default_db)
        out.append(Normalization(db, p))
    return out


class _DocBuilder:
    def __init__(self, pmid: str, line: int) -> None:
        self.pmid = pmid
        self.first_line = line
        self.title: str | None = None
        self.abstract: str | None = None
        self.rows: list[tuple[int, list[str]]] = []
        self.raw_lines: list[str] = []


def _check_option(value: str, option: str, known: Sequence[str]) -> None:
    if value not in known:
        raise InputError(Errors.E154.format(value=value, option=option, known=", ".join(known)))


def read_pubtator(
    path: str | Path,
    *,
    on_duplicate: OnDuplicate = "error",
    offsets: OffsetMode = "error",
    default_db: str = "MESH",
    encoding: str = "utf-8",
) -> list[Document]:
    """Read a PubTator file into :class:`Document` objects, in file order.

    Args:
        path: the PubTator file (gzip-compressed when the name ends with ``.gz``).
        on_duplicate: ``"error"`` (default) raises E004 for a repeated document id;
            ``"skip-identical"`` drops a repeat whose lines are identical to the first copy (with a
            warning) and raises E153 when the copies differ.
        offsets: what to do when ``text[start:end]`` differs from the mention column.
            ``"error"`` (default) raises E005 naming ``file:line`` and the entity; ``"warn"`` keeps the
            entity as written and logs a warning; ``"fix"`` re-anchors the mention (trimmed of
            surrounding whitespace if needed) to its nearest exact occurrence within ±50 characters
            of ``start``, logging it, and raises E005 when there is none.
        default_db: ``db_name`` for ids whose knowledge base cannot be inferred, and for ``-1``.
        encoding: file encoding.

    Raises:
        InputError: E006 (missing file), E003 (malformed row), E004/E153 (duplicates), E005 (offsets).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    # iter_lines: a leading BOM is dropped; bad bytes and corrupt .gz files raise E157/E158 (file:line)
    return parse_pubtator(
        iter_lines(p, encoding=encoding), source=str(p), on_duplicate=on_duplicate, offsets=offsets,
        default_db=default_db,
    )


def parse_pubtator(
    lines: Iterable[str] | str,
    *,
    source: str = "<input>",
    on_duplicate: OnDuplicate = "error",
    offsets: OffsetMode = "error",
    default_db: str = "MESH",
) -> list[Document]:
    """Parse PubTator lines (or one string); ``source`` names the input in error messages.

    See :func:`read_pubtator` for the options.
    """
    _check_option(on_duplicate, "on_duplicate", ON_DUPLICATE)
    _check_option(offsets, "offsets", OFFSET_MODES)
    if isinstance(lines, str):
        # lines end at "\n" only, as in files: str.splitlines() would also split at \x85, \u2028, ...
        lines = lines.removeprefix("\ufeff").split("\n")
    builders: list[_DocBuilder] = []
    cur: _DocBuilder | None = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            cur = None
            continue
        m = _TEXT_LINE.match(line)
        if m is not None:
            pmid, kind, body = m.group(1).strip(), m.group(2), m.group(3)
            if kind == "t":
                cur = _DocBuilder(pmid, lineno)
                builders.append(cur)
                cur.title = body
            else:
                if cur is None or cur.pmid != pmid:
                    raise FormatError(
                        Errors.E003.format(
                            path=source,
                            line=lineno,
                            fmt="PubTator",
                            reason=f"abstract of document {pmid!r} without a preceding title line",
                        )
                    )
                if cur.abstract is not None:
                    raise FormatError(
                        Errors.E003.format(
                            path=source,
                            line=lineno,
                            fmt="PubTator",
                            reason=f"second abstract line for document {pmid!r}",
                        )
                    )
                cur.abstract = body
            cur.raw_lines.append(line)
            continue
        cols = line.split("\t")
        if len(cols) < 4:
            raise FormatError(
                Errors.E003.format(
                    path=source,
                    line=lineno,
                    fmt="PubTator",
                    reason=f"expected 'PMID|t|title', 'PMID|a|abstract' or a TAB row, got {line[:80]!r}",
                )
            )
        pmid = cols[0].strip()
        if cur is None or cur.pmid != pmid:
            raise FormatError(
                Errors.E003.format(
                    path=source,
                    line=lineno,
                    fmt="PubTator",
                    reason=f"row for document {pmid!r} outside that document's block (title line missing?)",
                )
            )
        cur.raw_lines.append(line)
        if len(cols) == 4 and not cols[1].strip().lstrip("-").isdigit():
            continue  # relation row: PMID  CID  D1  D2
        if len(cols) not in (5, 6, 7):
            raise FormatError(
                Errors.E003.format(
                    path=source,
                    line=lineno,
                    fmt="PubTator",
                    reason=f"a mention row has 5-7 TAB-separated columns, this one has {len(cols)}",
                )
            )
        cur.rows.append((lineno, cols))

    docs: list[Document] = []
    seen: dict[str, _DocBuilder] = {}
    for b in builders:
        if b.pmid in seen:
            first = seen[b.pmid]
            if on_duplicate == "skip-identical":
                if first.raw_lines == b.raw_lines:
                    logger.warning(
                        "%s: document %s at line %d is an exact duplicate of line %d; skipped (%d mentions)",
                        source,
                        b.pmid,
                        b.first_line,
                        first.first_line,
                        len(b.rows),
                    )
                    continue
                raise InputError(
                    Errors.E153.format(
                        path=source, doc_id=b.pmid, first_line=first.first_line, line=b.first_line
                    )
                )
            raise InputError(
                Errors.E004.format(path=source, doc_id=b.pmid, first_line=first.first_line, line=b.first_line)
            )
        seen[b.pmid] = b
        docs.append(_build(b, source, offsets, default_db))
    logger.debug("%s: %d documents, %d mentions", source, len(docs), sum(len(d.entities) for d in docs))
    return docs


def _int(value: str, source: str, lineno: int, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise FormatError(
            Errors.E003.format(
                path=source, line=lineno, fmt="PubTator", reason=f"{name} {value!r} is not an integer"
            )
        ) from None


def _build(b: _DocBuilder, source: str, offsets: str, default_db: str) -> Document:
    title = b.title or ""
    passages = [Passage(f"{b.pmid}-title", "title", [title], [(0, len(title))])]
    text = title
    if b.abstract is not None:
        start = len(title) + 1
        passages.append(
            Passage(f"{b.pmid}-abstract", "abstract", [b.abstract], [(start, start + len(b.abstract))])
        )
        text = title + " " + b.abstract
    entities: list[Entity] = []
    for n, (lineno, cols) in enumerate(b.rows):
        start = _int(cols[1], source, lineno, "start offset")
        end = _int(cols[2], source, lineno, "end offset")
        if start < 0 or end < start:
            raise FormatError(
                Errors.E003.format(
                    path=source, line=lineno, fmt="PubTator", reason=f"invalid offsets {start}-{end}"
                )
            )
        mention = cols[3]
        etype = cols[4].strip()
        norms = parse_ids(cols[5], default_db) if len(cols) >= 6 else []
        eid = f"{b.pmid}-{n}"
        if text[start:end] != mention:
            start, end, mention = _resolve_offsets(
                text, start, end, mention, offsets, f"{source}:{lineno}", eid
            )
        entities.append(Entity(eid, etype, [mention], [(start, end)], norms))
    return Document(b.pmid, b.pmid, passages, entities)


def _resolve_offsets(
    text: str, start: int, end: int, mention: str, mode: str, loc: str, eid: str
) -> tuple[int, int, str]:
    err = InputError(
        Errors.E005.format(
            where=loc, entity_id=eid, start=start, end=end, actual=text[start:end], expected=mention
        )
    )
    if mode == "error":
        raise err
    if mode == "warn":
        logger.warning("%s (kept as written)", err)
        return start, end, mention
    best: tuple[int, int, str] | None = None
    for cand in dict.fromkeys([mention, mention.strip()]):
        if not cand:
            continue
        lo = max(0, start - FIX_WINDOW)
        hi = min(len(text), start + FIX_WINDOW + len(cand))
        pos = text.find(cand, lo, hi)
        while pos >= 0:
            if best is None or abs(pos - start) < abs(best[0] - start):
                best = (pos, pos + len(cand), cand)
            pos = text.find(cand, pos + 1, hi)
    if best is None:
        raise err
    logger.warning(
        "%s: entity %r re-anchored from %d-%d %r to %d-%d %r",
        loc,
        eid,
        start,
        end,
        mention,
        best[0],
        best[1],
        best[2],
    )
    return best


# --------------------------------------------------------------------------- writing


def _split_title_abstract(doc: Document) -> tuple[str, str]:
    text = doc.text
    titles = [p for p in doc.passages if p.type == "title" and p.offsets and p.offsets[0][0] == 0]
    first = (
        titles[0] if titles else (min(doc.passages, key=lambda p: p.offsets[0][0]) if doc.passages else None)
    )
    title_len = first.offsets[-1][1] if first is not None and first.offsets[0][0] == 0 else len(text)
    if title_len < len(text) and text[title_len] != " ":
        title_len = len(
            text
        )  # no separator to stand for the PubTator space: keep everything on the title line
    return text[:title_len], text[title_len + 1 :]


def format_pubtator(docs: Iterable[Document], path: str = "<output>") -> str:
    """PubTator text for ``docs`` (see :func:`write_pubtator`)."""
    return "\n".join(_pubtator_chunks(docs, path))


def _pubtator_chunks(docs: Iterable[Document], path: str) -> Iterator[str]:
    for doc in docs:
        pmid = doc.document_id
        title, abstract = _split_title_abstract(doc)
        title = title.replace("\r", " ").replace("\n", " ")
        abstract = abstract.replace("\r", " ").replace("\n", " ")
        text = doc.text
        lines = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
        for e in doc.entities:
            start, end = e.start, e.end
            if len(e.offsets) == 1:
                mention = e.text[0]
            else:
                mention = text[start:end]
                logger.warning(
                    "%s: discontinuous entity %r of document %s written as its covering span %d-%d %r",
                    path,
                    e.id,
                    pmid,
                    start,
                    end,
                    mention,
                )
            for field_name, value in (("mention", mention), ("type", e.type)):
                if any(c in value for c in "\t\n\r"):
                    raise InputError(
                        Errors.E152.format(
                            where=f"{path}: document {pmid}",
                            entity_id=e.id,
                            reason=f"its {field_name} {value!r} contains a TAB or line break",
                        )
                    )
            ids = "|".join(n.db_id.strip() for n in e.normalized) or "-1"
            lines.append(f"{pmid}\t{start}\t{end}\t{mention}\t{e.type}\t{ids}")
        yield "\n".join(lines) + "\n"


def write_pubtator(docs: Iterable[Document], path: str | Path) -> None:
    """Write documents as PubTator (atomically).

    The title line holds the text of the passage at offset 0 (the ``title`` passage when there is
    one) and the abstract line the rest of :attr:`Document.text` after one separating character, so
    entity offsets are unchanged. Line breaks inside the text become spaces (same length). Ids are
    joined with ``|``; an entity without normalization is written as ``-1``. A discontinuous
    entity is written as its covering span (with a warning). Relation rows and the composite
    7th column are not written.
    """
    with atomic_open(path) as fh:
        for i, chunk in enumerate(_pubtator_chunks(docs, str(path))):
            if i:
                fh.write("\n")
            fh.write(chunk)
