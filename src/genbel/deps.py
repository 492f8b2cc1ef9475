"""Optional dependencies: one check that names the extra to install.

The base install (``pip install genbel``) covers KBs, corpora, evaluation, the exact/TF-IDF/sparse
linkers and the CLI. Model-backed features (dense encoders, generative linkers, training) need the
``models`` extra (torch, transformers, peft, faiss, …); the benchmarks need ``bench`` (psutil).

>>> from genbel.deps import require
>>> require("torch", "transformers", extra="models", feature="the dense linker")
"""

from __future__ import annotations

import importlib

from genbel.errors import Errors, GenbelError

__all__ = ["EXTRAS", "MissingDependencyError", "extra_of", "missing_dependency", "require"]

#: top-level module -> the genbel extra that installs it
EXTRAS: dict[str, str] = {
    "torch": "models",
    "transformers": "models",
    "tokenizers": "models",
    "safetensors": "models",
    "peft": "models",
    "faiss": "models",
    "gguf": "models",
    "psutil": "bench",
    "marisa_trie": "ner",
    "bioc": "formats",
    "lxml": "formats",
    "spacy": "spacy",
    "fastapi": "serve",
    "uvicorn": "serve",
    "httpx": "serve",
    "swagger_ui_bundle": "serve",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "ray": "distributed",
    "pyarrow": "distributed",
}


class MissingDependencyError(GenbelError):
    """A feature needs an optional package that is not installed (E450 names the extra)."""


def extra_of(module: str | None) -> str | None:
    """The extra that installs ``module`` (``"torch.nn"`` → ``"models"``), or ``None``."""
    return EXTRAS.get((module or "").split(".")[0])


def missing_dependency(modules: list[str], extra: str, feature: str, reason: str) -> MissingDependencyError:
    """The E450 error for ``feature`` needing ``modules`` from ``extra``."""
    return MissingDependencyError(
        Errors.E450.format(feature=feature, packages=", ".join(modules), reason=reason, extra=extra)
    )


def require(*modules: str, extra: str = "models", feature: str | None = None) -> None:
    """Import ``modules``; raise :class:`MissingDependencyError` (E450, naming
    ``pip install 'genbel[EXTRA]'``) when one of them cannot be imported.

    Called at the import points of genbel's heavy modules, so that a base install reports which
    extra a feature needs instead of a bare ``ModuleNotFoundError``.
    """
    missing: list[str] = []
    reason = ""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            missing.append(name)
            reason = reason or str(e)
    if missing:
        raise missing_dependency(missing, extra, feature or "this feature", reason)
