"""Generative decoding, one module per job (used by :mod:`genbel.linkers.generative`,
:mod:`genbel.linkers.document` and :mod:`genbel.training`):

* :mod:`~genbel.generation.prompts` — prompt formats and the ``[mention]{Group}`` markup;
* :mod:`~genbel.generation.encoding` — queries and names → token ids (mention- and document-level);
* :mod:`~genbel.generation.scopes` — what each query may be linked to (candidates, semantic group);
* :mod:`~genbel.generation.batching` — batches and padded model inputs;
* :mod:`~genbel.generation.cache` — prompt key/value prefill and the shared-prompt beam cache;
* :mod:`~genbel.generation.beam_search` — the (trie-constrained) beam-search decoder;
* :mod:`~genbel.generation.scoring` — teacher-forced scores of given names;
* :mod:`~genbel.generation.saved` — the saved-linker directory (write, read, architecture, LoRA base).

The package sits between :mod:`genbel.trie` and :mod:`genbel.linkers`: it imports the query type
(:mod:`genbel.data.queries`) and group names (:mod:`genbel.kb.semantic_groups`), never a linker.
"""
