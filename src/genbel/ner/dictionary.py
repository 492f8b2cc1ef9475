"""Dictionary matching: every KB name (and training mention) found in raw text.

The text is folded character by character (:func:`fold_with_offsets`: compatibility decomposition,
accents dropped, lower case, every character that is not a letter or digit becomes a space, runs of
spaces squeezed) while keeping, for every folded character, the offset of the original character
it came from; names are folded the same way. An Aho–Corasick automaton (``pyahocorasick``) finds all
names in the folded text in one pass; a match counts only at word boundaries (folded text has only
letters, digits and single spaces, so a boundary is a space or an end); overlapping matches are
resolved leftmost-longest. Offsets are mapped back through the kept offsets, so ``text[start:end]``
is always the original surface (``Breast-Cancer`` for the name ``breast cancer``).

Settings, chosen on dev data (``docs/benchmarks.md``):

* ``min_length`` — names shorter than this (folded characters) are not matched, except
  acronym-like names (letters in upper case, e.g. ``DMD``, ``ALL``), which are matched only in that
  exact case and only from ``min_acronym_length`` characters;
* a stop-list: a few generic English words that are also KB names (:data:`STOP_WORDS`), and, when
  training documents are given, every name that matched at least twice in them
  with a precision (share of its matches that are gold mentions) below 0.4 (chosen on NCBI-disease
  dev: 0.2–0.5 give exact F1 75.3–75.5, no stop-list 73.2).
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genbel.deps import require
from genbel.errors import ConfigError, Errors, InputError
from genbel.ner.base import Detector, Span, remove_overlaps

if TYPE_CHECKING:
    from genbel.data.model import Document
    from genbel.kb.base import KnowledgeBase

logger = logging.getLogger(__name__)

__all__ = [
    "STOP_WORDS", "DictionaryDetector", "entity_group", "fold", "fold_with_offsets",
    "make_dictionary_detector",
]

#: generic words that some biomedical KBs list as (rare) names; never matched
STOP_WORDS = frozenset("""
a an and are as at be but by can for from had has have he her his i in is it its may me men no nor not
of on or our per she so than that the their them then there these they this those to us was we were
which who will with you all any each other same such one two three type types case cases
disease diseases disorder disorders syndrome syndromes condition conditions abnormality abnormalities
anomaly anomalies lesion lesions symptom symptoms sign signs finding findings complication complications
""".split())

_FOLD_CACHE: dict[str, str] = {}


def _fold_char(c: str) -> str:
    f = _FOLD_CACHE.get(c)
    if f is None:
        d = unicodedata.normalize("NFKD", c).lower()
        f = "".join(ch if ch.isalnum() else " " for ch in d if not unicodedata.combining(ch))
        if len(_FOLD_CACHE) < 100_000:
            _FOLD_CACHE[c] = f
    return f


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """``(folded, origin)``: the folded text and, for each of its characters, the offset in ``text``
    of the character it came from. Folded text has only lower-case letters, digits and single
    spaces; leading spaces are dropped (a trailing one may remain)."""
    out: list[str] = []
    origin: list[int] = []
    space = True  # drop leading spaces
    for i, c in enumerate(text):
        for ch in _fold_char(c):
            if ch == " ":
                if space:
                    continue
                space = True
            else:
                space = False
            out.append(ch)
            origin.append(i)
    return "".join(out), origin


def fold(text: str) -> str:
    """The folded form of a name (see :func:`fold_with_offsets`), without surrounding spaces."""
    return fold_with_offsets(text)[0].strip()


def _is_acronym(name: str) -> bool:
    letters = [c for c in name if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters) and len(name.strip()) <= 6


def entity_group(type_: str, kb_groups: Iterable[str] = ()) -> str:
    """The semantic group of a corpus entity type (``SpecificDisease`` → ``Disorders``); the type
    itself when it names no group."""
    from genbel.kb.semantic_groups import resolve_group

    try:
        return resolve_group(type_, kb_groups)
    except Exception:  # noqa: BLE001 - an unknown corpus type stays a type of its own
        return type_


@dataclass
class _Entry:
    types: Counter
    any_case: bool = False          # some name folds to this pattern and is not acronym-like
    forms: set[str] | None = None   # acronym-like names: the exact surfaces allowed

    def type(self) -> str:
        return self.types.most_common(1)[0][0]


class DictionaryDetector(Detector):
    """Leftmost-longest, word-boundary matching of names in folded text (see the module doc)."""

    name = "dictionary"

    def __init__(
        self,
        names: Iterable[tuple[str, str]],
        *,
        min_length: int = 3,
        min_acronym_length: int = 2,
        stop_words: Iterable[str] = STOP_WORDS,
        stop_names: Iterable[str] = (),
    ) -> None:
        """``names``: ``(name, type)`` pairs (a name may come with several types: the most frequent
        wins). ``stop_names`` are folded names never matched (e.g. learnt by :meth:`fit_stop_list`)."""
        require("ahocorasick", extra="ner", feature="the dictionary mention detector")
        if min_length < 1 or min_acronym_length < 1:
            raise ConfigError(Errors.E504.format(field="min_length", reason="must be at least 1"))
        self.min_length = min_length
        self.min_acronym_length = min_acronym_length
        self.stop = {fold(w) for w in stop_words} | {fold(w) for w in stop_names}
        self._entries: dict[str, _Entry] = {}
        for name, type_ in names:
            key = fold(name)
            if not key:
                continue
            e = self._entries.get(key)
            if e is None:
                e = self._entries[key] = _Entry(Counter())
            e.types[type_] += 1
            if _is_acronym(name):
                if e.forms is None:
                    e.forms = set()
                e.forms.add(name.strip())
            else:
                e.any_case = True
        self._build()

    def _allowed(self, key: str, e: _Entry) -> bool:
        if key in self.stop:
            return False
        if e.any_case and len(key) >= self.min_length:
            return True
        return bool(e.forms) and len(key) >= self.min_acronym_length

    def _build(self) -> None:
        import ahocorasick

        self._automaton = ahocorasick.Automaton()
        n = 0
        for key, e in self._entries.items():
            if self._allowed(key, e):
                self._automaton.add_word(key, (len(key), key))
                n += 1
        self.n_patterns = n
        if n:
            self._automaton.make_automaton()
        logger.info("dictionary detector: %d patterns (%d folded names, min_length %d, %d stop names)",
                    n, len(self._entries), self.min_length, len(self.stop))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_kb(
        cls,
        kb: KnowledgeBase,
        *,
        training_docs: Sequence[Document] | None = None,
        entity_type: str | None = None,
        fit_stop_list: bool = True,
        **options: Any,
    ) -> DictionaryDetector:
        """A matcher over every name of ``kb`` (typed by the concept's first semantic group, or
        ``entity_type`` for all) plus the mentions of ``training_docs`` (typed by their group); with
        ``fit_stop_list``, names that are mostly wrong matches in ``training_docs`` are stopped."""
        groups = list(kb.semantic_groups)
        names: list[tuple[str, str]] = []
        for c in kb:
            t = entity_type or (c.semantic_groups[0] if c.semantic_groups else "Disorders")
            names.extend((n, t) for n in c.names)
        if training_docs:
            names.extend(training_mentions(training_docs, groups, entity_type))
        det = cls(names, **options)
        if training_docs and fit_stop_list:
            det.fit_stop_list(training_docs)
        return det

    def fit_stop_list(self, docs: Sequence[Document], *, min_count: int = 2,
                      max_precision: float = 0.4, rounds: int = 3) -> list[str]:
        """Add to the stop-list every name matched at least ``min_count`` times in ``docs`` whose
        matches are gold mentions (same offsets) less than ``max_precision`` of the time; repeated
        (up to ``rounds`` times) since a stopped name may uncover a shorter one inside it. Returns
        the names added."""
        texts = [(d.text, {(e.start, e.end) for e in d.entities}) for d in docs]
        added: list[str] = []
        for _ in range(rounds):
            hits: Counter = Counter()
            good: Counter = Counter()
            for text, gold in texts:
                for s in self.detect(text):
                    key = fold(s.text)
                    hits[key] += 1
                    good[key] += (s.start, s.end) in gold
            new = sorted(k for k, n in hits.items() if n >= min_count and good[k] / n < max_precision)
            if not new:
                break
            added += new
            self.stop.update(new)
            self._build()
        logger.info("dictionary stop-list: %d names learnt from %d documents", len(added), len(docs))
        return added

    # ------------------------------------------------------------------ matching
    def _matches(self, text: str) -> list[tuple[Span, str]]:
        if not isinstance(text, str):
            raise InputError(Errors.E507.format(where="dictionary detector", type=type(text).__name__))
        if not self.n_patterns:
            return []
        folded, origin = fold_with_offsets(text)
        n = len(folded)
        found: list[tuple[Span, str]] = []
        for end_idx, (length, key) in self._automaton.iter(folded):
            fs, fe = end_idx - length + 1, end_idx + 1
            if (fs > 0 and folded[fs - 1] != " ") or (fe < n and folded[fe] != " "):
                continue
            start, end = origin[fs], origin[fe - 1] + 1
            e = self._entries[key]
            if not e.any_case or len(key) < self.min_length:  # acronym-like only: exact case
                if e.forms is None or text[start:end] not in e.forms:
                    continue
            found.append((Span(start, end, text[start:end], e.type(), 1.0, self.name), key))
        return found

    def detect(self, text: str) -> list[Span]:
        return remove_overlaps(s for s, _ in self._matches(text))

    @property
    def types(self) -> list[str]:
        return sorted({t for e in self._entries.values() for t in e.types})

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "patterns": self.n_patterns, "min_length": self.min_length,
                "min_acronym_length": self.min_acronym_length, "stop_names": len(self.stop)}


def training_mentions(
    docs: Sequence[Document], kb_groups: Iterable[str] = (), entity_type: str | None = None
) -> list[tuple[str, str]]:
    """``(mention text, group)`` for every contiguous gold mention of ``docs``."""
    groups = list(kb_groups)
    cache: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for d in docs:
        for e in d.entities:
            if len(e.offsets) != 1:
                continue
            t = entity_type or cache.setdefault(e.type, entity_group(e.type, groups))
            out.append((e.mention, t))
    return out


def make_dictionary_detector(
    arg: str | None, kb: KnowledgeBase | None, *, training_docs: Sequence[Document] | None = None,
    **options: Any,
) -> DictionaryDetector:
    """Registry factory: ``create_detector("dictionary", kb, training_docs=…, min_length=…)``."""
    if kb is None:
        raise ConfigError(Errors.E502.format(what="dictionary"))
    return DictionaryDetector.from_kb(kb, training_docs=training_docs, **options)

