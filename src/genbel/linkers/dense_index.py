"""The faiss name index of a :class:`~genbel.linkers.dense.DenseLinker` and its files on disk.

An index directory holds ``meta.json`` (kind ``dense``, format version, KB fingerprint, settings,
encoder reference) and ``faiss.index`` (one L2-normalised vector per KB name row, inner-product
search: exact ``IndexFlatIP``, graph ``IndexHNSWFlat`` or, for UMLS-sized KBs, compressed
``IndexIVFPQ``; :func:`choose_index_kind` picks one by size). Indexes can be cached per
(encoder, KB, index settings) under :func:`index_cache_dir` (see
:func:`genbel.linkers.dense.cached_dense_linker`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from genbel.errors import ConfigError, Errors, FormatError, IndexMismatchError
from genbel.kb.base import KnowledgeBase
from genbel.linkers.nametable import NameTable
from genbel.textio import read_json

logger = logging.getLogger(__name__)

INDEX_KIND = "dense"
INDEX_VERSION = 1
META_FILE = "meta.json"
FAISS_FILE = "faiss.index"


#: index kinds :func:`build_faiss_index` makes; ``auto`` picks one by size (:func:`choose_index_kind`)
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")
#: float32 vectors held in RAM by a flat or HNSW index at most (beyond: IVF-PQ, compressed codes)
FLOAT_BUDGET_BYTES = 2 * 1024**3


def choose_index_kind(n: int, dim: int, *, hnsw_threshold: int = 500_000,
                      float_budget: int = FLOAT_BUDGET_BYTES) -> str:
    """The index kind for ``n`` vectors of size ``dim``: exact ``flat`` below ``hnsw_threshold``,
    ``hnsw`` while the float vectors fit ``float_budget`` bytes (2 GiB: ~1.4M MiniLM vectors), else
    ``ivfpq`` (inverted lists of product-quantised codes: ``dim / 8`` bytes a vector, so 7M names of a
    UMLS-sized KB take ~0.4 GB instead of 10.7 GB)."""
    if n < hnsw_threshold:
        return "flat"
    if n * dim * 4 <= float_budget:
        return "hnsw"
    return "ivfpq"


def ivfpq_settings(n: int, dim: int) -> dict[str, int]:
    """IVF-PQ shape for ``n`` vectors: ~2·sqrt(n) lists (a power of two: 4,096 at 7M), ``dim / 8``
    sub-quantisers of 8 bits (fewer for tiny inputs), a training sample of 32 vectors a list (at most
    131,072; 10 k-means iterations), ``nprobe`` 32."""
    nlist = 1 << max(4, int(round(np.log2(max(16.0, 2 * np.sqrt(max(n, 1)))))))
    nlist = min(nlist, max(1, n // 8))  # tiny inputs (tests): a few vectors a list
    m = next(x for x in (dim // 8, dim // 4, dim // 2, dim) if x and dim % x == 0)
    nbits = 8 if n >= 1024 else max(1, min(8, int(np.log2(max(n, 2))) - 1))
    return {"nlist": nlist, "m": m, "nbits": nbits, "train": int(min(n, 32 * nlist, 131_072)), "nprobe": 32}


def new_ivfpq_index(dim: int, n: int) -> Any:
    """An untrained inner-product IVF-PQ index sized for ``n`` vectors (HNSW coarse quantiser)."""
    import faiss

    cfg = ivfpq_settings(n, dim)
    quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIVFPQ(quantizer, dim, cfg["nlist"], cfg["m"], cfg["nbits"], faiss.METRIC_INNER_PRODUCT)
    index.nprobe = cfg["nprobe"]
    index.cp.min_points_per_centroid = 5  # small KBs in tests: train on what there is
    index.cp.niter = 10
    index.clustering_index = faiss.IndexFlatIP(dim)  # exact BLAS assignment while training the lists
    return index


def build_ivfpq_index(chunks: Any, dim: int, n: int, *, seed: int = 0) -> Any:
    """IVF-PQ over ``n`` vectors given as an iterable of ``(rows, dim)`` float32 chunks (streamed: only
    the training sample and one chunk are held besides the codes). The training sample is the first
    ``ivfpq_settings(n, dim)["train"]`` vectors, so give the chunks in a shuffled or uniform order.

    A chunk may also be a pair ``(vectors, ids)``: the vectors are added under those row ids (any
    order; every id in ``0..n-1`` once over all chunks), so rows can be embedded in another order than
    their ids' (e.g. each distinct name once, a uniform sample first)."""
    import faiss

    index = new_ivfpq_index(dim, n)
    need = ivfpq_settings(n, dim)["train"]
    pending: list[tuple[np.ndarray, np.ndarray | None]] = []
    have = 0
    with_ids = False

    def add(x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is None:
            index.add(x)
        else:
            index.add_with_ids(x, np.ascontiguousarray(ids, dtype=np.int64))

    for chunk in chunks:
        vectors, ids = chunk if isinstance(chunk, tuple) else (chunk, None)
        with_ids = with_ids or ids is not None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not index.is_trained:
            pending.append((vectors, ids))
            have += len(vectors)
            if have < need:
                continue
            index.train(np.concatenate([v for v, _ in pending])[:need])
            for v, i in pending:
                add(v, i)
            pending = []
            continue
        add(vectors, ids)
    if pending:  # fewer vectors than the training sample
        index.train(np.concatenate([v for v, _ in pending]))
        for v, i in pending:
            add(v, i)
    if with_ids:  # reconstruct(row) for rescoring: ids were not added in order
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
    else:
        index.make_direct_map()
    logger.info("IVF-PQ index: %d vectors, %d lists", index.ntotal, index.nlist)
    return index


def build_faiss_index(vectors: np.ndarray, kind: str = "flat", *, hnsw_m: int = 32, ef_construction: int = 80,
                      ef_search: int = 128) -> Any:
    """An inner-product faiss index over ``vectors`` (``flat``: exact; ``hnsw``: graph, approximate;
    ``ivfpq``: compressed codes, approximate; ``auto``: :func:`choose_index_kind`)."""
    import faiss

    n, d = vectors.shape
    if kind == "auto":
        kind = choose_index_kind(n, d)
    if kind == "ivfpq":
        step = 100_000
        return build_ivfpq_index((vectors[i : i + step] for i in range(0, n, step)), d, n)
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        index.hnsw.efSearch = int(ef_search)
    else:
        raise ConfigError(
            Errors.E022.format(value=kind, field="index", known=", ".join(INDEX_KINDS))
        )
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def set_ef_search(index: Any, ef_search: int) -> None:
    """Set the search breadth of an HNSW index (no-op for a flat one; IVF keeps its ``nprobe``)."""
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(ef_search)


def is_index_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a dense index (``meta.json`` + ``faiss.index``)."""
    p = Path(path)
    return (p / META_FILE).is_file() and (p / FAISS_FILE).is_file()


def read_index_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of an index directory, checked: both files present (``E300``) and a
    supported kind and version (``E301``)."""
    path = Path(path)
    missing = [f for f in (META_FILE, FAISS_FILE) if not (path / f).is_file()]
    if missing:
        raise FormatError(Errors.E300.format(path=path, kind=INDEX_KIND, missing=", ".join(missing)))
    meta = read_json(path / META_FILE, expect=dict)
    if meta.get("kind") != INDEX_KIND or meta.get("version") != INDEX_VERSION:
        raise FormatError(Errors.E301.format(
            path=path, kind=meta.get("kind", "?"), found=meta.get("version"),
            expected=f"{INDEX_KIND} v{INDEX_VERSION}",
        ))
    return meta


def check_kb(meta: dict[str, Any], kb: KnowledgeBase) -> None:
    """Refuse (``E010``) an index built for another KB."""
    if meta.get("kb_fingerprint") != kb.fingerprint():
        raise IndexMismatchError(Errors.E010.format(
            expected=f"{meta.get('kb_name')}@{meta.get('kb_fingerprint')}",
            actual=f"{kb.name}@{kb.fingerprint()}",
        ))


def read_faiss(path: str | Path) -> Any:
    """The faiss index stored in an index directory."""
    import faiss

    return faiss.read_index(str(Path(path) / FAISS_FILE))


def write_faiss(path: str | Path, index: Any) -> None:
    """Write ``index`` into an index directory being built."""
    import faiss

    faiss.write_index(index, str(Path(path) / FAISS_FILE))


def index_cache_dir() -> Path:
    """Default folder of cached KB indexes: ``$GENBEL_CACHE/indexes`` (``~/.cache/genbel/indexes``)."""
    from genbel.models import cache_dir

    return cache_dir() / "indexes"


def read_cached_index(entry: Path, kb: KnowledgeBase, dim: int) -> Any | None:
    """The faiss index of a cache entry for ``kb`` and vectors of size ``dim``, or ``None`` when it
    is absent or unusable (a warning is logged for an unusable one)."""
    if not is_index_dir(entry):
        return None
    try:
        meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
        if meta.get("kind") == INDEX_KIND and meta.get("version") == INDEX_VERSION \
                and meta.get("kb_fingerprint") == kb.fingerprint():
            index = read_faiss(entry)
            if index.ntotal == meta.get("n_names") and index.d == dim:
                return index
    except (OSError, RuntimeError, ValueError) as e:  # unreadable JSON or faiss file
        logger.warning("cached index %s cannot be read (%s)", entry, e)
    logger.warning("ignoring the unusable cached index %s; rebuilding it", entry)
    return None


def index_vectors(path: str | Path, kb: KnowledgeBase, index_kb: KnowledgeBase | None = None) -> np.ndarray:
    """The name embeddings stored in a dense index directory, one row per name of ``kb``.

    The index must have been built for ``kb``, or for ``index_kb`` whose names include every name
    of ``kb`` (e.g. ``kb`` augmented with training mentions); rows are then matched by
    (concept, normalised name).
    """
    path = Path(path)
    meta = read_index_meta(path)
    built_for = index_kb if index_kb is not None else kb
    check_kb(meta, built_for)
    index = read_faiss(path)
    vectors = index.reconstruct_n(0, index.ntotal)
    if index_kb is None or index_kb is kb:
        return vectors
    have = NameTable.from_kb(index_kb, normalize=bool(meta.get("normalize", True)))
    row_of = {(have.concept_ids[have.row_concept[i]], key): i for i, key in enumerate(have.keys)}
    want = NameTable.from_kb(kb, normalize=bool(meta.get("normalize", True)))
    rows = [row_of.get((want.concept_ids[want.row_concept[i]], key), -1) for i, key in enumerate(want.keys)]
    if min(rows, default=0) < 0:
        raise IndexMismatchError(Errors.E302.format(path=path, found=index.ntotal, expected=len(want)))
    return vectors[np.asarray(rows, dtype=np.int64)]


__all__ = [
    "FAISS_FILE", "INDEX_KIND", "INDEX_KINDS", "INDEX_VERSION", "META_FILE", "build_faiss_index",
    "build_ivfpq_index", "check_kb", "choose_index_kind", "ivfpq_settings", "new_ivfpq_index",
    "index_cache_dir", "index_vectors", "is_index_dir", "read_cached_index", "read_faiss", "read_index_meta",
    "set_ef_search", "write_faiss",
]
