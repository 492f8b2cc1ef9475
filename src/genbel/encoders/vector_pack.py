"""Precomputed name vectors shipped with an encoder (a *pack*), read-only and small.

A pack holds, for many texts (e.g. every normalised name of genbel's bundled KB), the vector the
encoder gives to each, as int8 with one float16 scale per vector, keyed by the first 8 bytes of the
text's SHA-256 (:func:`~genbel.encoders.vector_store.text_key`), sorted for a binary search. It is one
``safetensors`` file: tensors ``keys`` (uint64, ``n``), ``codes`` (int8, ``n × dim``, or for 4 bits
uint8, ``n × ceil(dim / 2)``), ``scales`` (float16, ``n``); metadata ``format``, ``version``,
``bits``, ``encoder`` (the
:func:`~genbel.encoders.text_encoder.encoder_fingerprint` it was made with), ``dim`` and free-form
information (KB name and fingerprint, how the vectors were made).

A pack is only used with the encoder whose fingerprint it records (E461 otherwise, logged) and is
only a source of vectors: :func:`~genbel.encoders.vector_store.embed_with_store` takes from it the
texts the name-vector store does not have and embeds the rest. A vector read back is the stored one
decoded and renormalised (int8: cosine to the float vector ≥ 0.999; the effect of each codec on
Recall@1 is measured by ``benchmarks/bench_embedding.py codecs``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genbel.encoders.vector_store import text_key
from genbel.errors import ConfigError, Errors

logger = logging.getLogger(__name__)

PACK_FORMAT = "genbel-name-vectors"
PACK_VERSION = "1"


def pack_key(text: str) -> int:
    """The pack key of a text: the first 8 bytes of its store key (SHA-256), as an unsigned integer."""
    return int.from_bytes(text_key(text)[:8], "big")


def _keys(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter((pack_key(t) for t in texts), dtype=np.uint64, count=len(texts))


BITS = (8, 4)
#: how a pack stores its vectors: ``int8``/``int4`` per component with a float16 scale per vector, or
#: ``pq`` (product quantisation: one byte per sub-vector, an index into its 256 centroids)
CODECS = ("int8", "int4", "pq")


def quantize_rows(vectors: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantisation per row: ``(codes, scales)`` with ``scale = max|v| / L`` as float16,
    ``L`` = 127 for 8 bits (int8 codes, ``n × d``) or 7 for 4 bits (two codes per uint8, the first in
    the low nibble, offset by 8: ``n × ceil(d / 2)``)."""
    if bits not in BITS:
        raise ConfigError(Errors.E463.format(reason=f"bits must be one of {BITS}, not {bits}"))
    v = np.asarray(vectors, dtype=np.float32)
    top = 127 if bits == 8 else 7
    scales = (np.abs(v).max(axis=1) / top).astype(np.float16)
    s = np.maximum(scales.astype(np.float32), np.float32(1e-12))[:, None]
    q = np.clip(np.rint(v / s), -top, top)
    if bits == 8:
        return q.astype(np.int8), scales
    u = (q + 8).astype(np.uint8)
    if u.shape[1] % 2:
        u = np.concatenate([u, np.full((len(u), 1), 8, np.uint8)], axis=1)
    return (u[:, 0::2] | (u[:, 1::2] << 4)).astype(np.uint8), scales


def dequantize_rows(codes: np.ndarray, scales: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Unit float32 vectors from :func:`quantize_rows` output (``dim``: the vector size of 4-bit codes,
    whose last nibble may be padding; uint8 codes are 4-bit, int8 codes 8-bit)."""
    if codes.dtype == np.uint8:
        q = np.empty((len(codes), 2 * codes.shape[1]), np.float32)
        q[:, 0::2] = (codes & 0x0F).astype(np.float32) - 8
        q[:, 1::2] = (codes >> 4).astype(np.float32) - 8
        q = q[:, : dim or q.shape[1]]
    else:
        q = codes.astype(np.float32)
    v = q * scales.astype(np.float32)[:, None]
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))


def train_pq(vectors: np.ndarray, n_subvectors: int, seed: int = 1234) -> np.ndarray:
    """Centroids ``(n_subvectors, 256, dim / n_subvectors)`` of a product quantiser trained on ``vectors``
    (faiss k-means, deterministic for a seed)."""
    import faiss

    d = vectors.shape[1]
    if n_subvectors < 1 or d % n_subvectors:
        raise ConfigError(Errors.E463.format(reason=f"{d} dimensions do not split into {n_subvectors} sub-vectors"))
    pq = faiss.ProductQuantizer(d, n_subvectors, 8)
    pq.cp.seed = seed
    pq.train(np.ascontiguousarray(vectors, dtype=np.float32))
    return faiss.vector_to_array(pq.centroids).reshape(n_subvectors, 256, d // n_subvectors).astype(np.float32)


def pq_encode(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``(n, m)`` uint8 codes: the nearest centroid of each sub-vector."""
    m, _, ds = centroids.shape
    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), m, ds)
    codes = np.empty((len(vectors), m), np.uint8)
    for j in range(m):
        c = centroids[j]
        dist = (c * c).sum(1)[None, :] - 2.0 * v[:, j] @ c.T
        codes[:, j] = dist.argmin(1)
    return codes


def pq_decode(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Unit float32 vectors from :func:`pq_encode` codes."""
    m = centroids.shape[0]
    v = centroids[np.arange(m)[None, :], codes.astype(np.int64)].reshape(len(codes), -1)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))


def write_name_pack(
    path: str | Path, texts: Sequence[str], vectors: np.ndarray, fingerprint: str,
    info: Mapping[str, Any] | None = None, codec: str = "int8", pq_subvectors: int = 96,
) -> Path:
    """Write the pack of ``texts`` (distinct) and their ``vectors`` made by the encoder with
    ``fingerprint`` to the file ``path`` (atomically: a temporary file renamed over it), stored with
    ``codec`` (:data:`CODECS`; ``pq`` with ``pq_subvectors`` bytes per vector, trained on ``vectors``).
    E463 when texts repeat or two share a key."""
    from safetensors.numpy import save

    if codec not in CODECS:
        raise ConfigError(Errors.E463.format(reason=f"codec must be one of {', '.join(CODECS)}, not {codec!r}"))
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ConfigError(Errors.E463.format(reason=f"{vectors.shape} vectors for {len(texts)} texts"))
    keys = _keys(texts)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if len(keys) > 1 and np.any(keys[1:] == keys[:-1]):
        raise ConfigError(Errors.E463.format(reason="two texts have the same key (repeated texts?)"))
    tensors: dict[str, np.ndarray] = {"keys": keys}
    if codec == "pq":
        tensors["centroids"] = train_pq(vectors, pq_subvectors)
        tensors["codes"] = pq_encode(vectors[order], tensors["centroids"])
    else:
        tensors["codes"], tensors["scales"] = quantize_rows(vectors[order], 8 if codec == "int8" else 4)
    meta = {"format": PACK_FORMAT, "version": PACK_VERSION, "encoder": fingerprint, "codec": codec,
            "dim": str(vectors.shape[1]), "n": str(len(texts)), "info": json.dumps(dict(info or {}), sort_keys=True)}
    data = save(tensors, metadata=meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NameVectorPack:
    """The vectors of a pack file (see the module docstring): :meth:`get` looks texts up."""

    def __init__(self, keys: np.ndarray, codes: np.ndarray, fingerprint: str, *, codec: str, dim: int,
                 scales: np.ndarray | None = None, centroids: np.ndarray | None = None,
                 info: Mapping[str, Any] | None = None, path: Path | None = None) -> None:
        self.keys = keys
        self.codes = codes
        self.scales = scales
        self.centroids = centroids
        self.codec = codec
        self._dim = int(dim)
        self.fingerprint = fingerprint
        self.info = dict(info or {})
        self.path = path

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def load(cls, path: str | Path) -> NameVectorPack | None:
        """Read a pack file; ``None`` (E462, logged) when it is missing or not a valid pack."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except (OSError, SafetensorError, ValueError) as e:
            logger.warning(Errors.E462.format(path=path, reason=str(e) or type(e).__name__))
            return None
        keys = tensors.get("keys")
        reason = ""
        if meta.get("format") != PACK_FORMAT or meta.get("version") != PACK_VERSION:
            reason = f"format {meta.get('format')!r} v{meta.get('version')}, expected {PACK_FORMAT} v{PACK_VERSION}"
        elif not _shapes_fit(meta, tensors):
            reason = "tensors of the wrong type or shape"
        elif keys is not None and len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
            reason = "its keys are not sorted"
        elif not all(np.all(np.isfinite(tensors[t])) for t in ("scales", "centroids") if t in tensors):
            reason = "non-finite scales or centroids"
        if reason:
            logger.warning(Errors.E462.format(path=path, reason=reason))
            return None
        try:
            info = json.loads(meta.get("info", "{}"))
        except ValueError:
            info = {}
        return cls(tensors["keys"], tensors["codes"], str(meta.get("encoder", "")), codec=meta.get("codec", "int8"),
                   dim=int(meta["dim"]), scales=tensors.get("scales"), centroids=tensors.get("centroids"),
                   info=info, path=path)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """Unit float32 vectors of pack rows."""
        if self.codec == "pq":
            return pq_decode(self.codes[rows], self.centroids)  # type: ignore[arg-type]
        return dequantize_rows(self.codes[rows], self.scales[rows], self.dim)  # type: ignore[index]

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, found)``: unit float32 vectors of the texts in the pack (zeros elsewhere) and the
        mask of those found."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts) or not len(self.keys):
            return out, np.zeros(len(texts), dtype=bool)
        q = _keys(texts)
        pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        found = self.keys[pos] == q
        out[found] = self.decode(pos[found])
        return out, found


def _shapes_fit(meta: Mapping[str, str], t: Mapping[str, np.ndarray]) -> bool:
    codec = meta.get("codec", "int8")
    try:
        dim = int(meta.get("dim", ""))
    except ValueError:
        return False
    keys, codes = t.get("keys"), t.get("codes")
    if codec not in CODECS or keys is None or codes is None or keys.dtype != np.uint64 or keys.ndim != 1 \
            or codes.ndim != 2 or len(codes) != len(keys):
        return False
    if codec == "pq":
        c = t.get("centroids")
        return (c is not None and c.dtype == np.float32 and c.ndim == 3 and c.shape[1] == 256
                and c.shape[0] * c.shape[2] == dim and codes.dtype == np.uint8 and codes.shape[1] == c.shape[0])
    scales = t.get("scales")
    width, code_type = (dim, np.int8) if codec == "int8" else ((dim + 1) // 2, np.uint8)
    return (scales is not None and scales.dtype == np.float16 and scales.shape == keys.shape
            and codes.dtype == code_type and codes.shape[1] == width)


def pack_matches(pack: NameVectorPack, fingerprint: str) -> bool:
    """Whether ``pack`` was made by the encoder with ``fingerprint`` (E461 logged when not)."""
    if pack.fingerprint == fingerprint:
        return True
    logger.warning(Errors.E461.format(path=pack.path or "<pack>", found=pack.fingerprint[:16],
                                      expected=fingerprint[:16]))
    return False


__all__ = [
    "BITS", "CODECS", "PACK_FORMAT", "PACK_VERSION", "NameVectorPack", "dequantize_rows", "pack_key", "pack_matches",
    "pq_decode", "pq_encode", "quantize_rows", "train_pq", "write_name_pack",
]
