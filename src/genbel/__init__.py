"""genbel: biomedical entity linking — generative (prefix-trie constrained), retrieval, document-level."""

__version__ = "0.1.0"
