"""Compact token prefix tries for constrained generative entity linking.

* :class:`TokenTrie` — a prefix trie over token-id sequences in flat, memory-mappable arrays;
* :class:`Restriction` — a subset of a trie's sequences (names of some groups or candidates);
* :class:`CandidateTrie` — the trie of a KB's names plus the names and codes it decodes to;
* :class:`TrieConstraint` / :class:`TrieLogitsProcessor` — the bridges to Hugging Face ``generate``.
"""

from __future__ import annotations

from genbel.trie.candidates import CandidateTrie
from genbel.trie.constraint import TrieConstraint, TrieLogitsProcessor
from genbel.trie.token_trie import Restriction, TokenTrie

__all__ = ["CandidateTrie", "Restriction", "TokenTrie", "TrieConstraint", "TrieLogitsProcessor"]
