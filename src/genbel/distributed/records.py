"""Document records, the unit of the big corpora that are stored as JSONL or Parquet shards.

A record is one document as a JSON object or a Parquet row, in one of two shapes:

* a **BigBio document** (it has ``passages``): read by :func:`genbel.data.bigbio.document_from_dict`,
  exactly as ``genbel annotate``/``genbel link`` read a BigBio JSONL file;
* a **plain record**: an id (``id``, ``document_id`` or ``pmid``) and either ``text`` (one passage of
  type ``text``, as a plain-text document) or ``title`` and/or ``abstract`` (the passages ``title`` and
  ``abstract``, joined by one space, as a PubTator document). Other fields are ignored.

Errors name the file and the line (JSONL) or row (Parquet): invalid JSON is E013, a record of neither
shape E584, and a BigBio record is checked as the BigBio reader checks it (E014, E016, E005).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from genbel.data.bigbio import document_from_dict
from genbel.data.model import Document, Passage
from genbel.errors import Errors, FormatError
from genbel.textio import iter_lines, loads_json

__all__ = [
    "ID_FIELDS",
    "is_plain_records",
    "read_jsonl_records",
    "read_parquet_records",
    "record_document",
]

#: the fields a plain record's id is taken from, first present wins
ID_FIELDS: tuple[str, ...] = ("document_id", "id", "pmid")
#: how many lines of a JSONL shard :func:`is_plain_records` reads at most
_SNIFF_LINES = 50


def _text_field(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FormatError(Errors.E584.format(where=where, reason=f"field {key!r} is {type(value).__name__}, not text"))
    return value


def record_document(obj: Any, where: str) -> Document:
    """The :class:`~genbel.data.model.Document` of one record (see the module documentation);
    ``where`` (``file:line`` or ``file: row n``) locates it in error messages."""
    if not isinstance(obj, Mapping):
        raise FormatError(Errors.E584.format(where=where, reason=f"a JSON {type(obj).__name__}, not an object"))
    if obj.get("passages") is not None:
        return document_from_dict(dict(obj), where)
    raw_id = next((obj[k] for k in ID_FIELDS if obj.get(k) is not None), None)
    if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise FormatError(Errors.E584.format(where=where, reason="it has no id"))
    doc_id = str(raw_id)
    text = _text_field(obj, "text", where)
    if text is not None:
        return Document(doc_id, doc_id, [Passage(f"{doc_id}-text", "text", [text], [(0, len(text))])], [])
    title = _text_field(obj, "title", where)
    abstract = _text_field(obj, "abstract", where)
    if title is None and abstract is None:
        raise FormatError(Errors.E584.format(where=where, reason=f"document {doc_id!r} has no text, title or abstract"))
    title = title or ""
    passages = [Passage(f"{doc_id}-title", "title", [title], [(0, len(title))])]
    if abstract is not None:
        start = len(title) + 1
        passages.append(Passage(f"{doc_id}-abstract", "abstract", [abstract], [(start, start + len(abstract))]))
    return Document(doc_id, doc_id, passages, [])


def is_plain_records(path: str | Path, encoding: str = "utf-8") -> bool:
    """Whether ``path`` is JSON lines whose first record is a plain record (an object without
    ``passages`` that has ``text``, ``title`` or ``abstract``): read it with :func:`read_jsonl_records`."""
    for n, line in enumerate(iter_lines(path, encoding=encoding)):
        if n >= _SNIFF_LINES:
            break
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            return False  # not JSON lines: the format's own reader says what is wrong
        return (
            isinstance(obj, dict)
            and "passages" not in obj
            and any(k in obj for k in ("text", "title", "abstract"))
        )
    return False


def _check_unique(docs: list[Document], wheres: list[str], path: Path) -> None:
    seen: dict[str, str] = {}
    for d, w in zip(docs, wheres, strict=True):
        if d.document_id in seen:
            raise FormatError(Errors.E016.format(
                path=path, reason=f"duplicate document id {d.document_id!r} ({seen[d.document_id]} and {w})",
            ))
        seen[d.document_id] = w


def read_jsonl_records(path: str | Path, encoding: str = "utf-8") -> list[Document]:
    """The documents of a JSON-lines file of records, one a line (blank lines are skipped)."""
    p = Path(path)
    docs: list[Document] = []
    wheres: list[str] = []
    for lineno, line in enumerate(iter_lines(p, encoding=encoding), 1):  # bad bytes: E157 (file:line)
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        docs.append(record_document(loads_json(line.rstrip("\r\n"), p, lineno), where))
        wheres.append(where)
    _check_unique(docs, wheres, p)
    return docs


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    from genbel.deps import require

    require("pyarrow", extra="distributed", feature="reading Parquet shards")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        fh = pq.ParquetFile(path)
        for batch in fh.iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise FormatError(Errors.E016.format(path=path, reason=f"not a readable Parquet file ({e})")) from None


def read_parquet_records(path: str | Path) -> list[Document]:
    """The documents of a Parquet file of records, one a row (rows counted from 1 in messages)."""
    p = Path(path)
    docs: list[Document] = []
    wheres: list[str] = []
    for row, obj in enumerate(_parquet_rows(p), 1):
        where = f"{p}: row {row}"
        docs.append(record_document(obj, where))
        wheres.append(where)
    _check_unique(docs, wheres, p)
    return docs
