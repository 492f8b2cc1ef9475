"""A built KB on disk: a directory with ``kb.sqlite`` and ``meta.json``.

``kb.sqlite`` holds one table per part of a :class:`~genbel.kb.concept.Concept`::

    concepts(idx INTEGER PRIMARY KEY, id TEXT UNIQUE, name TEXT)   -- main id, preferred name
    names(concept, pos, name)            -- every name, pos 0 = preferred name, then synonyms
    alt_ids(concept, pos, alt_id)
    semantic_types(concept, pos, tui)
    semantic_groups(concept, pos, grp)
    definitions(concept, pos, text)

``meta.json`` records the store format version, the KB name, its fingerprint and counts. Writes
are atomic (:func:`write_store` builds the store with :func:`genbel.io.atomic_dir`, in a temporary
directory beside the target that is renamed over it when complete).

This module knows concepts and the on-disk layout, not :class:`~genbel.kb.base.KnowledgeBase`:
:meth:`KnowledgeBase.save <genbel.kb.base.KnowledgeBase.save>` and
:meth:`KnowledgeBase.load <genbel.kb.base.KnowledgeBase.load>` build on :func:`write_store` and
:func:`read_store` (and ``load`` checks that the data still gives the recorded fingerprint).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from genbel.errors import Errors, KBError
from genbel.io import atomic_dir
from genbel.kb.concept import Concept
from genbel.textio import read_json

logger = logging.getLogger(__name__)

#: Version of the on-disk layout; bumped on any incompatible change.
FORMAT_VERSION = 1
DB_FILE = "kb.sqlite"
META_FILE = "meta.json"

_SCHEMA = """
CREATE TABLE concepts (idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE names (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                    name TEXT NOT NULL);
CREATE TABLE alt_ids (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                      alt_id TEXT NOT NULL);
CREATE TABLE semantic_types (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                             tui TEXT NOT NULL);
CREATE TABLE semantic_groups (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                              grp TEXT NOT NULL);
CREATE TABLE definitions (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                          text TEXT NOT NULL);
"""
_INDEXES = """
CREATE INDEX names_name ON names(name);
CREATE INDEX alt_ids_alt ON alt_ids(alt_id);
"""
# (table, value column, Concept attribute) of the list-valued parts
_LIST_TABLES: tuple[tuple[str, str, str], ...] = (
    ("alt_ids", "alt_id", "alt_ids"),
    ("semantic_types", "tui", "semantic_types"),
    ("semantic_groups", "grp", "semantic_groups"),
    ("definitions", "text", "definitions"),
)


def is_kb_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a genbel KB (both files present)."""
    p = Path(path)
    return p.is_dir() and (p / DB_FILE).is_file() and (p / META_FILE).is_file()


def kb_meta(
    concepts: Sequence[Concept], *, name: str, fingerprint: str, source: str | None = None
) -> dict[str, Any]:
    """The ``meta.json`` record of a KB with these concepts, name and fingerprint."""
    from genbel._version import __version__ as genbel_version

    groups = Counter(g for c in concepts for g in c.semantic_groups)
    meta: dict[str, Any] = {
        "format": "genbel-kb",
        "format_version": FORMAT_VERSION,
        "name": name,
        "fingerprint": fingerprint,
        "counts": {
            "concepts": len(concepts),
            "names": sum(len(c.names) for c in concepts),
            "alt_ids": sum(len([a for a in c.alt_ids if a != c.id]) for c in concepts),
            "with_definition": sum(1 for c in concepts if c.definitions),
            "with_semantic_type": sum(1 for c in concepts if c.semantic_types),
        },
        "semantic_groups": dict(sorted(groups.items())),
        "genbel_version": genbel_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if source is not None:
        meta["source"] = source
    return meta


def _write_sqlite(concepts: Sequence[Concept], db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(_SCHEMA)
        concept_rows: list[tuple[int, str, str]] = []
        name_rows: list[tuple[int, int, str]] = []
        list_rows: dict[str, list[tuple[int, int, str]]] = {t: [] for t, _, _ in _LIST_TABLES}
        for idx, c in enumerate(concepts):
            concept_rows.append((idx, c.id, c.name))
            name_rows.extend((idx, pos, n) for pos, n in enumerate(c.names))
            for table, _col, attr in _LIST_TABLES:
                list_rows[table].extend((idx, pos, v) for pos, v in enumerate(getattr(c, attr)))
        with con:
            con.executemany("INSERT INTO concepts VALUES (?, ?, ?)", concept_rows)
            con.executemany("INSERT INTO names VALUES (?, ?, ?)", name_rows)
            for table, _col, _attr in _LIST_TABLES:
                con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", list_rows[table])
            con.executescript(_INDEXES)
    finally:
        con.close()


def _write_meta(meta: dict[str, Any], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _raise_unencodable(concepts: Sequence[Concept], path: Path) -> None:
    """Raise ``E106`` naming the first concept and field whose text cannot be written as UTF-8."""
    for c in concepts:
        fields = [("id", [c.id]), ("name", c.names), *((a, getattr(c, a)) for _t, _c, a in _LIST_TABLES)]
        for field, values in fields:
            for v in values:
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError as e:
                    reason = f"its {field} {v!r} is not valid Unicode ({e.reason})"
                    raise KBError(Errors.E106.format(path=path, concept_id=c.id, reason=reason)) from None


def write_store(path: str | Path, concepts: Sequence[Concept], meta: dict[str, Any]) -> Path:
    """Write ``concepts`` and ``meta`` (see :func:`kb_meta`) to the directory ``path`` atomically.

    The KB is built in a hidden temporary directory next to ``path`` and renamed into place; on
    any error (or ``KeyboardInterrupt``) the temporary directory is removed and an existing KB at
    ``path`` is left untouched. An existing genbel KB directory (or an empty directory) is
    replaced; any other existing path raises :class:`~genbel.errors.KBError` (``E103``).
    """
    target = Path(path)
    if target.exists() and not (is_kb_dir(target) or (target.is_dir() and not any(target.iterdir()))):
        raise KBError(Errors.E103.format(path=target))

    def write(tmp: Path) -> None:
        _write_sqlite(concepts, tmp / DB_FILE)
        _write_meta(meta, tmp / META_FILE)

    try:
        atomic_dir(target, write)
    except UnicodeEncodeError:  # text that is not valid Unicode (a lone surrogate): name the concept
        _raise_unencodable(concepts, target)
        raise
    logger.info("saved KB %s (%d concepts) to %s", meta.get("name"), len(concepts), target)
    return target


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a KB directory (``E008`` if a file is missing)."""
    p = Path(path)
    missing = [f for f in (META_FILE, DB_FILE) if not (p / f).is_file()]
    if missing:
        raise KBError(Errors.E008.format(path=p, missing=", ".join(missing)))
    meta_path = p / META_FILE
    meta = read_json(meta_path, expect=dict)
    if meta.get("format_version") != FORMAT_VERSION:
        raise KBError(Errors.E102.format(path=p, found=meta.get("format_version"), supported=FORMAT_VERSION))
    return meta


def _check_rows(
    db: Path, rows: list[tuple[Any, ...]], names: dict[Any, list[Any]], lists: dict[str, dict[Any, list[Any]]]
) -> None:
    """Raise ``E105`` naming the table and row when a value read from ``kb.sqlite`` is not text
    (a NULL id, a number or a blob in a damaged or hand-edited store)."""

    def bad(table: str, what: str, value: Any) -> KBError:
        return KBError(Errors.E105.format(path=db, reason=f"table {table!r}: {what} is {value!r}, not text"))

    for idx, cid, name in rows:
        if not isinstance(cid, str) or not cid:
            raise bad("concepts", f"the id of row idx={idx!r}", cid)
        if not isinstance(name, str) or not name:
            raise bad("concepts", f"the name of concept {cid!r}", name)
    parts = [("names", names), *((t, lists[a]) for t, _c, a in _LIST_TABLES)]
    for table, by_concept in parts:
        for cidx, values in by_concept.items():
            for v in values:
                if not isinstance(v, str):
                    raise bad(table, f"a value of concept idx={cidx!r}", v)


def read_store(path: str | Path) -> tuple[list[Concept], dict[str, Any]]:
    """The concepts (in stored order) and ``meta.json`` of a KB directory written by :func:`write_store`.

    Raises ``E008`` when ``kb.sqlite`` or ``meta.json`` is missing and ``E102`` for another store
    version. The fingerprint is checked by :meth:`KnowledgeBase.load <genbel.kb.base.KnowledgeBase.load>`.
    """
    p = Path(path)
    meta = read_meta(p)
    db = (p / DB_FILE).resolve()
    try:
        con = sqlite3.connect(f"file:{quote(str(db))}?mode=ro&immutable=1", uri=True)
        try:
            rows = con.execute("SELECT idx, id, name FROM concepts ORDER BY idx").fetchall()
            names: dict[int, list[str]] = defaultdict(list)
            syn_sql = "SELECT concept, name FROM names WHERE pos > 0 ORDER BY concept, pos"
            for cidx, name in con.execute(syn_sql):
                names[cidx].append(name)
            lists: dict[str, dict[int, list[str]]] = {}
            for table, col, attr in _LIST_TABLES:
                d: dict[int, list[str]] = defaultdict(list)
                for cidx, v in con.execute(f"SELECT concept, {col} FROM {table} ORDER BY concept, pos"):
                    d[cidx].append(v)
                lists[attr] = d
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise KBError(Errors.E016.format(path=db, reason=f"unreadable KB database ({e})")) from e
    except UnicodeDecodeError as e:  # a text cell that is not UTF-8
        raise KBError(Errors.E105.format(path=db, reason=f"a text value is not valid UTF-8 ({e.reason})")) from None
    _check_rows(db, rows, names, lists)
    empty: list[str] = []
    alt, types, groups, defs = (lists[a] for _, _, a in _LIST_TABLES)
    concepts = [
        Concept(
            cid,
            name,
            names.get(idx, empty).copy(),
            alt_ids=alt.get(idx, empty).copy(),
            semantic_types=types.get(idx, empty).copy(),
            semantic_groups=groups.get(idx, empty).copy(),
            definitions=defs.get(idx, empty).copy(),
        )
        for idx, cid, name in rows
    ]
    return concepts, meta


__all__ = [
    "DB_FILE", "FORMAT_VERSION", "META_FILE", "is_kb_dir", "kb_meta", "read_meta", "read_store", "write_store",
]
