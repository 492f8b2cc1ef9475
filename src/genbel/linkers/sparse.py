"""TF-IDF character n-gram nearest-name linker and top-k candidate generator.

Every KB name (normalised with :func:`~genbel.kb.normalize.normalize_name`) becomes an
L2-normalised TF-IDF vector of character n-grams (scikit-learn ``TfidfVectorizer``, ``char_wb``
2–4-grams by default); a mention is scored against all names with one sparse matrix product per
batch, a concept scores the maximum over its names (cosine), and the top-k concepts are returned.

Unlike scispacy's candidate generator nothing is hard-coded: every vectorizer setting is a
constructor argument (the default ``min_df=1`` keeps short aliases such as "PV"). The index
(vocabulary, idf, name matrix, KB fingerprint) is saved with :meth:`SparseLinker.save` and loaded
with :meth:`SparseLinker.load`; loading it for another KB raises
:class:`~genbel.errors.IndexMismatchError`.

At UMLS size the index is built streamed and queried memory-mapped (:mod:`genbel.linkers.sparse_index`):
``SparseLinker.build(kb, "idx/")`` writes it chunk by chunk, ``SparseLinker.load("idx/", kb)`` maps it;
``SparseLinker(kb)`` runs the same build in a temporary directory and keeps the arrays in memory.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm.auto import tqdm

from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import ConfigError, Errors, FormatError, IndexMismatchError
from genbel.io import atomic_dir
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.base import Linker
from genbel.linkers.nametable import TABLE_FILES, ConceptPriorMixin, NameTable, rows_per_batch
from genbel.linkers.registry import register_linker
from genbel.linkers.sparse_index import CHUNK_NAMES, POSTING_FILES, Postings, write_sparse_index
from genbel.textio import read_json

logger = logging.getLogger(__name__)

INDEX_KIND = "sparse"
INDEX_VERSION = 2
_FILES = ("meta.json", "vocabulary.json", "idf.npy", *POSTING_FILES, *TABLE_FILES)
#: the files of a version-1 index (the name matrix in one ``.npz``; still read)
_FILES_V1 = ("meta.json", "vocabulary.json", "idf.npy", "names.npz")
PRIOR_FILE = "concept_prior.json"

#: vectorizer settings (the index's hyper-parameters); saved in ``meta.json``
DEFAULT_PARAMS: dict[str, Any] = {
    "analyzer": "char_wb",
    "ngram_range": (2, 4),
    "min_df": 1,
    "max_df": 1.0,
    "max_features": None,
    "sublinear_tf": False,
    "use_idf": True,
    "smooth_idf": True,
    "norm": "l2",
    "normalize": True,
}


def _coerce_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate settings; accept CLI-style strings (``ngram_range="2,4"``, ``min_df="2"``)."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ConfigError(
            Errors.E025.format(what="sparse index option(s)", unknown=sorted(unknown), known=sorted(DEFAULT_PARAMS))
        )
    out = {**DEFAULT_PARAMS, **params}
    ng = out["ngram_range"]
    if isinstance(ng, str):
        ng = ng.replace("-", ",").split(",")
    try:
        lo, hi = (int(x) for x in ng)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            Errors.E024.format(value=ng, field="ngram_range", kind="two integers")
        ) from e
    if not 1 <= lo <= hi:
        raise ConfigError(
            Errors.E023.format(value=(lo, hi), field="ngram_range", constraint="(min, max) with 1 <= min <= max")
        )
    out["ngram_range"] = (lo, hi)
    for key in ("min_df", "max_df"):
        v = out[key]
        if isinstance(v, str):
            v = float(v) if "." in v else int(v)
        out[key] = v
    if out["analyzer"] not in ("char_wb", "char", "word"):
        raise ConfigError(Errors.E022.format(value=out["analyzer"], field="analyzer", known="char_wb, char, word"))
    for key in ("sublinear_tf", "use_idf", "smooth_idf", "normalize"):
        v = out[key]
        out[key] = v.lower() in ("1", "true", "yes") if isinstance(v, str) else bool(v)
    if out["max_features"] is not None:
        out["max_features"] = int(out["max_features"])
    return out


def _vectorizer(params: dict[str, Any], vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=params["analyzer"],
        ngram_range=tuple(params["ngram_range"]),
        min_df=params["min_df"],
        max_df=params["max_df"],
        max_features=params["max_features"],
        sublinear_tf=params["sublinear_tf"],
        use_idf=params["use_idf"],
        smooth_idf=params["smooth_idf"],
        norm=params["norm"],
        lowercase=True,
        dtype=np.float32,
        vocabulary=vocabulary,
    )


class SparseLinker(ConceptPriorMixin, Linker):
    """Cosine nearest-name linker over TF-IDF character n-grams.

    ``SparseLinker(kb)`` builds the index from the KB (about 3 s for MEDIC's 73k names);
    options are the vectorizer settings of :data:`DEFAULT_PARAMS` plus ``batch_size`` (queries
    scored per sparse product), ``progress`` (show a progress bar; ``None`` = only for large
    inputs) and ``prior``/``prior_weight`` (see :meth:`set_prior`). Identical query strings in one
    call are scored once.
    """

    name = "sparse"

    def __init__(
        self,
        kb: KnowledgeBase,
        *,
        batch_size: int = 64,
        progress: bool | None = None,
        prior: Mapping[str, float] | str | Path | None = None,
        prior_weight: float = 0.0,
        _state: tuple[TfidfVectorizer, Postings, NameTable] | None = None,
        **params: Any,
    ) -> None:
        self.kb = kb
        self.params = _coerce_params(params)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(Errors.E023.format(value=batch_size, field="batch_size", constraint=">= 1"))
        self.progress = progress
        if _state is None:  # the streamed build, in a temporary directory, read back into memory
            with tempfile.TemporaryDirectory(prefix="genbel-sparse-") as tmp:
                write_sparse_index(kb, Path(tmp), self.params, progress=progress)
                _state = _read_state(Path(tmp), self.params, mmap=False)
        self.vectorizer, self.postings, self.table = _state
        self.set_prior(prior, prior_weight)

    @classmethod
    def build(
        cls, kb: KnowledgeBase, path: str | Path, *, chunk_names: int = CHUNK_NAMES, progress: bool | None = None,
        prior: Mapping[str, float] | str | Path | None = None, prior_weight: float = 0.0, **params: Any,
    ) -> Path:
        """Build the index of ``kb`` straight into the directory ``path`` (atomic), streamed in chunks of
        ``chunk_names`` names: memory stays at one chunk plus the n-gram vocabulary, so a UMLS-sized KB
        builds in a few GB. Load it with :meth:`load` (memory-mapped)."""
        params = _coerce_params(params)
        if isinstance(prior, (str, Path)):
            from genbel.linkers.nametable import read_prior

            prior = read_prior(prior)

        def write(d: Path) -> None:
            counts = write_sparse_index(kb, d, params, chunk_names=chunk_names, progress=progress)
            _write_meta(d, kb, params, counts, dict(prior) if prior else None, prior_weight)

        out = atomic_dir(path, write)
        logger.info("built sparse index (%s names) in %s", f"{kb.n_names():,}", out)
        return out

    @property
    def n_features(self) -> int:
        return self.postings.n_features

    # ------------------------------------------------------------------ scoring
    def preprocess(self, text: str) -> str:
        """The string that is vectorised for a mention (names got the same treatment)."""
        return normalize_name(text) if self.params["normalize"] else text.strip()

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF vectors (rows, L2-normalised) of raw mention strings."""
        keys = [self.preprocess(t) for t in texts]
        if len(self.table) == 0 or self.n_features == 0:
            return sp.csr_matrix((len(keys), self.n_features), dtype=np.float32)
        return self.vectorizer.transform(keys).tocsr()

    def name_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Dense ``(len(texts), n_names)`` cosine scores (use for small batches)."""
        return self._score_rows(self.transform(texts))

    def _score_rows(self, q: sp.csr_matrix, out: np.ndarray | None = None) -> np.ndarray:
        """Dense cosine scores of query vectors ``q`` with every name.

        One query at a time: the posting lists of the query's n-grams (:class:`Postings`, memory-mapped
        for a loaded index) are added with the query weights straight into a dense row. This does the
        arithmetic of the sparse product ``q @ names.T`` but builds no sparse result.
        """
        out = np.empty((q.shape[0], len(self.table)), dtype=np.float32) if out is None else out
        return self.postings.score(q, out)

    def pair_scores(self, texts: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """Cosine of each text with selected name rows.

        ``rows`` is ``(len(texts), m)`` and so is the result.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 2 or rows.shape[0] != len(texts):
            raise ConfigError(Errors.E024.format(value=rows.shape, field="rows", kind=f"an array of shape ({len(texts)}, m)"))
        q = self.transform(texts)
        m = rows.shape[1]
        if m == 0 or len(texts) == 0:
            return np.zeros(rows.shape, dtype=np.float32)
        qrep = q[np.repeat(np.arange(len(texts)), m)]
        # the name rows' vectors: the query side's transform of their keys gives the indexed weights
        sel = self.vectorizer.transform([self.table.keys[int(r)] for r in rows.ravel()]).tocsr()
        return np.asarray(qrep.multiply(sel).sum(axis=1), dtype=np.float32).reshape(rows.shape)

    def search_names(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best name rows per text: ``(scores, rows)``, each ``(len(texts), k)``, best first.

        Used as the candidate generator of BioSyn-style training (which works on names, not
        concepts). ``k`` is capped at the number of names.
        """
        k = min(k, len(self.table))
        scores = np.zeros((len(texts), k), dtype=np.float32)
        rows = np.zeros((len(texts), k), dtype=np.int64)
        step = rows_per_batch(len(self.table), self.batch_size)
        for s in range(0, len(texts), step):
            block = self.name_scores(texts[s : s + step])
            if k == 0:
                continue
            part = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < block.shape[1] else np.tile(
                np.arange(block.shape[1]), (block.shape[0], 1)
            )
            vals = np.take_along_axis(block, part, axis=1)
            order = np.lexsort((part, -vals))  # by score, ties by KB order
            rows[s : s + step] = np.take_along_axis(part, order, axis=1)
            scores[s : s + step] = np.take_along_axis(vals, order, axis=1)
        return scores, rows

    def candidates(self, texts: Sequence[str], k: int = 10) -> list[list[Candidate]]:
        """Top-``k`` distinct concepts per mention string, best first (cosine of the best name).

        A mention sharing no n-gram with any name (or empty after normalisation) gets ``[]``.
        """
        keys = [self.preprocess(t) for t in texts]
        uniq: dict[str, int] = {}
        for key in keys:
            if key:
                uniq.setdefault(key, len(uniq))
        ulist = list(uniq)
        results: list[list[Candidate]] = []
        if ulist and self.table.n_concepts and k > 0:
            step = rows_per_batch(len(self.table), self.batch_size)
            show = self.progress if self.progress is not None else len(ulist) > 20 * step
            buf = np.empty((min(step, len(ulist)), len(self.table)), dtype=np.float32)  # reused per batch
            for s in tqdm(range(0, len(ulist), step), desc="tf-idf", unit="batch", disable=not show):
                batch = ulist[s : s + step]
                block = self._score_rows(self.vectorizer.transform(batch).tocsr(), out=buf)
                results.extend(self.table.top_concepts(block, k, min_score=0.0, bonus=self._bonus))
        out: list[list[Candidate]] = []
        for key in keys:
            if not key or not results:
                out.append([])
            else:
                out.append([Candidate(c.concept_id, c.name, c.score, c.matched) for c in results[uniq[key]]])
        return out

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        return self.candidates([q.text for q in queries], k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the index to a directory (atomic): ``meta.json`` (settings, KB fingerprint, counts),
        ``vocabulary.json``, ``idf.npy``, the posting lists (``postings.*.npy``) and the name table
        (``table.*.npy``)."""

        def write(d: Path) -> None:
            self.postings.save(d)
            self.table.save(d)
            vocab = getattr(self.vectorizer, "vocabulary_", {}) or {}
            (d / "vocabulary.json").write_text(
                json.dumps({t: int(i) for t, i in vocab.items()}, ensure_ascii=False), encoding="utf-8"
            )
            idf = self.vectorizer.idf_ if self.params["use_idf"] and vocab else np.zeros(0, dtype=np.float32)
            np.save(d / "idf.npy", np.asarray(idf, dtype=np.float32))
            counts = {"n_names": len(self.table), "n_concepts": self.table.n_concepts,
                      "n_features": self.n_features, "nnz": self.postings.nnz}
            _write_meta(d, self.kb, self.params, counts, self.prior, self.prior_weight)

        out = atomic_dir(path, write)
        logger.info("saved sparse index (%d names) to %s", len(self.table), out)
        return out

    @classmethod
    def load(cls, path: str | Path, kb: KnowledgeBase, *, mmap: bool = True, **options: Any) -> SparseLinker:
        """Load an index saved by :meth:`save` or :meth:`build` for ``kb``; the posting lists and the name
        table are memory-mapped (``mmap=False`` reads them into memory). ``options``: ``batch_size``,
        ``progress``, ``prior``/``prior_weight`` (default: the saved ones).

        Raises :class:`~genbel.errors.IndexMismatchError` when the index was built for another KB.
        """
        path = Path(path)
        meta = read_json(path / "meta.json", expect=dict) if (path / "meta.json").is_file() else {}
        version = meta.get("version")
        need = _FILES_V1 if version == 1 else _FILES
        missing = [f for f in need if not (path / f).is_file()]
        if missing:
            raise FormatError(Errors.E300.format(path=path, kind=INDEX_KIND, missing=", ".join(missing)))
        if meta.get("kind") != INDEX_KIND or version not in (1, INDEX_VERSION):
            raise FormatError(
                Errors.E301.format(
                    path=path, kind=meta.get("kind", "?"), found=version,
                    expected=f"{INDEX_KIND} v{INDEX_VERSION}",
                )
            )
        if meta["kb_fingerprint"] != kb.fingerprint():
            raise IndexMismatchError(
                Errors.E010.format(
                    expected=f"{meta.get('kb_name')}@{meta['kb_fingerprint']}",
                    actual=f"{kb.name}@{kb.fingerprint()}",
                )
            )
        params = _coerce_params(meta["params"])
        if version == 1:
            table = NameTable.from_kb(kb, normalize=params["normalize"])
            matrix = sp.load_npz(path / "names.npz")
            if matrix.shape[0] != len(table):
                raise IndexMismatchError(Errors.E302.format(path=path, found=matrix.shape[0], expected=len(table)))
            vec = _read_state(path, params, mmap=False, table=table)[0]
            state = (vec, Postings.from_matrix(matrix), table)
        else:
            state = _read_state(path, params, mmap=mmap)
            if len(state[2]) != meta.get("n_names"):
                raise IndexMismatchError(Errors.E302.format(path=path, found=len(state[2]), expected=meta.get("n_names")))
        batch = options.pop("batch_size", 64)
        progress = options.pop("progress", None)
        prior = options.pop("prior", path / PRIOR_FILE if (path / PRIOR_FILE).is_file() else None)
        prior_weight = float(options.pop("prior_weight", meta.get("prior_weight", 0.0)))
        if options:
            raise ConfigError(
                Errors.E026.format(what="sparse index option(s)", options=sorted(options))
            )
        return cls(kb, batch_size=batch, progress=progress, prior=prior, prior_weight=prior_weight,
                   _state=state, **params)


def _write_meta(d: Path, kb: KnowledgeBase, params: dict[str, Any], counts: dict[str, int],
                prior: Mapping[str, float] | None, prior_weight: float) -> None:
    meta = {
        "kind": INDEX_KIND,
        "version": INDEX_VERSION,
        "kb_fingerprint": kb.fingerprint(),
        "kb_name": kb.name,
        **counts,
        "params": {**params, "ngram_range": list(params["ngram_range"])},
        "prior_weight": prior_weight,
    }
    if prior:
        (d / PRIOR_FILE).write_text(json.dumps(dict(prior)), encoding="utf-8")
    (d / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _read_state(
    path: Path, params: dict[str, Any], mmap: bool, table: NameTable | None = None
) -> tuple[TfidfVectorizer, Postings, NameTable]:
    """The query-side vectorizer (saved vocabulary and idf), the posting lists and the name table."""
    table = table if table is not None else NameTable.load(path, normalize=params["normalize"], mmap=mmap)
    vocab = read_json(path / "vocabulary.json", expect=dict)
    vec = _vectorizer(params, vocabulary=vocab or None)
    if vocab:
        vec._validate_vocabulary()  # sets vocabulary_ / fixed_vocabulary_ as fit would
        if params["use_idf"]:
            vec.idf_ = np.load(path / "idf.npy").astype(np.float32)
    postings = Postings.load(path, len(table), mmap=mmap) if (path / POSTING_FILES[0]).is_file() else None
    return vec, postings, table  # type: ignore[return-value]


def _factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> SparseLinker:
    if path:
        return SparseLinker.load(path, kb, **options)
    return SparseLinker(kb, **options)


@register_linker("sparse")
def _sparse_factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> SparseLinker:
    """``sparse[:INDEX_DIR]``: TF-IDF char n-gram linker (built from the KB when no index is given)."""
    return _factory(kb, path, **options)


@register_linker("tfidf")
def _tfidf_factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> SparseLinker:
    """``tfidf[:INDEX_DIR]``: alias of ``sparse``."""
    linker = _factory(kb, path, **options)
    linker.name = "tfidf"
    return linker
