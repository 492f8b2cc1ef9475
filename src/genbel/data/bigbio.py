"""BigBio KB JSON / JSONL reader and writer.

A BigBio KB document is a JSON object::

    {"id": "...", "document_id": "...",
     "passages": [{"id", "type", "text": [str], "offsets": [[start, end]]}],
     "entities": [{"id", "type", "text": [str], "offsets": [[start, end], ...],
                   "normalized": [{"db_name", "db_id"}]}],
     "events": [], "coreferences": [], "relations": []}

A ``.json`` file holds a list of documents (or a single document); a ``.jsonl`` file holds one
document per line. ``events``, ``coreferences`` and ``relations`` are not used for linking; they are
ignored when read and written as empty lists. Entity offsets are checked against
:attr:`Document.text <genbel.data.model.Document.text>` (E005); missing fields raise E014 naming the
document and field; invalid JSON raises E013 naming ``file:line``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.data.pubtator import OFFSET_MODES, ON_DUPLICATE, _check_option, _resolve_offsets
from genbel.errors import Errors, FormatError, InputError
from genbel.io import atomic_open
from genbel.textio import iter_lines, loads_json, read_text

logger = logging.getLogger(__name__)

__all__ = [
    "read_bigbio",
    "read_bigbio_json",
    "read_bigbio_jsonl",
    "write_bigbio_json",
    "write_bigbio_jsonl",
    "document_from_dict",
]


def _require(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict):
        raise FormatError(
            Errors.E016.format(path=where, reason=f"expected a JSON object, got {type(obj).__name__}")
        )
    if key not in obj or obj[key] is None:
        raise FormatError(Errors.E014.format(where=where, field=key))
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(
            Errors.E016.format(
                path=where, reason=f"field {key!r} must be {names}, got {type(value).__name__}"
            )
        )
    return value


def _texts(value: Any, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise FormatError(
            Errors.E016.format(path=where, reason="field 'text' must be a string or a list of strings")
        )
    return list(items)


def _offsets(value: Any, where: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for o in value:
        if (
            not isinstance(o, list | tuple)
            or len(o) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in o)
            or o[0] < 0
            or o[1] < o[0]
        ):
            raise FormatError(
                Errors.E016.format(
                    path=where, reason=f"field 'offsets' must hold [start, end] integer pairs, got {o!r}"
                )
            )
        out.append((o[0], o[1]))
    return out


#: Characters of a document text that passages may leave uncovered (padded with spaces): far more than
#: any real separator, and a bound on the memory that offsets such as [10**12, 10**12 + 3] would take.
MAX_PASSAGE_GAP = 1_000_000


def _check_gaps(passages: list[Passage], loc: str) -> None:
    covered = sum(len(t) for p in passages for t in p.text)
    for i, p in enumerate(passages):
        for s, e in p.offsets:
            if e - covered > MAX_PASSAGE_GAP:
                raise FormatError(
                    Errors.E016.format(
                        path=f"{loc} passage #{i}",
                        reason=f"offsets {s}-{e} leave more than {MAX_PASSAGE_GAP:,} characters without text",
                    )
                )


def document_from_dict(obj: Any, where: str = "<input>", offsets: str = "error") -> Document:
    """Build and validate a :class:`Document` from a BigBio KB dict.

    ``where`` locates the object in error messages (``file:line`` or ``file: document #i``);
    ``offsets`` is ``"error"``, ``"warn"`` or ``"fix"`` as in :func:`genbel.data.pubtator.read_pubtator`.
    """
    _check_option(offsets, "offsets", OFFSET_MODES)
    if not isinstance(obj, dict):
        raise FormatError(
            Errors.E016.format(path=where, reason=f"expected a JSON object, got {type(obj).__name__}")
        )
    raw_doc_id = obj.get("document_id", obj.get("id"))
    if raw_doc_id is None:
        raise FormatError(Errors.E014.format(where=where, field="document_id"))
    doc_id = str(raw_doc_id)
    loc = f"{where} (document {doc_id})"
    passages: list[Passage] = []
    for i, p in enumerate(_require(obj, "passages", loc, list)):
        ploc = f"{loc} passage #{i}"
        texts = _texts(_require(p, "text", ploc, (list, str)), ploc)
        offs = _offsets(_require(p, "offsets", ploc, list), ploc)
        if len(texts) != len(offs):
            raise FormatError(
                Errors.E016.format(path=ploc, reason=f"{len(texts)} text pieces but {len(offs)} offsets")
            )
        for t, (s, e) in zip(texts, offs, strict=False):
            if e - s != len(t):
                raise FormatError(
                    Errors.E016.format(
                        path=ploc, reason=f"offsets {s}-{e} span {e - s} characters, text has {len(t)}"
                    )
                )
        passages.append(Passage(str(p.get("id", f"{doc_id}-p{i}")), str(p.get("type", "")), texts, offs))
    _check_gaps(passages, loc)
    doc = Document(str(obj.get("id", doc_id)), doc_id, passages, [])
    text = doc.text
    for i, e in enumerate(_require(obj, "entities", loc, list)):
        eloc = f"{loc} entity #{i}"
        eid = str(_require(e, "id", eloc, (str, int)))
        eloc = f"{loc} entity {eid!r}"
        etype = str(_require(e, "type", eloc, str))
        texts = _texts(_require(e, "text", eloc, (list, str)), eloc)
        offs = _offsets(_require(e, "offsets", eloc, list), eloc)
        if not offs or len(texts) != len(offs):
            raise FormatError(
                Errors.E016.format(path=eloc, reason=f"{len(texts)} text pieces but {len(offs)} offsets")
            )
        norms: list[Normalization] = []
        # genbel's own linked output (``genbel link``/``annotate``): ``normalized`` is the prediction and the
        # corpus' annotation, if it had one, was kept as ``gold_normalized`` (genbel.data.linked) — read that,
        # so evaluating or re-linking a linked file never takes predictions for gold.
        linked = "candidates" in e
        field_name = "gold_normalized" if linked else "normalized"
        raw_norms = e.get(field_name)
        if raw_norms is not None and not isinstance(raw_norms, list):
            raise FormatError(
                Errors.E016.format(
                    path=eloc, reason=f"field {field_name!r} must be list, got {type(raw_norms).__name__}"
                )
            )
        for j, n in enumerate(raw_norms or []):
            nloc = f"{eloc} {field_name} #{j}"
            norms.append(
                Normalization(
                    str(_require(n, "db_name", nloc, str)), str(_require(n, "db_id", nloc, (str, int)))
                )
            )
        fixed_texts: list[str] = []
        fixed_offs: list[tuple[int, int]] = []
        for piece, (s, t) in zip(texts, offs, strict=False):
            if text[s:t] != piece:
                s, t, piece = _resolve_offsets(text, s, t, piece, offsets, loc, eid)
            fixed_texts.append(piece)
            fixed_offs.append((s, t))
        doc.entities.append(Entity(eid, etype, fixed_texts, fixed_offs, norms))
    return doc


def _check_duplicates(
    docs: list[Document], where_of: list[str], path: str, on_duplicate: str
) -> list[Document]:
    _check_option(on_duplicate, "on_duplicate", ON_DUPLICATE)
    seen: dict[str, int] = {}
    out: list[Document] = []
    for i, d in enumerate(docs):
        if d.document_id in seen:
            j = seen[d.document_id]
            if on_duplicate == "skip-identical" and docs[j].to_dict() == d.to_dict():
                logger.warning(
                    "%s: document %s is an exact duplicate of %s; skipped",
                    where_of[i],
                    d.document_id,
                    where_of[j],
                )
                continue
            raise InputError(
                Errors.E016.format(
                    path=path,
                    reason=(
                        f"duplicate document id {d.document_id!r} ({where_of[j]} and {where_of[i]})"
                        + (" with different content" if on_duplicate == "skip-identical" else "")
                    ),
                )
            )
        seen[d.document_id] = i
        out.append(d)
    return out


def read_bigbio_json(
    path: str | Path, *, on_duplicate: str = "error", offsets: str = "error", encoding: str = "utf-8"
) -> list[Document]:
    """Read a BigBio KB ``.json`` file: a list of documents or one document."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    data = loads_json(read_text(p, encoding=encoding), p)
    if isinstance(data, dict) and "passages" not in data and isinstance(data.get("documents"), list):
        data = data["documents"]
    items = data if isinstance(data, list) else [data]
    wheres = [f"{p}: document #{i}" for i in range(len(items))]
    docs = [document_from_dict(obj, w, offsets) for obj, w in zip(items, wheres, strict=False)]
    return _check_duplicates(docs, wheres, str(p), on_duplicate)


def read_bigbio_jsonl(
    path: str | Path, *, on_duplicate: str = "error", offsets: str = "error", encoding: str = "utf-8"
) -> list[Document]:
    """Read a BigBio KB ``.jsonl`` file: one document per line (blank lines are skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    docs: list[Document] = []
    wheres: list[str] = []
    for lineno, line in enumerate(iter_lines(p, encoding=encoding), 1):
        if not line.strip():
            continue
        obj = loads_json(line, p, lineno)
        w = f"{p}:{lineno}"
        docs.append(document_from_dict(obj, w, offsets))
        wheres.append(w)
    return _check_duplicates(docs, wheres, str(p), on_duplicate)


def read_bigbio(path: str | Path, **opts: Any) -> list[Document]:
    """Read BigBio KB JSONL when the name ends with ``.jsonl``, else BigBio KB JSON."""
    p = Path(path)
    if p.name.lower().endswith(".jsonl"):
        return read_bigbio_jsonl(p, **opts)
    return read_bigbio_json(p, **opts)


def write_bigbio_json(docs: Iterable[Document], path: str | Path) -> None:
    """Write documents as a JSON list of BigBio KB documents, one per line (atomically)."""
    with atomic_open(path) as fh:
        fh.write("[")
        for i, d in enumerate(docs):
            fh.write(",\n" if i else "\n")
            fh.write(json.dumps(d.to_dict(), ensure_ascii=False))
        fh.write("\n]\n")


def write_bigbio_jsonl(docs: Iterable[Document], path: str | Path) -> None:
    """Write documents as BigBio KB JSONL, one document per line (atomically)."""
    with atomic_open(path) as fh:
        for d in docs:
            fh.write(json.dumps(d.to_dict(), ensure_ascii=False))
            fh.write("\n")
