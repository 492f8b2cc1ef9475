"""Dense retrieval linker (SapBERT / BioSyn style) over a faiss index of KB name embeddings.

A BERT-style :class:`~genbel.encoders.TextEncoder` (any local Hugging Face checkpoint or a packaged
alias such as ``minilm``) embeds every KB name, normalised with
:func:`~genbel.kb.normalize.normalize_name` as BioSyn does, into an L2-normalised vector (mean
pooling or ``[CLS]``). The vectors go into a faiss inner-product index
(:mod:`genbel.linkers.dense_index`): exact ``IndexFlatIP`` for small KBs, ``IndexHNSWFlat`` above
``hnsw_threshold`` names, compressed ``IndexIVFPQ`` once the float vectors would pass 2 GiB (UMLS size;
:func:`~genbel.linkers.dense_index.choose_index_kind`). A mention is embedded the same way; the top ``n_candidates`` names by
dense score (and, when a sparse weight λ is set, the top names of the TF-IDF
:class:`~genbel.linkers.sparse.SparseLinker`) are re-scored with BioSyn's
``score = dense + λ · sparse``, and the best ``k`` distinct concepts are returned (a concept
scores its best name).

Trained retrievers (:mod:`genbel.training.retriever`) are directories with ``encoder/`` (any format
of :mod:`genbel.encoders.weights`) and ``retriever.json`` (pooling, max length, learned λ);
indexes are directories with ``meta.json`` + ``faiss.index`` bound to a KB fingerprint, and can be
cached per (encoder, KB) in :func:`~genbel.linkers.dense_index.index_cache_dir`
(:func:`cached_dense_linker`); on a miss, names embedded before by the same encoder (for any KB) come
from the name-vector store (:mod:`genbel.encoders.vector_store`) and only new names are embedded.
The retriever shipped with genbel is ``dense:default`` /
``biosyn:default``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require

require("torch", "transformers", "faiss", extra="models", feature="the dense linker")

from genbel.data.queries import Candidate, MentionQuery
from genbel.encoders.text_encoder import TextEncoder, encoder_fingerprint
from genbel.encoders.vector_pack import NameVectorPack, pack_matches
from genbel.encoders.vector_store import EmbeddingStats, NameVectorStore, embed_with_store, vector_store_dir
from genbel.errors import ConfigError, Errors, FormatError, IndexMismatchError
from genbel.io import atomic_dir
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.base import Linker
from genbel.linkers.dense_index import (
    INDEX_KIND,
    INDEX_KINDS,
    INDEX_VERSION,
    META_FILE,
    build_faiss_index,
    check_kb,
    choose_index_kind,
    index_cache_dir,
    is_index_dir,
    read_cached_index,
    read_faiss,
    read_index_meta,
    set_ef_search,
    write_faiss,
)
from genbel.linkers.nametable import TABLE_FILES, ConceptPriorMixin, NameTable
from genbel.linkers.registry import register_linker
from genbel.linkers.sparse import PRIOR_FILE, SparseLinker
from genbel.textio import read_json

logger = logging.getLogger(__name__)

RETRIEVER_CONFIG = "retriever.json"

# ---------------------------------------------------------------------------------------------- linker
class DenseLinker(ConceptPriorMixin, Linker):
    """Nearest-name linker over encoder embeddings, optionally fused with TF-IDF (BioSyn).

    Parameters: ``encoder`` (a :class:`TextEncoder`, a model path or alias), ``sparse_weight``
    (λ; 0 = dense only), ``sparse`` (a :class:`SparseLinker` for ``kb``; built when λ ≠ 0 and
    none is given), ``index`` (``auto``/``flat``/``hnsw``/``ivfpq``), ``hnsw_threshold`` (``auto`` uses HNSW
    from this many names on, IVF-PQ beyond 2 GiB of vectors), ``hnsw_m``/``ef_construction``/``ef_search``, ``n_candidates`` (names
    retrieved per retriever before re-scoring), ``normalize`` (apply ``normalize_name`` to names and
    mentions), ``progress``, ``prior``/``prior_weight`` (a concept prior, see :meth:`set_prior`),
    ``vector_store`` (a :class:`~genbel.encoders.vector_store.NameVectorStore` of this encoder, or a
    folder of stores: names already in it are not embedded again, new ones are added to it),
    ``name_pack`` (precomputed name vectors of this encoder, a
    :class:`~genbel.encoders.vector_pack.NameVectorPack` or its file: used only when its encoder
    fingerprint is this encoder's, for the names the store does not have).
    ``embedding_stats`` tells how the index got its vectors (``None`` when loaded).
    """

    name = "dense"

    def __init__(
        self,
        kb: KnowledgeBase,
        encoder: TextEncoder | str | Path = "minilm",
        *,
        sparse_weight: float = 0.0,
        sparse: SparseLinker | None = None,
        index: str = "auto",
        hnsw_threshold: int = 500_000,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        n_candidates: int = 64,
        normalize: bool = True,
        progress: bool | None = None,
        prior: Mapping[str, float] | str | Path | None = None,
        prior_weight: float = 0.0,
        vector_store: NameVectorStore | str | Path | None = None,
        name_pack: NameVectorPack | str | Path | None = None,
        _faiss: Any = None,
        _table: NameTable | None = None,
    ) -> None:
        self.kb = kb
        self.encoder = encoder if isinstance(encoder, TextEncoder) else TextEncoder.load(encoder)
        self.sparse_weight = float(sparse_weight)
        self.normalize = bool(normalize)
        self.n_candidates = int(n_candidates)
        if self.n_candidates < 1:
            raise ConfigError(Errors.E023.format(value=n_candidates, field="n_candidates", constraint=">= 1"))
        self.progress = progress
        self.hnsw = {
            "hnsw_m": int(hnsw_m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)
        }
        self.table = _table if _table is not None else NameTable.from_kb(kb, normalize=self.normalize)
        if sparse is None and self.sparse_weight != 0.0:
            sparse = SparseLinker(kb, normalize=self.normalize)
        if sparse is not None and sparse.kb.fingerprint() != kb.fingerprint():
            raise IndexMismatchError(
                Errors.E010.format(expected=sparse.kb.fingerprint(), actual=kb.fingerprint())
            )
        self.sparse = sparse
        if index == "auto":
            index = choose_index_kind(len(self.table), self.encoder.dim, hnsw_threshold=int(hnsw_threshold))
        if index not in INDEX_KINDS or index == "auto":
            raise ConfigError(
                Errors.E022.format(value=index, field="index", known=", ".join(INDEX_KINDS))
            )
        self.index_type = index
        self.embedding_stats: EmbeddingStats | None = None
        if _faiss is not None:
            self.index = _faiss
            set_ef_search(self.index, self.hnsw["ef_search"])
        else:
            # a name shared by several concepts is embedded once, so that its rows tie exactly and
            # the prior, then KB order, decides between the concepts (not batch-padding round-off)
            distinct: dict[str, int] = {}
            inverse = np.fromiter((distinct.setdefault(k, len(distinct)) for k in self.table.keys),
                                  dtype=np.int64, count=len(self.table))
            logger.info("embedding %d distinct names (%d rows) with %s", len(distinct), len(self.table),
                        self.encoder.source or "the encoder")
            store = vector_store
            if store is not None and not isinstance(store, NameVectorStore):
                store = NameVectorStore.for_encoder(store, self.encoder)
            pack = _usable_pack(name_pack, self.encoder, store)
            try:
                if index == "ivfpq":  # UMLS size: streamed, the float vectors are never all in memory
                    self.index = self._build_ivfpq(list(distinct), inverse, store, pack, progress)
                else:
                    vectors, self.embedding_stats = embed_with_store(
                        self.encoder, list(distinct), store, progress=progress, pack=pack
                    )
                    self.index = build_faiss_index(vectors[inverse], index, **self.hnsw)
            finally:
                if store is not None and store is not vector_store:  # opened here
                    store.close()
        self.set_prior(prior, prior_weight)

    #: distinct names embedded and added per step of the streamed IVF-PQ build
    IVFPQ_CHUNK = 100_000

    def _build_ivfpq(self, distinct: list[str], inverse: np.ndarray, store: NameVectorStore | None,
                     pack: NameVectorPack | None, progress: bool | None) -> Any:
        """IVF-PQ over the name rows, embedding ``IVFPQ_CHUNK`` distinct names at a time: a uniform
        sample of them first (the training sample, seeded), then the rest; each chunk's vectors are added
        under the ids of the rows that have those names, so only one chunk of floats is ever held."""
        from tqdm.auto import tqdm

        from genbel.encoders.vector_store import EmbeddingStats
        from genbel.linkers.dense_index import build_ivfpq_index, ivfpq_settings

        n_rows, n_names = len(inverse), len(distinct)
        train = ivfpq_settings(n_rows, self.encoder.dim)["train"]
        rng = np.random.default_rng(0)
        first = rng.choice(n_names, size=min(train, n_names), replace=False)
        rest = np.ones(n_names, dtype=bool)
        rest[first] = False
        order = np.concatenate([np.sort(first), np.flatnonzero(rest)])
        by_name = np.argsort(inverse, kind="stable")  # rows grouped by distinct name
        starts = np.zeros(n_names + 1, dtype=np.int64)
        np.cumsum(np.bincount(inverse, minlength=n_names), out=starts[1:])
        stats = self.embedding_stats = EmbeddingStats()
        show = progress if progress is not None else n_names > 20 * self.encoder.batch_size

        def chunks() -> Any:
            with tqdm(total=n_names, desc="embedding KB names (IVF-PQ)", unit="name", disable=not show) as bar:
                for a in range(0, n_names, self.IVFPQ_CHUNK):
                    ids = order[a : a + self.IVFPQ_CHUNK]
                    v, st = embed_with_store(self.encoder, [distinct[i] for i in ids], store, progress=False,
                                             pack=pack)
                    for f in ("from_store", "from_pack", "embedded"):
                        setattr(stats, f, getattr(stats, f) + getattr(st, f))
                    stats.seconds += st.seconds
                    counts = starts[ids + 1] - starts[ids]
                    rows = np.concatenate([by_name[starts[i] : starts[i + 1]] for i in ids])
                    bar.update(len(ids))
                    yield v[np.repeat(np.arange(len(ids)), counts)], rows

        return build_ivfpq_index(chunks(), self.encoder.dim, n_rows)

    # ------------------------------------------------------------------ scoring
    def preprocess(self, text: str) -> str:
        return normalize_name(text) if self.normalize else text.strip()

    def search_names(
        self, texts: Sequence[str], k: int, vectors: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` name rows by dense score: ``(scores, rows)`` of shape ``(len(texts), k)``; rows
        are -1 where the index has fewer names. ``vectors`` are precomputed query embeddings."""
        if vectors is None:
            vectors = self.encoder.encode([self.preprocess(t) for t in texts])
        k = max(1, min(k, self.index.ntotal)) if self.index.ntotal else 0
        if k == 0 or len(vectors) == 0:
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        scores, rows = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return scores.astype(np.float32), rows.astype(np.int64)

    def _name_vectors(self, rows: np.ndarray) -> np.ndarray:
        return self.index.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))

    def candidates(self, texts: Sequence[str], k: int = 10) -> list[list[Candidate]]:
        """Top-``k`` distinct concepts per mention string, best first; score = dense + λ·sparse."""
        keys = [self.preprocess(t) for t in texts]
        uniq: dict[str, int] = {}
        for key in keys:
            if key:
                uniq.setdefault(key, len(uniq))
        ulist = list(uniq)
        results: list[list[Candidate]] = []
        if ulist and self.index.ntotal and k > 0:
            qv = self.encoder.encode(ulist, progress=self.progress, desc="embedding mentions")
            n = max(self.n_candidates, k)
            d_scores, d_rows = self.search_names(ulist, n, vectors=qv)
            s_rows = None
            if self.sparse is not None and self.sparse_weight != 0.0:
                _, s_rows = self.sparse.search_names(ulist, n)
            for i in range(len(ulist)):
                sparse_rows = None if s_rows is None else s_rows[i]
                results.append(self._rescore(ulist[i], qv[i], d_scores[i], d_rows[i], sparse_rows, k))
        out: list[list[Candidate]] = []
        for key in keys:
            if not key or not results:
                out.append([])
            else:
                out.append([Candidate(c.concept_id, c.name, c.score, c.matched) for c in results[uniq[key]]])
        return out

    def _rescore(self, key: str, qv: np.ndarray, d_scores: np.ndarray, d_rows: np.ndarray,
                 s_rows: np.ndarray | None, k: int) -> list[Candidate]:
        keep = d_rows >= 0
        rows, dense = d_rows[keep], d_scores[keep]
        if s_rows is not None:
            extra = np.setdiff1d(s_rows[s_rows >= 0], rows, assume_unique=False)
            if len(extra):
                rows = np.concatenate([rows, extra])
                dense = np.concatenate([dense, self._name_vectors(extra) @ qv])
            sparse = self.sparse.pair_scores([key], rows[None, :])[0]  # type: ignore[union-attr]
            score = dense + self.sparse_weight * sparse
        else:
            score = dense
        if self._bonus is not None:
            score = score + self._bonus[self.table.row_concept[rows]]
        order = np.lexsort((rows, -score))
        out: list[Candidate] = []
        seen: set[int] = set()
        for i in order:
            j = int(self.table.row_concept[rows[i]])
            if j in seen:
                continue
            seen.add(j)
            out.append(self.table.candidate(int(rows[i]), float(score[i])))
            if len(out) >= k:
                break
        return out

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        return self.candidates([q.text for q in queries], k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, include_encoder: bool = False) -> Path:
        """Write the index (atomic): ``meta.json`` (KB fingerprint, settings, encoder reference),
        ``faiss.index``, the name table (``table.*.npy``), ``sparse/`` when λ ≠ 0, and ``encoder/`` when
        ``include_encoder``."""

        def write(d: Path) -> None:
            meta = {
                "kind": INDEX_KIND,
                "version": INDEX_VERSION,
                "kb_fingerprint": self.kb.fingerprint(),
                "kb_name": self.kb.name,
                "n_names": len(self.table),
                "dim": self.encoder.dim,
                "encoder": None if include_encoder else _encoder_reference(self.encoder),
                "pooling": self.encoder.pooling,
                "max_length": self.encoder.max_length,
                "index": self.index_type,
                **self.hnsw,
                "sparse_weight": self.sparse_weight,
                "n_candidates": self.n_candidates,
                "normalize": self.normalize,
                "prior_weight": self.prior_weight,
            }
            if self.prior:
                (d / PRIOR_FILE).write_text(json.dumps(self.prior), encoding="utf-8")
            write_faiss(d, self.index)
            self.table.save(d)  # read back memory-mapped by load(): no Python object per name
            if self.sparse is not None and self.sparse_weight != 0.0:
                self.sparse.save(d / "sparse")
            if include_encoder:
                self.encoder.save(d / "encoder")
            (d / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

        out = atomic_dir(path, write)
        logger.info("saved dense index (%d names) to %s", len(self.table), out)
        return out

    @classmethod
    def load(cls, path: str | Path, kb: KnowledgeBase, encoder: TextEncoder | str | Path | None = None,
             **options: Any) -> DenseLinker:
        """Load an index saved by :meth:`save` for ``kb``. ``options``: ``n_candidates``,
        ``ef_search``, ``progress``, ``sparse_weight`` (the saved λ by default) and
        ``prior``/``prior_weight`` (the saved ones by default)."""
        path = Path(path)
        meta = read_index_meta(path)
        check_kb(meta, kb)
        if encoder is None:
            ref = path / "encoder" if (path / "encoder").is_dir() else meta.get("encoder")
            if not ref:
                raise FormatError(Errors.E300.format(path=path, kind=INDEX_KIND, missing="encoder/"))
            encoder = TextEncoder.load(ref, pooling=meta["pooling"], max_length=meta["max_length"])
        elif not isinstance(encoder, TextEncoder):
            encoder = TextEncoder.load(
                encoder, pooling=meta["pooling"], max_length=meta["max_length"]
            )
        index = read_faiss(path)
        if index.ntotal != meta["n_names"] or index.d != encoder.dim:
            raise IndexMismatchError(
                Errors.E302.format(path=path, found=index.ntotal, expected=meta["n_names"])
            )
        lam = float(options.pop("sparse_weight", meta["sparse_weight"]))
        sparse = None
        if lam != 0.0:
            sparse = SparseLinker.load(path / "sparse", kb) if (path / "sparse").is_dir() else SparseLinker(
                kb, normalize=meta["normalize"])
        table = NameTable.load(path, normalize=meta["normalize"]) \
            if all((path / f).is_file() for f in TABLE_FILES) else None  # saved by earlier versions: from the KB
        linker = cls(
            kb, encoder, sparse_weight=lam, sparse=sparse, index=meta["index"], hnsw_m=meta["hnsw_m"], _table=table,
            ef_construction=meta["ef_construction"],
            ef_search=int(options.pop("ef_search", meta["ef_search"])),
            n_candidates=int(options.pop("n_candidates", meta["n_candidates"])), normalize=meta["normalize"],
            progress=options.pop("progress", None), _faiss=index,
            prior=options.pop("prior", path / PRIOR_FILE if (path / PRIOR_FILE).is_file() else None),
            prior_weight=float(options.pop("prior_weight", meta.get("prior_weight", 0.0))),
        )
        if options:
            raise ConfigError(Errors.E026.format(what="dense index option(s)", options=sorted(options)))
        if linker.table.n_concepts and len(linker.table) != index.ntotal:
            raise IndexMismatchError(
                Errors.E302.format(path=path, found=index.ntotal, expected=len(linker.table))
            )
        return linker


def _usable_pack(pack: NameVectorPack | str | Path | None, encoder: TextEncoder,
                 store: NameVectorStore | None) -> NameVectorPack | None:
    """``pack`` (loaded when a file) if it was made by ``encoder``, else ``None`` (E461/E462 logged)."""
    if pack is None:
        return None
    if not isinstance(pack, NameVectorPack):
        pack = NameVectorPack.load(pack)
        if pack is None:
            return None
    fingerprint = store.fingerprint if store is not None else encoder_fingerprint(encoder)
    if not pack_matches(pack, fingerprint) or pack.dim != encoder.dim:
        return None
    return pack


def _encoder_reference(encoder: TextEncoder) -> str | None:
    src = encoder.source
    if not src:
        return None
    p = Path(src)
    return str(p.resolve()) if p.exists() else src

# ---------------------------------------------------------------------------------------------- index cache
#: :class:`DenseLinker` options that shape the stored index (part of the cache key)
_INDEX_OPTIONS = ("normalize", "index", "hnsw_threshold", "hnsw_m", "ef_construction")


def index_cache_key(encoder: TextEncoder, kb: KnowledgeBase, *, fingerprint: str | None = None,
                    **options: Any) -> str:
    """``<encoder fingerprint>-<KB fingerprint>-<index settings>``: the cache entry of ``kb``'s index
    (``fingerprint``: the encoder's, when already computed)."""
    import hashlib
    import inspect

    defaults = inspect.signature(DenseLinker.__init__).parameters
    settings = {k: options.get(k, defaults[k].default) for k in _INDEX_OPTIONS}
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{(fingerprint or encoder_fingerprint(encoder))[:16]}-{kb.fingerprint()}-{tag}"


def vector_cache_dir(cache_dir: str | Path) -> Path:
    """Where the name-vector stores of an index cache live: ``$GENBEL_CACHE/vectors`` for the default
    :func:`index_cache_dir`, ``<cache_dir>/vectors`` for another one."""
    cache_dir = Path(cache_dir)
    return vector_store_dir() if cache_dir.resolve() == index_cache_dir().resolve() else cache_dir / "vectors"


def cached_dense_linker(
    kb: KnowledgeBase, encoder: TextEncoder, cache_dir: str | Path, **options: Any
) -> DenseLinker:
    """A :class:`DenseLinker` whose name index is kept in ``cache_dir`` between runs.

    The entry is keyed by :func:`index_cache_key` (encoder weights + tokenizer + pooling, KB
    fingerprint, index settings): the first call embeds the KB names and saves the index
    (atomically), later calls load it. ``options`` are those of :class:`DenseLinker`; the ones that
    do not shape the index (λ, prior, ``n_candidates``, ``ef_search`` …) may differ between calls.
    A cache that cannot be written only costs the saving (a warning is logged).

    On a miss, names already embedded by this encoder for any KB are taken from the name-vector
    store in :func:`vector_cache_dir` (``vector_store``: another folder or store, ``False`` for
    none), so a KB that differs by a few names embeds only those.
    """
    fingerprint = encoder_fingerprint(encoder)
    entry = Path(cache_dir) / index_cache_key(encoder, kb, fingerprint=fingerprint, **options)
    index = read_cached_index(entry, kb, encoder.dim)
    if index is not None:
        if float(options.get("sparse_weight", 0.0)) != 0.0 and options.get("sparse") is None \
                and (entry / "sparse").is_dir():
            options["sparse"] = SparseLinker.load(entry / "sparse", kb)
        table = NameTable.load(entry, normalize=bool(options.get("normalize", True))) \
            if all((entry / f).is_file() for f in TABLE_FILES) else None
        linker = DenseLinker(kb, encoder, _faiss=index, _table=table, **options)
        if linker.index.ntotal == len(linker.table):
            logger.info("dense index of KB %s loaded from the cache %s", kb.name, entry)
            return linker
        logger.warning("cached index %s has %d rows for %d names; rebuilding it",
                       entry, linker.index.ntotal, len(linker.table))
        options.pop("sparse", None)
    logger.info("no cached index for KB %s in %s: embedding its new names", kb.name, cache_dir)
    given = options.pop("vector_store", None)
    store: NameVectorStore | None
    if given is False:
        store = None
    elif isinstance(given, NameVectorStore):
        store = given
    else:
        store = NameVectorStore(vector_cache_dir(cache_dir) if given is None else given, fingerprint, encoder.dim)
    try:
        linker = DenseLinker(kb, encoder, vector_store=store, **options)
    finally:
        if store is not None and store is not given:  # opened here
            store.close()
    try:
        linker.save(entry)
    except OSError as e:
        logger.warning("could not cache the dense index in %s: %s", entry, e)
    return linker

# ---------------------------------------------------------------------------------------------- factories
#: ``dense:default`` / ``biosyn:default``: the retriever shipped in ``genbel/resources/models/``
SHIPPED_ALIAS = "default"
SHIPPED_RETRIEVER = "retriever"


def shipped_retriever_path() -> Path:
    """Where the shipped retriever lives in the installed package (it may be absent from a build)."""
    from importlib import resources

    return Path(str(resources.files("genbel"))) / "resources" / "models" / SHIPPED_RETRIEVER


def shipped_retriever_dir() -> Path | None:
    """The shipped retriever directory, or ``None`` when this build does not bundle it."""
    d = shipped_retriever_path()
    return d if (d / RETRIEVER_CONFIG).is_file() else None


def _retriever_cache(path: Path, cache_dir: str | Path | bool | None) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None:
        shipped = shipped_retriever_dir()
        return index_cache_dir() if shipped is not None and path.resolve() == shipped.resolve() else None
    return index_cache_dir() if cache_dir is True else Path(cache_dir)


def load_retriever(
    path: str | Path, kb: KnowledgeBase, *, cache_dir: str | Path | bool | None = None, **options: Any
) -> DenseLinker:
    """A trained retriever directory (``encoder/`` + ``retriever.json``) → a linker for ``kb``.

    When the directory also holds an index for this KB (``index/``) it is loaded. Otherwise the KB
    names are embedded (minutes on CPU for a large KB) unless an index cache is used:
    ``cache_dir`` = a folder (see :func:`cached_dense_linker`), ``True`` for the default
    :func:`index_cache_dir`, ``False`` for none; ``None`` (default) caches in
    :func:`index_cache_dir` for the shipped retriever only. The training corpus' concept prior
    (``concept_prior.json``) is used unless ``prior=None`` is passed.

    ``retriever.json`` may name an output projection of the encoder (``projection``: a file of the
    directory, :mod:`genbel.encoders.projection`) and precomputed name vectors (``name_vectors``:
    a pack, :mod:`genbel.encoders.vector_pack`), which spare embedding the names they hold when
    their encoder fingerprint is this encoder's (``name_pack=None`` to embed every name).
    """
    path = Path(path)
    cfg_file = path / RETRIEVER_CONFIG
    if not cfg_file.is_file():
        raise FormatError(Errors.E300.format(path=path, kind="trained retriever", missing=RETRIEVER_CONFIG))
    cfg = read_json(cfg_file, expect=dict)
    projection = cfg.get("projection")
    encoder = TextEncoder.load(path / "encoder", pooling=cfg.get("pooling", "auto"),
                               max_length=cfg.get("max_length"),
                               projection=path / str(projection) if projection else None)
    if (path / PRIOR_FILE).is_file():  # gold-concept counts of the training corpus
        options.setdefault("prior", path / PRIOR_FILE)
    if is_index_dir(path / "index"):
        meta = read_json(path / "index" / META_FILE, expect=dict)
        if meta.get("kb_fingerprint") == kb.fingerprint():
            return DenseLinker.load(path / "index", kb, encoder=encoder, **options)
    options.setdefault("sparse_weight", float(cfg.get("sparse_weight", 0.0)))
    if cfg.get("name_vectors") and (path / str(cfg["name_vectors"])).is_file():
        options.setdefault("name_pack", path / str(cfg["name_vectors"]))
    cache = _retriever_cache(path, cache_dir)
    if cache is not None:
        return cached_dense_linker(kb, encoder, cache, **options)
    return DenseLinker(kb, encoder, **options)


def _resolve_path(path: str | None) -> str | None:
    """``default`` → the shipped retriever (the alias wins over a folder named ``default``)."""
    if path != SHIPPED_ALIAS:
        return path
    d = shipped_retriever_dir()
    if d is None:
        raise FormatError(Errors.E300.format(
            path=shipped_retriever_path(), kind="shipped retriever", missing=RETRIEVER_CONFIG
        ))
    return str(d)


def _factory(kb: KnowledgeBase, path: str | None, **options: Any) -> DenseLinker:
    cache_dir = options.pop("cache_dir", None)
    if path is not None:
        p = Path(path)
        if is_index_dir(p):
            return DenseLinker.load(p, kb, **options)
        if (p / RETRIEVER_CONFIG).is_file():
            return load_retriever(p, kb, cache_dir=cache_dir, **options)
    encoder = path if path is not None else options.pop("encoder", "minilm")  # a checkpoint or alias
    if cache_dir is None or cache_dir is False:
        return DenseLinker(kb, encoder, **options)
    if not isinstance(encoder, TextEncoder):
        encoder = TextEncoder.load(encoder)
    cache = index_cache_dir() if cache_dir is True else Path(cache_dir)
    return cached_dense_linker(kb, encoder, cache, **options)


@register_linker("dense")
def _dense_factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> DenseLinker:
    """``dense[:PATH]``: PATH = a saved index, a trained retriever, ``default`` (the shipped
    retriever), or an encoder (default ``minilm``). Option ``cache_dir`` keeps the KB index between
    runs (see :func:`load_retriever`).

    Dense scores only (λ = 0) unless ``sparse_weight`` is given; ``biosyn`` keeps the trained λ."""
    options.setdefault("sparse_weight", 0.0)
    return _factory(kb, _resolve_path(path), **options)


@register_linker("biosyn")
def _biosyn_factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> DenseLinker:
    """``biosyn[:PATH]``: dense + λ·sparse; λ from the trained retriever (1.0 when untrained)."""
    path = _resolve_path(path)
    if path is None or not ((Path(path) / RETRIEVER_CONFIG).is_file() or is_index_dir(Path(path))):
        options.setdefault("sparse_weight", 1.0)
    linker = _factory(kb, path, **options)
    linker.name = "biosyn"
    return linker
