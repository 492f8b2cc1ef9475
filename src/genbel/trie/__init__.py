"""Compact token prefix tries for constrained generative entity linking.

* :class:`TokenTrie` — a prefix trie over token-id sequences in flat, memory-mappable arrays;
* :class:`TailTrie` — the same API with unary tails stored as token runs (UMLS-sized name sets: the
  default layout of :class:`CandidateTrie`); :func:`load_trie` loads either layout;
* :class:`Restriction` — a subset of a trie's sequences (names of some groups or candidates);
* :class:`CandidateTrie` — the trie of a KB's names plus the names and codes it decodes to;
* :class:`TrieConstraint` / :class:`TrieLogitsProcessor` — the bridges to Hugging Face ``generate``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genbel.trie.candidates import CandidateTrie
    from genbel.trie.constraint import TrieConstraint, TrieLogitsProcessor
    from genbel.trie.tail_trie import TailTrie, build_trie, load_trie
    from genbel.trie.token_trie import Restriction, TokenTrie

#: where each public name lives; imported on first use, so ``genbel.trie.token_trie`` (numpy only, e.g.
#: for the NER dictionary) does not import torch and transformers through the constraint bridges
_LAZY = {
    "CandidateTrie": "candidates", "TrieConstraint": "constraint", "TrieLogitsProcessor": "constraint",
    "TailTrie": "tail_trie", "build_trie": "tail_trie", "load_trie": "tail_trie",
    "Restriction": "token_trie", "TokenTrie": "token_trie",
}

__all__ = ["CandidateTrie", "Restriction", "TailTrie", "TokenTrie", "TrieConstraint", "TrieLogitsProcessor",
           "build_trie", "load_trie"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"genbel.trie.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'genbel.trie' has no attribute {name!r}")
