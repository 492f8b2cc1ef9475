"""A persistent, content-addressed store of name vectors, so a KB is embedded one name at a time only once.

The store of an encoder is one SQLite file, ``<root>/<encoder fingerprint>/vectors.sqlite``
(:func:`~genbel.encoders.text_encoder.encoder_fingerprint`: weights, tokenizer, pooling, maximum
length), with one row per text the encoder saw: ``key`` = SHA-256 of the exact text (after the
linker's normalisation), ``vec`` = the float32 vector as computed, ``check`` = a BLAKE2b digest of
key + vector. A KB that differs from an earlier one by a few names (e.g. MEDIC + training mentions)
embeds only those names (:func:`embed_with_store`).

Safety: rows are written in SQLite transactions (WAL journal), so a reader never sees part of a write
and a crash loses at most the chunk being written; several processes may read and write at once (a
busy writer is waited for). A row whose size or checksum is wrong is ignored, embedded again and
replaced (E313, logged); a store that cannot be opened or read is set aside or skipped (E312) and a
store that cannot be written only costs the saving (E314): never a wrong vector, never a failure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genbel.errors import Errors

if TYPE_CHECKING:
    from genbel.encoders.text_encoder import TextEncoder
    from genbel.encoders.vector_pack import NameVectorPack

logger = logging.getLogger(__name__)

STORE_FILE = "vectors.sqlite"
STORE_VERSION = "1"
#: keys per ``SELECT … IN (…)`` (below SQLite's oldest variable limit, 999)
_LOOKUP_CHUNK = 900
#: batches of the encoder embedded and committed together (a crash loses at most one chunk)
_BATCHES_PER_CHUNK = 32
_TIMEOUT_S = 120.0
_PAGE_SIZE = 16384


def text_key(text: str) -> bytes:
    """The store key of a text: SHA-256 of its UTF-8 bytes (lone surrogates kept)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _check(key: bytes, blob: bytes) -> bytes:
    return hashlib.blake2b(key + blob, digest_size=8).digest()


def vector_store_dir() -> Path:
    """Default folder of name-vector stores: ``$GENBEL_CACHE/vectors`` (``~/.cache/genbel/vectors``)."""
    from genbel.models import cache_dir

    return cache_dir() / "vectors"


@dataclass
class EmbeddingStats:
    """How a set of names got its vectors: ``embedded`` by the encoder in ``seconds``, taken
    ``from_store`` (the name-vector store) or ``from_pack`` (the vectors shipped with the encoder)."""

    embedded: int = 0
    from_store: int = 0
    seconds: float = 0.0
    from_pack: int = 0

    def __str__(self) -> str:
        text = (f"{self.embedded:,} name{'' if self.embedded == 1 else 's'} embedded in {self.seconds:.1f} s, "
                f"{self.from_store:,} from the name-vector store")
        if self.from_pack:
            text += f", {self.from_pack:,} from the shipped name vectors"
        return text


class NameVectorStore:
    """The name vectors of one encoder (``fingerprint``, vectors of size ``dim``) under ``root``.

    :meth:`get` returns the stored vectors of many texts at once (and which were found);
    :meth:`put` adds vectors in one transaction. An unusable store behaves as an empty one that
    keeps nothing (``usable`` is then ``False``), with a warning.
    """

    def __init__(self, root: str | Path, fingerprint: str, dim: int) -> None:
        self.dir = Path(root) / fingerprint
        self.path = self.dir / STORE_FILE
        self.fingerprint = fingerprint
        self.dim = int(dim)
        self._conn: sqlite3.Connection | None = None
        self.usable = True
        try:
            self._conn = self._open_retrying()
        except (sqlite3.DatabaseError, OSError) as e:
            # a damaged file is set aside; a busy or unreachable one (OperationalError) is left alone
            damaged = isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError)
            if damaged and self.path.is_file() and self._set_aside():
                try:
                    self._conn = self._open()
                except (sqlite3.DatabaseError, OSError) as e2:
                    self._disable(e2)
            else:
                self._disable(e)

    @classmethod
    def for_encoder(cls, root: str | Path, encoder: TextEncoder, fingerprint: str | None = None) -> NameVectorStore:
        """The store of ``encoder`` under ``root`` (``fingerprint``: its precomputed fingerprint)."""
        from genbel.encoders.text_encoder import encoder_fingerprint

        return cls(root, fingerprint or encoder_fingerprint(encoder), encoder.dim)

    # ------------------------------------------------------------------ opening
    def _open_retrying(self, attempts: int = 5) -> sqlite3.Connection:
        """:meth:`_open`, retried while another process holds the file (switching a new file to WAL
        needs an exclusive lock, which SQLite may refuse at once instead of waiting)."""
        for attempt in range(attempts):
            try:
                return self._open()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _open(self) -> sqlite3.Connection:
        self.dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_TIMEOUT_S * 1000)}")
            # large pages keep a row (key + vector up to ~1,000 floats) inside its B-tree page; with
            # the default 4 KiB a 384-float row spills to an overflow page (3x the file size). A no-op
            # on an existing file.
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS vectors "
                             "(key BLOB PRIMARY KEY, vec BLOB NOT NULL, chk BLOB NOT NULL) WITHOUT ROWID")
                want = {"version": STORE_VERSION, "encoder": self.fingerprint, "dim": str(self.dim),
                        "dtype": "float32"}
                conn.executemany("INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)", want.items())
                have = dict(conn.execute("SELECT k, v FROM meta").fetchall())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if any(have.get(k) != v for k, v in want.items()):
                raise sqlite3.DatabaseError(
                    f"it holds {have.get('dtype')} vectors of size {have.get('dim')} for encoder "
                    f"{str(have.get('encoder'))[:16]}…, format {have.get('version')}"
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self) -> bool:
        aside = self.path.with_name(f"{STORE_FILE}.damaged-{os.getpid()}-{int(time.time())}")
        try:
            self.path.rename(aside)
            for ext in ("-wal", "-shm"):
                Path(f"{self.path}{ext}").unlink(missing_ok=True)
        except OSError:
            return False
        logger.warning(Errors.E312.format(path=self.path, reason=f"not a readable store, moved to {aside.name}",
                                          action="starting a new one"))
        return True

    def _disable(self, e: BaseException) -> None:
        self.usable = False
        self._conn = None
        logger.warning(Errors.E312.format(path=self.path, reason=str(e) or type(e).__name__,
                                          action="embedding without it"))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    # ------------------------------------------------------------------ reading and writing
    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, found)``: a ``(len(texts), dim)`` float32 array with the stored vector of each
        text found (zeros elsewhere) and a boolean mask of the texts found. Damaged rows count as
        not found (E313, logged)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        found = np.zeros(len(texts), dtype=bool)
        if self._conn is None or not texts:
            return out, found
        keys = [text_key(t) for t in texts]
        where: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            where.setdefault(k, []).append(i)
        uniq = list(where)
        n_bytes, damaged = 4 * self.dim, 0
        try:
            for s in range(0, len(uniq), _LOOKUP_CHUNK):
                chunk = uniq[s: s + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, blob, chk in self._conn.execute(
                        f"SELECT key, vec, chk FROM vectors WHERE key IN ({marks})", chunk):
                    key, blob = bytes(key), bytes(blob)
                    if len(blob) != n_bytes or bytes(chk) != _check(key, blob) or key not in where:
                        damaged += 1
                        continue
                    v = np.frombuffer(blob, dtype="<f4")
                    if not np.all(np.isfinite(v)):
                        damaged += 1
                        continue
                    idx = where[key]
                    out[idx] = v
                    found[idx] = True
        except sqlite3.DatabaseError as e:
            logger.warning(Errors.E312.format(path=self.path, reason=str(e), action="embedding without it"))
            self.close()
            self.usable = False
            return np.zeros_like(out), np.zeros_like(found)
        if damaged:
            logger.warning(Errors.E313.format(path=self.path, n=damaged))
        return out, found

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> bool:
        """Store the vectors of ``texts`` (one transaction; an existing row is replaced). Returns
        whether they were written (a failure is logged, E314)."""
        if self._conn is None or not len(texts):
            return False
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.shape != (len(texts), self.dim):
            raise ValueError(f"{vectors.shape} vectors for {len(texts)} texts of size {self.dim}")
        rows = []
        for t, v in zip(texts, vectors):
            key, blob = text_key(t), v.tobytes()
            rows.append((key, blob, _check(key, blob)))
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO vectors (key, vec, chk) VALUES (?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except (sqlite3.DatabaseError, OSError) as e:
            logger.warning(Errors.E314.format(path=self.path, reason=str(e)))
            return False
        return True


def embed_with_store(
    encoder: TextEncoder,
    texts: Sequence[str],
    store: NameVectorStore | None,
    *,
    progress: bool | None = None,
    desc: str = "embedding KB names",
    pack: NameVectorPack | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """The vectors of ``texts`` (distinct texts, as the encoder sees them): stored ones from ``store``,
    then those of ``pack`` (precomputed vectors of this encoder, :mod:`genbel.encoders.vector_pack`;
    not copied into the store), the others embedded (shortest first, ``encoder.batch_size`` texts per
    batch) and added to the store chunk by chunk. Without a store or pack, every text is embedded, in
    the same batches as :meth:`TextEncoder.encode` over all of them."""
    from tqdm.auto import tqdm

    stats = EmbeddingStats()
    if store is not None:
        vectors, found = store.get(texts)
    else:
        vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
        found = np.zeros(len(texts), dtype=bool)
    stats.from_store = int(found.sum())
    if pack is not None and not found.all():
        if pack.dim != encoder.dim:
            raise ValueError(f"pack vectors of size {pack.dim} for an encoder of size {encoder.dim}")
        rest = np.flatnonzero(~found)
        pv, pf = pack.get([texts[i] for i in rest])
        vectors[rest[pf]] = pv[pf]
        found[rest[pf]] = True
        stats.from_pack = int(pf.sum())
    missing = [i for i in range(len(texts)) if not found[i]]
    if not missing:
        logger.info("all %d names taken from stored vectors (%s)", len(texts), stats)
        return vectors, stats
    missing.sort(key=lambda i: len(texts[i]))  # stable: the batches of TextEncoder.encode
    chunk = max(1, encoder.batch_size) * _BATCHES_PER_CHUNK
    show = progress if progress is not None else len(missing) > 20 * encoder.batch_size
    known = stats.from_store + stats.from_pack
    label = f"{desc} ({len(missing):,} new, {known:,} stored)" if store is not None or pack is not None else desc
    t0 = time.perf_counter()
    with tqdm(total=len(missing), desc=label, unit="name", disable=not show) as bar:
        for s in range(0, len(missing), chunk):
            idx = missing[s: s + chunk]
            part = [texts[i] for i in idx]
            v = encoder.encode(part, progress=False, desc=desc)
            vectors[idx] = v
            if store is not None:
                store.put(part, v)
            bar.update(len(idx))
    stats.embedded = len(missing)
    stats.seconds = time.perf_counter() - t0
    logger.info("%s (%s)", stats, encoder.source or "the encoder")
    return vectors, stats


__all__ = [
    "STORE_FILE", "EmbeddingStats", "NameVectorStore", "embed_with_store", "text_key", "vector_store_dir",
]
