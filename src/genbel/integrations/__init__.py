"""genbel inside other tools: :mod:`genbel.integrations.spacy` (the ``genbel_ner`` and ``genbel_linker``
spaCy pipeline components). Each module imports its tool, so import the one you use."""
