"""genbel: biomedical entity linking — generative (prefix-trie constrained), retrieval, document-level.

>>> from genbel import default_linker, load_kb, load_corpus, create_linker, evaluate
>>> default_linker().link(["panic attacks"], k=1)   # the default pipeline over the bundled MEDIC KB
[[Candidate(concept_id='D016584', name='Panic Disorder', score=..., matched='Panic Attacks')]]
>>> kb = load_kb("medic_06Jul2012.txt")
>>> linker = create_linker("tfidf", kb)
>>> linker.link(["heart attack", ("MI", "She had an MI last year.")], k=3)
>>> evaluate(load_corpus("NCBItestset_corpus.txt"), kb, linker).recall_at_1

The names below are imported on first use, so ``import genbel`` stays cheap and never imports
torch (model-backed linkers need ``pip install 'genbel[models]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from genbel._version import __version__
from genbel.errors import Errors, GenbelError

#: public name -> module that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    # knowledge bases
    "Concept": "genbel.kb",
    "KnowledgeBase": "genbel.kb",
    "augment_kb": "genbel.kb",
    "default_kb": "genbel.kb",
    "load_kb": "genbel.kb",
    "open_kb": "genbel.kb",
    # corpora
    "Document": "genbel.data",
    "Entity": "genbel.data",
    "example_documents": "genbel.data",
    "filter_entity_types": "genbel.data",
    "load_corpus": "genbel.data",
    "load_documents": "genbel.data",
    "write_corpus": "genbel.data",
    "read_documents": "genbel.data.formats",
    "write_documents": "genbel.data.formats",
    # linkers
    "Candidate": "genbel.linkers",
    "Linker": "genbel.linkers",
    "MentionQuery": "genbel.linkers",
    "available_linkers": "genbel.linkers",
    "create_linker": "genbel.linkers",
    "default_linker": "genbel.linkers",
    # evaluation
    "EvaluationResult": "genbel.eval",
    "evaluate": "genbel.eval",
}

__all__ = sorted([*_EXPORTS, "Errors", "GenbelError", "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genbel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from genbel.data import (
        Document,
        Entity,
        example_documents,
        filter_entity_types,
        load_corpus,
        load_documents,
        write_corpus,
    )
    from genbel.data.formats import read_documents, write_documents
    from genbel.eval import EvaluationResult, evaluate
    from genbel.kb import Concept, KnowledgeBase, augment_kb, default_kb, load_kb, open_kb
    from genbel.linkers import (
        Candidate,
        Linker,
        MentionQuery,
        available_linkers,
        create_linker,
        default_linker,
    )
