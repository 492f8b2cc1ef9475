"""A fixed linear output projection of a :class:`~genbel.encoders.text_encoder.TextEncoder`.

An encoder's unit vectors ``v`` (size ``d``) become ``normalize((v - mean) @ matrix)`` (size ``k``),
e.g. the top ``k`` principal components of its KB name vectors (:func:`fit_pca`), so that shipped name
vectors (:mod:`genbel.encoders.vector_pack`) are small. The projection is part of the encoder: every
vector it produces (KB names, mentions, names embedded later) goes through it, and its bytes are
part of :func:`~genbel.encoders.text_encoder.encoder_fingerprint`. Stored as ``projection.safetensors``
(tensors ``mean`` and ``matrix``, float32).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbel.errors import Errors, FormatError

PROJECTION_FILE = "projection.safetensors"


@dataclass(frozen=True)
class OutputProjection:
    """``normalize((v - mean) @ matrix)``: ``mean`` of shape ``(d,)``, ``matrix`` of shape ``(d, k)``."""

    mean: np.ndarray
    matrix: np.ndarray

    @property
    def in_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Project ``(n, d)`` vectors to ``(n, k)`` unit vectors (float32)."""
        out = (np.asarray(vectors, dtype=np.float32) - self.mean) @ self.matrix
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def digest(self) -> str:
        """SHA-256 (hex) of the projection's shape and float32 bytes."""
        h = hashlib.sha256(f"{self.in_dim}x{self.out_dim}|".encode())
        h.update(np.ascontiguousarray(self.mean, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(self.matrix, dtype="<f4").tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the projection to the file ``path`` (inside a directory being built atomically)."""
        from safetensors.numpy import save_file

        path = Path(path)
        save_file({"mean": np.ascontiguousarray(self.mean, dtype=np.float32),
                   "matrix": np.ascontiguousarray(self.matrix, dtype=np.float32)},
                  str(path), metadata={"format": "genbel-output-projection", "version": "1"})
        return path

    @classmethod
    def load(cls, path: str | Path, in_dim: int | None = None) -> OutputProjection:
        """Read a projection file; E460 when it is missing, malformed or does not take vectors of size
        ``in_dim`` (the encoder's hidden size)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path)
        try:
            t = load_file(str(path))
        except (OSError, SafetensorError, ValueError) as e:
            raise FormatError(Errors.E460.format(path=path, reason=str(e) or type(e).__name__)) from e
        mean, matrix = t.get("mean"), t.get("matrix")
        if mean is None or matrix is None:
            raise FormatError(Errors.E460.format(path=path, reason="it needs the tensors 'mean' and 'matrix'"))
        if matrix.ndim != 2 or mean.shape != (matrix.shape[0],) or matrix.shape[1] < 1:
            raise FormatError(Errors.E460.format(
                path=path, reason=f"'mean' {tuple(mean.shape)} and 'matrix' {tuple(matrix.shape)} do not fit "
                                  "(expected (d,) and (d, k))"))
        if in_dim is not None and matrix.shape[0] != in_dim:
            raise FormatError(Errors.E460.format(
                path=path, reason=f"it takes vectors of size {matrix.shape[0]}, the encoder gives {in_dim}"))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(matrix))):
            raise FormatError(Errors.E460.format(path=path, reason="it holds non-finite values"))
        return cls(mean.astype(np.float32), matrix.astype(np.float32))


def fit_pca(vectors: np.ndarray, dim: int, *, center: bool = True) -> OutputProjection:
    """The projection onto the top ``dim`` principal directions of ``vectors`` (centred on their mean
    when ``center``), with a deterministic sign per direction (largest coefficient positive)."""
    x = np.asarray(vectors, dtype=np.float64)
    mean = x.mean(0) if center else np.zeros(x.shape[1])
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:dim]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    comps = comps * signs[:, None]
    return OutputProjection(mean.astype(np.float32), np.ascontiguousarray(comps.T, dtype=np.float32))


__all__ = ["PROJECTION_FILE", "OutputProjection", "fit_pca"]
