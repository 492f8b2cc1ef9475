"""A built KB on disk: a directory with ``kb.sqlite`` and ``meta.json``.

``kb.sqlite`` holds one table per part of a :class:`~genbel.kb.concept.Concept`::

    concepts(idx INTEGER PRIMARY KEY, id TEXT UNIQUE, name TEXT)   -- main id, preferred name
    names(concept, pos, name)            -- every name, pos 0 = preferred name, then synonyms
    alt_ids(concept, pos, alt_id)
    semantic_types(concept, pos, tui)
    semantic_groups(concept, pos, grp)
    definitions(concept, pos, text)
    parents(concept, pos, parent_id)     -- direct parents in the KB's hierarchy (format 2)
    tree_numbers(concept, pos, tree)     -- tree numbers, e.g. MeSH's (format 2)

plus ``meta(key, value)`` with a copy of ``meta.json`` (stores written since the table exists).

``meta.json`` records the store format version, the KB name, its fingerprints, counts and a random
``store_id`` naming this version of the store.

Crash-safe and concurrent-safe (docs/reliability.md):

* a writer takes an advisory lock on the KB directory (``flock``; writers of one directory run one
  after the other), removes what killed writers left (``.tmp-*`` inside, and the ``.<name>.tmp-*`` /
  ``.<name>.old-*`` beside it of genbel's earlier directory swap), writes both files into a
  ``.tmp-PID-XXXX`` folder inside the KB directory, flushes them to disk, and renames ``kb.sqlite``
  then ``meta.json`` over the live ones (each rename is atomic);
* a reader opens each file once, so it reads whole files; when ``kb.sqlite`` and ``meta.json`` come
  from two versions (a writer renamed between the reader's two opens, or was killed between its two
  renames), the copy of ``meta.json`` inside ``kb.sqlite`` describes the data read and is used.

So at any moment, after a kill too, the directory holds one whole KB: the old one or the new one.

This module knows concepts and the on-disk layout, not :class:`~genbel.kb.base.KnowledgeBase`:
:meth:`KnowledgeBase.save <genbel.kb.base.KnowledgeBase.save>` and
:meth:`KnowledgeBase.load <genbel.kb.base.KnowledgeBase.load>` build on :func:`write_store` and
:func:`read_store` (and ``load`` checks that the data still gives the recorded fingerprint).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from genbel.errors import Errors, KBError
from genbel.io import dir_lock, fsync_dir, fsync_file, pid_alive, recover_dir
from genbel.kb.concept import Concept
from genbel.kb.ids import is_mesh_id
from genbel.textio import loads_json, read_json

logger = logging.getLogger(__name__)

#: Version of the on-disk layout; bumped on any incompatible change. Version 2 (genbel 0.1 after
#: 2026-12-06) added the ``parents`` and ``tree_numbers`` tables, and MEDIC/BioSyn KBs built since
#: then have CTD's main ids (the MeSH id; OMIM ids alternate). Version 1 stores are still read (no
#: hierarchy; a warning when their main ids are the OMIM ids that CTD defines as alternates).
FORMAT_VERSION = 2
#: versions :func:`read_store` reads
READ_VERSIONS = (1, 2)
DB_FILE = "kb.sqlite"
META_FILE = "meta.json"
#: the table of ``kb.sqlite`` holding its copy of ``meta.json`` (key ``meta.json``)
META_TABLE = "meta"
#: prefix of a writer's temporary folder inside the KB directory
_TMP = ".tmp-"

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
CREATE TABLE parents (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                      parent_id TEXT NOT NULL);
CREATE TABLE tree_numbers (concept INTEGER NOT NULL REFERENCES concepts(idx), pos INTEGER NOT NULL,
                           tree TEXT NOT NULL);
"""
_INDEXES = """
CREATE INDEX names_name ON names(name);
CREATE INDEX alt_ids_alt ON alt_ids(alt_id);
CREATE INDEX names_concept ON names(concept, pos);
CREATE INDEX alt_ids_concept ON alt_ids(concept, pos);
CREATE INDEX semantic_types_concept ON semantic_types(concept, pos);
CREATE INDEX semantic_groups_concept ON semantic_groups(concept, pos);
CREATE INDEX definitions_concept ON definitions(concept, pos);
CREATE INDEX parents_concept ON parents(concept, pos);
CREATE INDEX tree_numbers_concept ON tree_numbers(concept, pos);
"""
#: the per-concept indexes :class:`StoreReader` needs (stores saved before 2026-12-06 lack them)
_CONCEPT_INDEXES = ("names_concept", "alt_ids_concept", "semantic_types_concept", "semantic_groups_concept",
                    "definitions_concept", "parents_concept", "tree_numbers_concept")
# (table, value column, Concept attribute) of the list-valued parts
_LIST_TABLES: tuple[tuple[str, str, str], ...] = (
    ("alt_ids", "alt_id", "alt_ids"),
    ("semantic_types", "tui", "semantic_types"),
    ("semantic_groups", "grp", "semantic_groups"),
    ("definitions", "text", "definitions"),
    ("parents", "parent_id", "parents"),
    ("tree_numbers", "tree", "tree_numbers"),
)
#: the tables a version 1 store lacks (read as empty)
_V2_TABLES = frozenset({"parents", "tree_numbers"})


def is_kb_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a genbel KB (both files present)."""
    p = Path(path)
    return p.is_dir() and (p / DB_FILE).is_file() and (p / META_FILE).is_file()


def kb_meta(
    concepts: Sequence[Concept],
    *,
    name: str,
    fingerprint: str,
    source: str | None = None,
    content_fingerprint: str | None = None,
) -> dict[str, Any]:
    """The ``meta.json`` record of a KB with these concepts, name and fingerprint (and the
    ``content_fingerprint`` over every field, checked on load when recorded)."""
    from genbel._version import __version__ as genbel_version

    groups = Counter(g for c in concepts for g in c.semantic_groups)
    meta: dict[str, Any] = {
        "format": "genbel-kb",
        "format_version": FORMAT_VERSION,
        "name": name,
        "fingerprint": fingerprint,
        **({"content_fingerprint": content_fingerprint} if content_fingerprint is not None else {}),
        "counts": {
            "concepts": len(concepts),
            "names": sum(len(c.names) for c in concepts),
            "alt_ids": sum(len([a for a in c.alt_ids if a != c.id]) for c in concepts),
            "with_definition": sum(1 for c in concepts if c.definitions),
            "with_semantic_type": sum(1 for c in concepts if c.semantic_types),
            "with_parents": sum(1 for c in concepts if c.parents),
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


def _embed_meta(meta: dict[str, Any], db: Path) -> None:
    """Store a copy of ``meta`` in ``db`` (table ``meta``) and flush the database to disk."""
    con = sqlite3.connect(db)
    try:
        with con:
            con.execute(f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute(f"INSERT INTO {META_TABLE} VALUES (?, ?)", (META_FILE, json.dumps(meta, ensure_ascii=False)))
    finally:
        con.close()
    fsync_file(db)


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


def _only_store_entries(path: Path) -> bool:
    """Whether the directory ``path`` holds nothing but KB store files: it is empty, a KB directory,
    or one that a first write (interrupted or in progress in another process) has started."""
    return all(q.name in (DB_FILE, META_FILE) or q.name.startswith(_TMP) for q in path.iterdir())


def _replaceable(path: Path) -> bool:
    """A KB directory (other files in it, e.g. a ``.DS_Store``, are kept), or one holding nothing else."""
    return is_kb_dir(path) or _only_store_entries(path)


@contextmanager
def _writer_lock(target: Path) -> Iterator[None]:
    """Create ``target`` if needed and hold its writer lock. When another writer that created the
    directory removed it after failing while this one waited, the lock is taken again on a new one."""
    for _ in range(50):
        target.mkdir(parents=True, exist_ok=True)
        with dir_lock(target) as fd:
            try:
                same = fd is None or os.path.samestat(os.fstat(fd), os.stat(target))
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
    raise KBError(Errors.E016.format(path=target, reason="the directory keeps disappearing while it is written"))


def write_store(path: str | Path, concepts: Sequence[Concept], meta: dict[str, Any]) -> Path:
    """Write ``concepts`` and ``meta`` (see :func:`kb_meta`) to the directory ``path``, crash-safe.

    The files are built in a hidden temporary folder and renamed into place when complete (see the
    module docstring); on any error (or ``KeyboardInterrupt``, or a kill) an existing KB at ``path``
    is left whole. Writers of one directory take its lock in turn. The KB of an existing genbel KB
    directory (or of an empty one, or of one a killed first build left) is replaced, other files in it
    are kept; any other existing path raises :class:`~genbel.errors.KBError` (``E103``).
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise KBError(Errors.E103.format(path=target))
    recover_dir(target)  # a KB an earlier genbel left beside its path when killed mid-swap, its temporaries
    if target.is_dir() and not _replaceable(target):
        raise KBError(Errors.E103.format(path=target))
    created = not target.exists()
    meta = {**meta, "store_id": uuid.uuid4().hex}
    with _writer_lock(target):
        if not _replaceable(target):  # changed while we waited for the lock
            raise KBError(Errors.E103.format(path=target))
        for q in target.glob(f"{_TMP}*"):  # writers hold the lock while theirs exist: these are stale
            pid = q.name[len(_TMP):].split("-", 1)[0]  # (the pid check guards where flock is a no-op)
            if not (pid.isdigit() and pid_alive(int(pid))):
                logger.info("removing %s, left by an interrupted KB build", q)
                shutil.rmtree(q, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP}{os.getpid()}-", dir=target))
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            try:
                _write_sqlite(concepts, tmp / DB_FILE)
            except UnicodeEncodeError:  # text that is not valid Unicode (a lone surrogate): name the concept
                _raise_unencodable(concepts, target)
                raise
            _embed_meta(meta, tmp / DB_FILE)
            _write_meta(meta, tmp / META_FILE)
            for name in (DB_FILE, META_FILE):
                os.chmod(tmp / name, 0o666 & ~_umask())
            os.replace(tmp / DB_FILE, target / DB_FILE)
            os.replace(tmp / META_FILE, target / META_FILE)
            fsync_dir(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if created and not any(target.iterdir()):
                target.rmdir()  # a failed first write leaves no directory
    logger.info("saved KB %s (%d concepts) to %s", meta.get("name"), len(concepts), target)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a KB directory (``E008`` if a file is missing)."""
    p = Path(path)
    missing = [f for f in (META_FILE, DB_FILE) if not (p / f).is_file()]
    if missing:
        raise KBError(Errors.E008.format(path=p, missing=", ".join(missing)))
    meta_path = p / META_FILE
    meta = read_json(meta_path, expect=dict)
    if meta.get("format_version") not in READ_VERSIONS:
        raise KBError(Errors.E102.format(path=p, found=meta.get("format_version"), supported=_supported()))
    return meta


def _supported() -> str:
    return " or ".join(str(v) for v in READ_VERSIONS)


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


def _embedded_meta(con: sqlite3.Connection, db: Path) -> dict[str, Any] | None:
    """The copy of ``meta.json`` kept in ``kb.sqlite``; None for a store written without one."""
    has = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (META_TABLE,)).fetchone()
    if has is None:
        return None
    row = con.execute(f"SELECT value FROM {META_TABLE} WHERE key=?", (META_FILE,)).fetchone()
    if row is None or not isinstance(row[0], str):
        raise KBError(Errors.E105.format(path=db, reason=f"table {META_TABLE!r} has no text {META_FILE!r} row"))
    own = loads_json(row[0], f"{db}:{META_TABLE}")
    if not isinstance(own, dict):
        raise KBError(Errors.E105.format(path=db, reason=f"table {META_TABLE!r}: {META_FILE!r} is not a JSON object"))
    return own


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
            own = _embedded_meta(con, db)
            rows = con.execute("SELECT idx, id, name FROM concepts ORDER BY idx").fetchall()
            names: dict[int, list[str]] = defaultdict(list)
            syn_sql = "SELECT concept, name FROM names WHERE pos > 0 ORDER BY concept, pos"
            for cidx, name in con.execute(syn_sql):
                names[cidx].append(name)
            lists: dict[str, dict[int, list[str]]] = {}
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table, col, attr in _LIST_TABLES:
                d: dict[int, list[str]] = defaultdict(list)
                lists[attr] = d
                if table in _V2_TABLES and table not in tables and meta.get("format_version") == 1:
                    continue  # a version 1 store: no hierarchy
                for cidx, v in con.execute(f"SELECT concept, {col} FROM {table} ORDER BY concept, pos"):
                    d[cidx].append(v)
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise KBError(Errors.E016.format(path=db, reason=f"unreadable KB database ({e})")) from e
    except UnicodeDecodeError as e:  # a text cell that is not UTF-8
        raise KBError(Errors.E105.format(path=db, reason=f"a text value is not valid UTF-8 ({e.reason})")) from None
    _check_rows(db, rows, names, lists)
    if own is not None and own.get("store_id") != meta.get("store_id"):
        # meta.json belongs to another version than kb.sqlite: a writer replaced one of them between
        # our two opens, or was killed between its two renames; kb.sqlite's copy describes the data read
        logger.debug("%s: meta.json is not the one of kb.sqlite (written meanwhile); using kb.sqlite's copy", p)
        if own.get("format_version") not in READ_VERSIONS:
            raise KBError(Errors.E102.format(path=p, found=own.get("format_version"), supported=_supported()))
        meta = own
    empty: list[str] = []
    alt, types, groups, defs, parents, trees = (lists[a] for _, _, a in _LIST_TABLES)
    concepts = [
        Concept(
            cid,
            name,
            names.get(idx, empty).copy(),
            alt_ids=alt.get(idx, empty).copy(),
            semantic_types=types.get(idx, empty).copy(),
            semantic_groups=groups.get(idx, empty).copy(),
            definitions=defs.get(idx, empty).copy(),
            parents=parents.get(idx, empty).copy(),
            tree_numbers=trees.get(idx, empty).copy(),
        )
        for idx, cid, name in rows
    ]
    if meta.get("format_version") == 1:
        _warn_v1_main_ids(p, concepts)
    return concepts, meta


class StoreReader:
    """Reads concepts from ``kb.sqlite`` one at a time (per-concept indexes, a read-only connection):
    what :class:`~genbel.kb.lazy.LazyKnowledgeBase` is built on. Only stores written with the
    per-concept indexes (``format_version`` 2, saved since 2026-12-06) qualify (``E605`` otherwise)."""

    #: concepts fetched per query when many are read (iteration, fingerprints)
    BATCH = 2_000

    def __init__(self, path: str | Path) -> None:
        import threading

        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.db = (self.path / DB_FILE).resolve()
        try:
            self.con = sqlite3.connect(f"file:{quote(str(self.db))}?mode=ro&immutable=1", uri=True,
                                       check_same_thread=False)
            have = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
            own = _embedded_meta(self.con, self.db)
        except sqlite3.DatabaseError as e:
            raise KBError(Errors.E016.format(path=self.db, reason=f"unreadable KB database ({e})")) from e
        if not set(_CONCEPT_INDEXES) <= have:
            self.con.close()
            raise KBError(Errors.E605.format(path=self.path))
        if own is not None and own.get("store_id") != self.meta.get("store_id"):
            self.meta = own  # as read_store: kb.sqlite's own copy describes the data read
        self._lock = threading.Lock()  # one connection, shared by threads (serve)

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self.con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise KBError(Errors.E016.format(path=self.db, reason=f"unreadable KB database ({e})")) from e
        except UnicodeDecodeError as e:
            raise KBError(Errors.E105.format(path=self.db, reason=f"a text value is not valid UTF-8 ({e.reason})")) from None

    def count(self, table: str) -> int:
        return int(self._rows(f"SELECT count(*) FROM {table}")[0][0])

    def idx_of(self, main_id: str) -> int | None:
        r = self._rows("SELECT idx FROM concepts WHERE id = ?", (main_id,))
        return int(r[0][0]) if r else None

    def idx_of_alt(self, alt_id: str) -> int | None:
        """The first concept (stored order) listing ``alt_id`` as an alternate id."""
        r = self._rows("SELECT min(concept) FROM alt_ids WHERE alt_id = ?", (alt_id,))
        return int(r[0][0]) if r and r[0][0] is not None else None

    def main_id(self, idx: int) -> str:
        return str(self._rows("SELECT id FROM concepts WHERE idx = ?", (idx,))[0][0])

    def concepts(self, idxs: Sequence[int]) -> list[Concept]:
        """The concepts of stored positions ``idxs`` (in that order)."""
        if not idxs:
            return []
        marks = ",".join("?" * len(idxs))
        head = {i: (cid, name) for i, cid, name in
                self._rows(f"SELECT idx, id, name FROM concepts WHERE idx IN ({marks})", idxs)}
        parts: dict[str, dict[int, list[str]]] = {}
        for table, col, attr in (("names", "name", "names"), *_LIST_TABLES):
            d: dict[int, list[str]] = defaultdict(list)
            for cidx, v in self._rows(f"SELECT concept, {col} FROM {table} WHERE concept IN ({marks}) "
                                      "ORDER BY concept, pos", idxs):
                d[cidx].append(v)
            parts[attr] = d
        _check_rows(self.db, [(i, *head.get(i, (None, None))) for i in idxs], parts["names"],
                    {a: parts[a] for _t, _c, a in _LIST_TABLES})
        return [Concept(head[i][0], head[i][1], parts["names"][i][1:], alt_ids=parts["alt_ids"][i],
                        semantic_types=parts["semantic_types"][i], semantic_groups=parts["semantic_groups"][i],
                        definitions=parts["definitions"][i], parents=parts["parents"][i],
                        tree_numbers=parts["tree_numbers"][i]) for i in idxs]

    def iter_concepts(self, by_id: bool = False) -> Iterator[Concept]:
        """Every concept, in stored order (or sorted by main id), :attr:`BATCH` at a time."""
        key = "id" if by_id else "idx"
        last: Any = "" if by_id else -1
        while True:  # keyset pages: no list of every id is held
            page = self._rows(f"SELECT idx, {key} FROM concepts WHERE {key} > ? ORDER BY {key} LIMIT ?",
                              (last, self.BATCH))
            if not page:
                return
            last = page[-1][1]
            yield from self.concepts([int(r[0]) for r in page])

    def ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM concepts ORDER BY idx")]

    def groups(self) -> list[str]:
        return sorted(r[0] for r in self._rows("SELECT DISTINCT grp FROM semantic_groups"))

    def n_alt_ids(self) -> int:
        """Distinct alternate ids that are no concept's main id."""
        return int(self._rows("SELECT count(DISTINCT alt_id) FROM alt_ids WHERE alt_id NOT IN "
                              "(SELECT id FROM concepts)")[0][0])

    def has_parents(self) -> bool:
        return bool(self._rows("SELECT 1 FROM parents LIMIT 1"))

    def close(self) -> None:
        self.con.close()


def _warn_v1_main_ids(path: Path, concepts: Sequence[Concept]) -> None:
    """Say so when a version 1 store has concepts whose main id is an OMIM id with a MeSH alternate:
    MEDIC/BioSyn KBs built before version 2 took a row's first id as the main id, where CTD defines the
    MeSH id (so ``pred_concept_code`` would be ``OMIM:608446`` for myocardial infarction, not
    ``D009203``). The store is read as it is (evaluation compares ids through alternates)."""
    stale = [c.id for c in concepts if c.id.startswith("OMIM:") and any(is_mesh_id(a) for a in c.alt_ids)]
    if stale:
        logger.warning(
            "%s: KB store format 1 with %d concepts whose main id is an OMIM id and a MeSH id an alternate "
            "(e.g. %s); CTD defines the MeSH id as the main id: rebuild this KB from its source "
            "(genbel kb build) to get those ids in outputs", path, len(stale), stale[0])


__all__ = [
    "DB_FILE", "FORMAT_VERSION", "META_FILE", "READ_VERSIONS", "StoreReader", "is_kb_dir", "kb_meta", "read_meta", "read_store", "write_store",
]
