"""Precomputed name vectors shipped with an encoder (a *pack*), read-only and small.

A pack holds, for many texts (e.g. every normalised name of genbel's bundled KB), the vector the
encoder gives to each, as int8 with one float16 scale per vector, keyed by the first 8 bytes of the
text's SHA-256 (:func:`~genbel.encoders.vector_store.text_key`), sorted for a binary search. It is one
``safetensors`` file: tensors ``keys`` (uint64, ``n``), ``codes`` (int8, ``n × dim``), ``scales``
(float16, ``n``); metadata ``format``, ``version``, ``encoder`` (the
:func:`~genbel.encoders.text_encoder.encoder_fingerprint` it was made with), ``dim`` and free-form
information (KB name and fingerprint, how the vectors were made).

A pack is only used with the encoder whose fingerprint it records (E461 otherwise, logged) and is
only a source of vectors: :func:`~genbel.encoders.vector_store.embed_with_store` takes from it the
texts the name-vector store does not have and embeds the rest. A vector read back is the stored one
dequantised and renormalised (cosine to the float vector ≥ 0.9999 for 384 dimensions; measured in
``benchmarks/bench_embedding.py``).
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


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: ``(codes, scales)`` with ``scale = max|v| / 127`` as float16."""
    v = np.asarray(vectors, dtype=np.float32)
    scales = (np.abs(v).max(axis=1) / 127.0).astype(np.float16)
    s = np.maximum(scales.astype(np.float32), np.float32(1e-12))[:, None]
    codes = np.clip(np.rint(v / s), -127, 127).astype(np.int8)
    return codes, scales


def dequantize_rows(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Unit float32 vectors from :func:`quantize_rows` output."""
    v = codes.astype(np.float32) * scales.astype(np.float32)[:, None]
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))


def write_name_pack(
    path: str | Path, texts: Sequence[str], vectors: np.ndarray, fingerprint: str,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write the pack of ``texts`` (distinct) and their ``vectors`` made by the encoder with
    ``fingerprint`` to the file ``path`` (atomically: a temporary file renamed over it). E463 when texts repeat or two share a key."""
    from safetensors.numpy import save

    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ConfigError(Errors.E463.format(reason=f"{vectors.shape} vectors for {len(texts)} texts"))
    keys = _keys(texts)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if len(keys) > 1 and np.any(keys[1:] == keys[:-1]):
        raise ConfigError(Errors.E463.format(reason="two texts have the same key (repeated texts?)"))
    codes, scales = quantize_rows(vectors[order])
    meta = {"format": PACK_FORMAT, "version": PACK_VERSION, "encoder": fingerprint,
            "dim": str(vectors.shape[1]), "n": str(len(texts)), "info": json.dumps(dict(info or {}), sort_keys=True)}
    data = save({"keys": keys, "codes": codes, "scales": scales}, metadata=meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class NameVectorPack:
    """The vectors of a pack file (see the module docstring): :meth:`get` looks texts up."""

    def __init__(self, keys: np.ndarray, codes: np.ndarray, scales: np.ndarray, fingerprint: str,
                 info: Mapping[str, Any] | None = None, path: Path | None = None) -> None:
        self.keys = keys
        self.codes = codes
        self.scales = scales
        self.fingerprint = fingerprint
        self.info = dict(info or {})
        self.path = path

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return int(len(self.keys))

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
        keys, codes, scales = tensors.get("keys"), tensors.get("codes"), tensors.get("scales")
        reason = ""
        if meta.get("format") != PACK_FORMAT or meta.get("version") != PACK_VERSION:
            reason = f"format {meta.get('format')!r} v{meta.get('version')}, expected {PACK_FORMAT} v{PACK_VERSION}"
        elif keys is None or codes is None or scales is None:
            reason = "it needs the tensors keys, codes and scales"
        elif (keys.dtype != np.uint64 or codes.dtype != np.int8 or scales.dtype != np.float16
              or keys.ndim != 1 or codes.ndim != 2 or scales.shape != keys.shape or len(codes) != len(keys)
              or str(codes.shape[1]) != meta.get("dim")):
            reason = "tensors of the wrong type or shape"
        elif len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
            reason = "its keys are not sorted"
        elif not np.all(np.isfinite(scales)):
            reason = "non-finite scales"
        if reason:
            logger.warning(Errors.E462.format(path=path, reason=reason))
            return None
        try:
            info = json.loads(meta.get("info", "{}"))
        except ValueError:
            info = {}
        return cls(keys, codes, scales, str(meta.get("encoder", "")), info, path)

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, found)``: unit float32 vectors of the texts in the pack (zeros elsewhere) and the
        mask of those found."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts) or not len(self.keys):
            return out, np.zeros(len(texts), dtype=bool)
        q = _keys(texts)
        pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        found = self.keys[pos] == q
        rows = pos[found]
        out[found] = dequantize_rows(self.codes[rows], self.scales[rows])
        return out, found


def pack_matches(pack: NameVectorPack, fingerprint: str) -> bool:
    """Whether ``pack`` was made by the encoder with ``fingerprint`` (E461 logged when not)."""
    if pack.fingerprint == fingerprint:
        return True
    logger.warning(Errors.E461.format(path=pack.path or "<pack>", found=pack.fingerprint[:16],
                                      expected=fingerprint[:16]))
    return False


__all__ = [
    "PACK_FORMAT", "PACK_VERSION", "NameVectorPack", "dequantize_rows", "pack_key", "pack_matches",
    "quantize_rows", "write_name_pack",
]
