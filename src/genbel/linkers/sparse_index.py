"""The TF-IDF name index of :class:`~genbel.linkers.sparse.SparseLinker`, built streamed and read memory-mapped.

At UMLS size (7M names, ~470M non-zero n-gram weights) scikit-learn's ``TfidfVectorizer.fit_transform``
holds a Python list entry per non-zero and then the whole matrix, and the linker used to keep that
matrix in both orientations plus a Python string per name. Here:

* **Build in two passes over chunks of names** (:func:`write_sparse_index`). Pass 1 counts each chunk
  with scikit-learn's ``CountVectorizer`` (the analyzer the query side uses), merges the chunk's n-grams
  into one vocabulary, adds up document and term frequencies and writes the chunk's counts to a
  temporary file. Between the passes the vocabulary is pruned (``min_df``/``max_df``/``max_features``),
  sorted and the idf computed as ``TfidfVectorizer.fit`` does. Pass 2 weights each chunk's counts
  (sublinear tf, idf, row norm: ``TfidfTransformer.transform``'s arithmetic) and scatters them into
  the on-disk posting lists. Peak memory is one chunk plus the vocabulary, whatever the KB's size.
* **One orientation, on disk** (:class:`Postings`): for each n-gram the rows of the names that have it
  (``int32``) and their weights (``float32``), a feature-major CSR matrix in three ``.npy`` files that
  queries read memory-mapped. A query adds the posting lists of its n-grams into a dense row of name
  scores: the arithmetic of ``names.T[ngrams].T @ weights`` in the same order, so scores equal the
  in-memory sparse product's.
* **Names as arrays**: the :class:`~genbel.linkers.nametable.NameTable` is saved beside the postings
  (:class:`~genbel.linkers.nametable.NameTableWriter`, memory-mapped on load).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize as normalize_rows
from tqdm.auto import tqdm

from genbel.errors import ConfigError, Errors
from genbel.kb.base import KnowledgeBase
from genbel.linkers.nametable import NameTableWriter, table_rows

logger = logging.getLogger(__name__)

POSTING_FILES = ("postings.indptr.npy", "postings.rows.npy", "postings.weights.npy")
#: names counted per chunk of the streamed build
CHUNK_NAMES = 50_000


@dataclass
class Postings:
    """Feature-major TF-IDF weights: the names having n-gram ``f`` are ``rows[indptr[f]:indptr[f + 1]]``
    (ascending) with weights ``weights[…]`` (the L2-normalised TF-IDF of each name row)."""

    indptr: np.ndarray  # int64, n_features + 1
    rows: np.ndarray  # int32, nnz
    weights: np.ndarray  # float32, nnz
    n_rows: int

    @classmethod
    def from_matrix(cls, names: sp.spmatrix) -> Postings:
        """From a ``(n_names, n_features)`` name matrix (e.g. an index saved by genbel < 0.x)."""
        t = sp.csr_matrix(names, dtype=np.float32).T.tocsr()
        t.sort_indices()
        return cls(t.indptr.astype(np.int64), t.indices.astype(np.int32), t.data.astype(np.float32), names.shape[0])

    @property
    def n_features(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.rows.nbytes + self.weights.nbytes)

    def matrix(self) -> sp.csr_matrix:
        """The postings as a ``(n_features, n_rows)`` scipy CSR matrix over the same arrays (no copy of
        rows or weights; memory-mapped ones stay mapped), built once."""
        m = getattr(self, "_matrix", None)
        if m is None:
            m = self._matrix = sp.csr_matrix((self.weights, self.rows, self.indptr),
                                             shape=(self.n_features, self.n_rows), copy=False)
        return m

    def score(self, q: sp.csr_matrix, out: np.ndarray) -> np.ndarray:
        """Dense cosine scores ``out[i, row]`` of query rows ``q`` (TF-IDF over the same features) with
        every name row, one query at a time: the posting lists of the query's n-grams are selected and
        summed with the query weights straight into a dense row (``P[ngrams].T @ w``, a CSC mat-vec; the
        arithmetic of the sparse product ``q @ names.T`` without building a sparse result)."""
        out = out[: q.shape[0]]
        m = self.matrix()
        for i in range(q.shape[0]):
            a, b = q.indptr[i], q.indptr[i + 1]
            if a == b:
                out[i] = 0.0
            else:
                out[i] = m[q.indices[a:b]].T @ q.data[a:b]
        return out

    def save(self, path: str | Path) -> None:
        for name, arr in zip(POSTING_FILES, (self.indptr, self.rows, self.weights), strict=True):
            np.save(Path(path) / name, arr)

    @classmethod
    def load(cls, path: str | Path, n_rows: int, mmap: bool = True) -> Postings:
        mode = "r" if mmap else None
        indptr, rows, weights = (np.load(Path(path) / name, mmap_mode=mode) for name in POSTING_FILES)
        return cls(indptr, rows, weights, n_rows)


def _counter(params: dict[str, Any]) -> CountVectorizer:
    """The counting half of the query side's ``TfidfVectorizer`` (same analyzer, n-grams, lower-casing)."""
    return CountVectorizer(analyzer=params["analyzer"], ngram_range=tuple(params["ngram_range"]), lowercase=True)


def _chunks(kb: KnowledgeBase, normalize: bool, table: NameTableWriter, size: int) -> Iterator[list[str]]:
    """Keys of the KB's name rows in chunks of about ``size``; every row is also written to ``table``."""
    buf: list[str] = []
    for cid, pref, rows in table_rows(kb, normalize):
        table.add(cid, pref, [n for _, n in rows])
        buf.extend(k for k, _ in rows)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


class _Counts:
    """Pass 1: chunk counts on disk, the merged vocabulary (first-seen order), df and term totals."""

    def __init__(self, tmp: Path, params: dict[str, Any]) -> None:
        self.tmp = tmp
        self.params = params
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(0, dtype=np.int64)
        self.tf = np.zeros(0, dtype=np.int64)
        self.n_rows = 0
        self.n_chunks = 0

    def add(self, keys: list[str]) -> None:
        try:
            cv = _counter(self.params)
            x = cv.fit_transform(keys).tocsr()
            local = cv.vocabulary_
        except ValueError:  # no n-gram in the whole chunk (e.g. one-letter words with analyzer="word")
            x, local = sp.csr_matrix((len(keys), 0), dtype=np.int64), {}
        lmap = np.empty(len(local), dtype=np.int32)
        for term, i in local.items():
            lmap[i] = self.vocab.setdefault(term, len(self.vocab))
        cols = lmap[x.indices]
        grow = len(self.vocab) - len(self.df)
        if grow:
            self.df = np.concatenate([self.df, np.zeros(grow, dtype=np.int64)])
            self.tf = np.concatenate([self.tf, np.zeros(grow, dtype=np.int64)])
        self.df += np.bincount(cols, minlength=len(self.vocab))
        self.tf += np.bincount(cols, weights=x.data, minlength=len(self.vocab)).astype(np.int64)
        np.savez(self.tmp / f"chunk{self.n_chunks:05d}.npz", indptr=x.indptr.astype(np.int64), cols=cols,
                 counts=x.data.astype(np.int32))
        self.n_rows += len(keys)
        self.n_chunks += 1

    def chunk(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = np.load(self.tmp / f"chunk{i:05d}.npz")
        return z["indptr"], z["cols"], z["counts"]


def _select_features(c: _Counts) -> tuple[list[str], np.ndarray]:
    """The kept vocabulary, sorted, and the map from first-seen ids to it (-1: pruned), with
    ``TfidfVectorizer.fit``'s rules: ``max_df``/``min_df`` on document frequency, then the
    ``max_features`` most frequent terms."""
    p, n = c.params, c.n_rows
    if not c.vocab:
        return [], np.zeros(0, dtype=np.int32)
    terms = sorted(c.vocab)
    first_seen = np.fromiter((c.vocab[t] for t in terms), dtype=np.int64, count=len(terms))
    df, tf = c.df[first_seen], c.tf[first_seen]
    high = p["max_df"] if isinstance(p["max_df"], Integral) else p["max_df"] * n
    low = p["min_df"] if isinstance(p["min_df"], Integral) else p["min_df"] * n
    if high < low:
        raise ConfigError(Errors.E023.format(value=(p["min_df"], p["max_df"]), field="min_df/max_df",
                                             constraint="max_df covering at least as many names as min_df"))
    mask = (df <= high) & (df >= low)
    limit = p["max_features"]
    if limit is not None and mask.sum() > limit:
        keep = (-tf[mask]).argsort()[:limit]
        new = np.zeros(len(df), dtype=bool)
        new[np.where(mask)[0][keep]] = True
        mask = new
    if not mask.any():
        raise ConfigError(Errors.E023.format(value=(p["min_df"], p["max_df"]), field="min_df/max_df",
                                             constraint="limits that keep at least one n-gram"))
    to_final = np.full(len(c.vocab), -1, dtype=np.int32)
    to_final[first_seen[mask]] = np.arange(int(mask.sum()), dtype=np.int32)
    return [t for t, m in zip(terms, mask, strict=True) if m], to_final


def _idf(df: np.ndarray, n_rows: int, smooth: bool) -> np.ndarray:
    """``TfidfTransformer.fit``'s idf (float32, same operations): ``log((n + s) / (df + s)) + 1``."""
    d = df.astype(np.float32)
    d += float(smooth)
    idf = np.full_like(d, fill_value=n_rows + int(smooth), dtype=np.float32)
    idf /= d
    np.log(idf, out=idf)
    idf += 1.0
    return idf


def tfidf_rows(x: sp.csr_matrix, idf: np.ndarray | None, params: dict[str, Any]) -> sp.csr_matrix:
    """Count rows → TF-IDF rows, in place (``TfidfTransformer.transform``'s arithmetic)."""
    if params["sublinear_tf"]:
        np.log(x.data, x.data)
        x.data += 1.0
    if idf is not None:
        x.data *= idf[x.indices]
    if params["norm"] is not None:
        x = normalize_rows(x, norm=params["norm"], copy=False)
    return x


def write_sparse_index(
    kb: KnowledgeBase, out: Path, params: dict[str, Any], *, chunk_names: int = CHUNK_NAMES,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write the name table, ``vocabulary.json``, ``idf.npy`` and the posting lists of ``kb``'s names into
    the (new, empty) directory ``out``, streamed in chunks of ``chunk_names`` names. Returns counts
    (``n_names``, ``n_concepts``, ``n_features``, ``nnz``) for the index's ``meta.json``."""
    out = Path(out)
    tmp = out / "_counts"
    tmp.mkdir()
    table = NameTableWriter()
    counts = _Counts(tmp, params)
    show = progress if progress is not None else len(kb) > 500_000
    for keys in tqdm(_chunks(kb, params["normalize"], table, chunk_names), desc="tf-idf: counting n-grams",
                     unit="chunk", disable=not show):
        counts.add(keys)
    table.save(out)
    del table
    terms, to_final = _select_features(counts)
    k = len(terms)
    final_df = np.zeros(k, dtype=np.int64)
    kept = to_final >= 0
    final_df[to_final[kept]] = counts.df[kept]
    idf = _idf(final_df, counts.n_rows, params["smooth_idf"]) if params["use_idf"] and k else None
    logger.info("tf-idf: %d names, %d n-grams kept of %d", counts.n_rows, k, len(counts.vocab))
    del counts.vocab

    indptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(final_df, out=indptr[1:])
    nnz = int(indptr[-1])
    rows_mm = np.lib.format.open_memmap(out / POSTING_FILES[1], mode="w+", dtype=np.int32, shape=(nnz,))
    weights_mm = np.lib.format.open_memmap(out / POSTING_FILES[2], mode="w+", dtype=np.float32, shape=(nnz,))
    cursor = indptr[:-1].copy()
    row0 = 0
    for i in tqdm(range(counts.n_chunks), desc="tf-idf: writing postings", unit="chunk", disable=not show):
        cptr, cols, cnt = counts.chunk(i)
        n = len(cptr) - 1
        r = np.repeat(np.arange(n, dtype=np.int32), np.diff(cptr))
        f = to_final[cols]
        keep = f >= 0
        r, f = r[keep], f[keep]
        # a row's chunk ids are sorted alphabetically, and so are the final ids: rows stay sorted
        indptr_x = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n), out=indptr_x[1:])
        x = sp.csr_matrix((cnt[keep].astype(np.float32), f, indptr_x), shape=(n, k))
        del cnt, keep, cols
        x = tfidf_rows(x, idf, params)
        order = np.argsort(x.indices, kind="stable")  # entries are row-major: rows stay ascending per n-gram
        c = x.indices[order]
        per = np.bincount(c, minlength=k)
        first = np.cumsum(per) - per
        pos = cursor[c] + (np.arange(len(c)) - first[c])
        rows_mm[pos] = r[order] + row0
        weights_mm[pos] = x.data[order]
        cursor += per
        row0 += n
        (tmp / f"chunk{i:05d}.npz").unlink()
    rows_mm.flush()
    weights_mm.flush()
    del rows_mm, weights_mm
    np.save(out / POSTING_FILES[0], indptr)
    shutil.rmtree(tmp)
    (out / "vocabulary.json").write_text(json.dumps({t: i for i, t in enumerate(terms)}, ensure_ascii=False),
                                         encoding="utf-8")
    np.save(out / "idf.npy", idf if idf is not None else np.zeros(0, dtype=np.float32))
    n_concepts = int(np.load(out / "table.concept_starts.npy", mmap_mode="r").shape[0])
    return {"n_names": row0, "n_concepts": n_concepts, "n_features": k, "nnz": nnz}

