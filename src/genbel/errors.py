"""One place for genbel's error messages.

Every user-facing error is a :class:`GenbelError` (or subclass) whose message comes from
:class:`Errors`, so a message can be searched for, documented and asserted in tests.
Messages name the file and line or field that caused them.
"""

from __future__ import annotations

from pathlib import Path


class Errors:
    """Message templates, keyed by a stable code (``E001`` …)."""

    E001 = "unknown KB format {fmt!r}; expected one of: {known}"
    E002 = "{path}: the knowledge base is empty (no concept with a name was read)"
    E003 = "{path}:{line}: malformed {fmt} row: {reason}"
    E004 = "{path}: duplicate document id {doc_id!r} (first seen at line {first_line}, again at line {line})"
    E005 = (
        "{where}: entity {entity_id!r} offsets {start}-{end} give {actual!r} but the entity text is {expected!r}"
    )
    E006 = "{path}: file not found"
    E007 = "{path}: unknown corpus format; expected PubTator or BigBio JSON/JSONL (use --format)"
    E008 = "{path}: not a genbel KB directory (missing {missing})"
    E009 = "unknown linker {name!r}; expected one of: {known}"
    E010 = "index was built for KB {expected} but is used with KB {actual}; rebuild the index for this KB"
    E011 = "{where}: malformed mention markup {text!r}: {reason}"
    E012 = "unknown semantic group or entity type {group!r}; known: {known}"
    E013 = "{path}:{line}: invalid JSON: {reason}"
    E014 = "{where}: missing required field {field!r}"
    E015 = "unknown dataset {name!r}; known: {known}"
    E016 = "{path}: {reason}"
    E017 = "the training set is empty: {reason}"
    E018 = "{n} gold ids are missing from the KB (e.g. {examples}); rerun without --strict to skip them"
    E019 = "generator endpoint {url} failed: {reason}"
    E020 = "{where}: concept {concept_id!r} not found in the KB"
    E021 = "invalid value for {field}: {reason}"

    # --- kb (E100-E149): add new codes of this area directly below this line

    # --- data (E150-E199): add new codes of this area directly below this line

    # --- trie (E200-E249): add new codes of this area directly below this line

    # --- generative (E250-E299): add new codes of this area directly below this line

    # --- retrieval (E300-E349): add new codes of this area directly below this line

    # --- training (E350-E399): add new codes of this area directly below this line

    # --- document-level (E400-E449): add new codes of this area directly below this line

    # --- eval/cli (E450-E499): add new codes of this area directly below this line


class GenbelError(Exception):
    """Base class of all errors genbel raises for bad input or configuration."""


class InputError(GenbelError, ValueError):
    """Bad input data: a file, a row or a field that cannot be used."""


class FormatError(InputError):
    """A file whose format is unknown or malformed."""


class KBError(GenbelError):
    """A knowledge base that cannot be built, loaded or used."""


class IndexMismatchError(KBError):
    """An index or trie built for one KB used with another."""


class ConfigError(GenbelError, ValueError):
    """An unknown name or invalid setting."""


def where(path: str | Path | None, line: int | None = None) -> str:
    """Format a location as ``file:line`` for error messages."""
    if path is None:
        return "<input>"
    return f"{path}:{line}" if line is not None else str(path)
