"""Linkers: the :class:`Linker` interface, the registry and the linker classes.

>>> from genbel.linkers import create_linker, available_linkers
>>> available_linkers()
['biosyn', 'dense', 'document', 'exact', 'generative', 'hybrid', 'sparse', 'tfidf']
>>> linker = create_linker("tfidf", kb)          # or "generative:PATH", "dense:default", …
>>> linker.link(["heart attack"], k=5)           # strings, (text, context) pairs or MentionQuery

The interface, registry and the exact linker are imported with this package; the other linker
classes load on first access (``from genbel.linkers import SparseLinker``), so that importing this
package never imports torch. ``DenseLinker``, ``GenerativeLinker``, ``DocumentLinker`` and
``HybridLinker`` with a generative part need ``pip install 'genbel[models]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from genbel.data.queries import (
    Candidate,
    MentionQuery,
    QueryInput,
    as_queries,
    as_query,
    dedupe_candidates,
    queries_from_documents,
)
from genbel.linkers.base import Linker
from genbel.linkers.default import default_linker
from genbel.linkers.exact import ExactMatchLinker
from genbel.linkers.registry import available_linkers, create_linker, parse_options, register_linker

#: linker classes loaded on first access: name -> module
_LAZY: dict[str, str] = {
    "SparseLinker": "genbel.linkers.sparse",
    "DenseLinker": "genbel.linkers.dense",
    "GenerativeLinker": "genbel.linkers.generative",
    "DocumentLinker": "genbel.linkers.document",
    "HybridLinker": "genbel.linkers.hybrid",
    "EnsembleLinker": "genbel.linkers.ensemble",
}

__all__ = sorted([
    "Candidate",
    "ExactMatchLinker",
    "Linker",
    "MentionQuery",
    "QueryInput",
    "as_queries",
    "as_query",
    "available_linkers",
    "create_linker",
    "dedupe_candidates",
    "default_linker",
    "parse_options",
    "queries_from_documents",
    "register_linker",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genbel.linkers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from genbel.linkers.dense import DenseLinker
    from genbel.linkers.document import DocumentLinker
    from genbel.linkers.ensemble import EnsembleLinker
    from genbel.linkers.generative import GenerativeLinker
    from genbel.linkers.hybrid import HybridLinker
    from genbel.linkers.sparse import SparseLinker
