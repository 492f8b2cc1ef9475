"""Compact token prefix tries for constrained generative entity linking.

* :class:`TokenTrie` — a prefix trie over token-id sequences in flat, memory-mappable arrays;
* :class:`TailTrie` — the same API with unary tails stored as token runs (UMLS-sized name sets: the
  default layout of :class:`CandidateTrie`); :func:`load_trie` loads either layout;
* :class:`Restriction` — a subset of a trie's sequences (names of some groups or candidates);
* :class:`CandidateTrie` — the trie of a KB's names plus the names and codes it decodes to;
* :class:`TrieConstraint` / :class:`TrieLogitsProcessor` — the bridges to Hugging Face ``generate``.
"""

from __future__ import annotations

from genbel.trie.candidates import CandidateTrie
from genbel.trie.constraint import TrieConstraint, TrieLogitsProcessor
from genbel.trie.tail_trie import TailTrie, build_trie, load_trie
from genbel.trie.token_trie import Restriction, TokenTrie

__all__ = ["CandidateTrie", "Restriction", "TailTrie", "TokenTrie", "TrieConstraint", "TrieLogitsProcessor",
           "build_trie", "load_trie"]
