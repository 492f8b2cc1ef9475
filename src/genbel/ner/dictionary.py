"""Dictionary matching: every KB name (and training mention) found in raw text.

The text is folded character by character (:func:`fold_with_offsets`: compatibility decomposition,
accents dropped, lower case, every character that is not a letter or digit becomes a space, runs of
spaces squeezed) while keeping, for every folded character, the offset of the original character
it came from; names are folded the same way. A match counts only at word boundaries (folded text has
only letters, digits and single spaces, so a boundary is a space or an end), so a name is a sequence of
folded words and matching walks a trie over word ids: every word of the text is looked up in the names'
vocabulary (a ``marisa-trie``) and, from every word, the :class:`~genbel.trie.token_trie.TokenTrie` of
the names' word-id sequences is followed as far as it goes; every name ending on the way is a match.
Overlapping matches are resolved leftmost-longest. Offsets are mapped back through the kept offsets, so
``text[start:end]`` is always the original surface (``Breast-Cancer`` for the name ``breast cancer``).

Memory: everything per name is a numpy array (word-id trie, name type, flags) — a UMLS-sized KB
(7M names) takes a few hundred MB, where a character-level Aho–Corasick automaton took ~700 bytes a
name (one node per character). Only the exact surfaces of acronym-like names are Python strings.

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
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genbel.deps import require
from genbel.errors import ConfigError, Errors, InputError
from genbel.ner.base import Detector, Span, remove_overlaps
from genbel.trie.token_trie import TokenTrie

if TYPE_CHECKING:
    from genbel.data.model import Document
    from genbel.kb.base import KnowledgeBase

logger = logging.getLogger(__name__)

__all__ = [
    "STOP_WORDS", "DictionaryDetector", "entity_group", "fold", "fold_with_offsets",
    "make_dictionary_detector",
]

#: generic words that some biomedical KBs list as (rare) names; never matched
STOP_WORDS = frozenset(["a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "for", "from", "had", "has", "have", "he", "her", "his", "i", "in", "is", "it", "its", "may", "me", "men", "no", "nor", "not", "of", "on", "or", "our", "per", "she", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "us", "was", "we", "were", "which", "who", "will", "with", "you", "all", "any", "each", "other", "same", "such", "one", "two", "three", "type", "types", "case", "cases", "disease", "diseases", "disorder", "disorders", "syndrome", "syndromes", "condition", "conditions", "abnormality", "abnormalities", "anomaly", "anomalies", "lesion", "lesions", "symptom", "symptoms", "sign", "signs", "finding", "findings", "complication", "complications"])

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


_NOT_ALNUM_ASCII = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """The folded form of a name (see :func:`fold_with_offsets`), without surrounding spaces."""
    if text.isascii():  # the same result, without the per-character loop (most names)
        return _NOT_ALNUM_ASCII.sub(" ", text.lower()).strip()
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


_WORD = re.compile(r"[^ ]+")


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
        wins, ties by first seen). ``stop_names`` are folded names never matched (e.g. learnt by
        :meth:`fit_stop_list`)."""
        require("marisa_trie", extra="ner", feature="the dictionary mention detector")
        import marisa_trie

        if min_length < 1 or min_acronym_length < 1:
            raise ConfigError(Errors.E504.format(field="min_length", reason="must be at least 1"))
        self.min_length = min_length
        self.min_acronym_length = min_acronym_length
        self.stop = {fold(w) for w in stop_words} | {fold(w) for w in stop_names}
        # every name as a sequence of word ids (first-seen order), its folded length, type and acronym flag;
        # names with the same folded words end at one trie node: the pattern, represented by one of them
        words: dict[str, int] = {}
        tokens = array("I")
        lengths = array("I")
        key_chars = array("I")
        name_type = array("H")
        acronym = bytearray()
        type_ids: dict[str, int] = {}
        surfaces: dict[int, str] = {}  # acronym-like names: their exact surface
        for name, type_ in names:
            key = fold(name)
            if not key:
                continue
            ws = key.split(" ")
            tokens.extend(words.setdefault(w, len(words)) for w in ws)
            if _is_acronym(name):
                surfaces[len(lengths)] = name.strip()
                acronym.append(1)
            else:
                acronym.append(0)
            lengths.append(len(ws))
            key_chars.append(len(key))
            name_type.append(type_ids.setdefault(type_, len(type_ids)))
        n = len(lengths)
        # the vocabulary as a marisa-trie (its own ids), the names as word-id sequences in a TokenTrie
        self._vocab = marisa_trie.Trie(words)
        remap = np.fromiter((self._vocab[w] for w in words), dtype=np.uint32, count=len(words))
        del words
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(lengths, dtype=np.uint32), out=offsets[1:])
        self._trie = TokenTrie.from_flat(remap[np.frombuffer(tokens, dtype=np.uint32)], offsets)
        del tokens, lengths, remap
        rep = _representatives(self._trie, n)
        self._type_names = list(type_ids)
        self._type = _most_frequent(rep, np.frombuffer(name_type, dtype=np.uint16), n, len(type_ids))
        self._any_case = np.zeros(n, dtype=bool)
        self._any_case[rep[np.frombuffer(bytes(acronym), dtype=np.uint8) == 0]] = True
        self._forms: dict[int, set[str]] = {}  # per pattern: the exact surfaces of its acronym-like names
        for i, surface in surfaces.items():
            self._forms.setdefault(int(rep[i]), set()).add(surface)
        self._key_chars = np.frombuffer(key_chars, dtype=np.uint32)  # the same for every name of a pattern
        self._n_names = int(np.count_nonzero(self._trie.term_end > self._trie.lo))
        self._build()

    def _pattern(self, key: str) -> int:
        """The pattern id of a folded name, or -1."""
        node = self._trie.ROOT
        for w in key.split(" "):
            node = self._trie.step(node, self._vocab.get(w, -1))
            if node < 0:
                return -1
        vals = self._trie.values(node)
        return int(vals[0]) if len(vals) else -1

    def _build(self) -> None:
        """Which patterns may match: long enough (acronym-like names from their own length), not stopped."""
        kc = self._key_chars
        enabled = (self._any_case & (kc >= self.min_length)) if len(kc) else np.zeros(0, dtype=bool)
        acr = np.fromiter(self._forms, dtype=np.int64, count=len(self._forms))
        enabled[acr[kc[acr] >= self.min_acronym_length]] = True
        for key in self.stop:
            pid = self._pattern(key) if key else -1
            if pid >= 0:
                enabled[pid] = False
        self._enabled = enabled
        self.n_patterns = int(enabled.sum())
        logger.info("dictionary detector: %d patterns (%d folded names, min_length %d, %d stop names)",
                    self.n_patterns, self._n_names, self.min_length, len(self.stop))

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

        def names() -> Iterable[tuple[str, str]]:  # streamed: no list of every (name, type) pair
            for c in kb:
                t = entity_type or (c.semantic_groups[0] if c.semantic_groups else "Disorders")
                yield from ((n, t) for n in c.names)
            if training_docs:
                yield from training_mentions(training_docs, groups, entity_type)

        det = cls(names(), **options)
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
            self._build()  # disables the stopped patterns (nothing is rebuilt)
        logger.info("dictionary stop-list: %d names learnt from %d documents", len(added), len(docs))
        return added

    # ------------------------------------------------------------------ matching
    def _matches(self, text: str) -> list[Span]:
        """Every enabled name at word boundaries of ``text`` (overlapping)."""
        if not isinstance(text, str):
            raise InputError(Errors.E507.format(where="dictionary detector", type=type(text).__name__))
        if not self.n_patterns:
            return []
        folded, origin = fold_with_offsets(text)
        spans = [(m.start(), m.end()) for m in _WORD.finditer(folded)]
        get = self._vocab.get
        ids = [get(folded[a:b], -1) for a, b in spans]
        trie, enabled, values = self._trie, self._enabled, self._trie.seq_values
        lo, term_end = trie.lo, trie.term_end
        found: list[Span] = []
        for i in range(len(ids)):
            node = trie.ROOT
            for j in range(i, len(ids)):
                node = trie.step(node, ids[j])
                if node < 0:
                    break
                if term_end[node] == lo[node]:
                    continue
                pid = int(values[lo[node]])
                if not enabled[pid]:
                    continue
                start, end = origin[spans[i][0]], origin[spans[j][1] - 1] + 1
                if (not self._any_case[pid] or self._key_chars[pid] < self.min_length) and \
                        text[start:end] not in self._forms.get(pid, ()):  # acronym-like: exact case only
                    continue
                found.append(Span(start, end, text[start:end], self._type_names[self._type[pid]], 1.0, self.name))
        return found

    def detect(self, text: str) -> list[Span]:
        return remove_overlaps(self._matches(text))

    @property
    def types(self) -> list[str]:
        return sorted(self._type_names)

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "patterns": self.n_patterns, "min_length": self.min_length,
                "min_acronym_length": self.min_acronym_length, "stop_names": len(self.stop)}


def _representatives(trie: TokenTrie, n: int) -> np.ndarray:
    """For each of the ``n`` sequences of ``trie``, the sequence representing all sequences that end at the
    same node (the first stored there): ``values(node)[0]``, what matching reads."""
    rep = np.zeros(n, dtype=np.int64)
    ends = np.flatnonzero(trie.term_end > trie.lo)
    first = trie.lo[ends].astype(np.int64)
    count = trie.term_end[ends].astype(np.int64) - first
    pos = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count) + np.repeat(first, count)
    values = np.asarray(trie.seq_values, dtype=np.int64)
    rep[values[pos]] = np.repeat(values[first], count)
    return rep


def _most_frequent(pattern: np.ndarray, type_: np.ndarray, n_patterns: int, n_types: int) -> np.ndarray:
    """Per pattern, the type given most often by its ``(pattern, type)`` pairs, ties to the type seen
    first (``Counter.most_common(1)``)."""
    out = np.zeros(n_patterns, dtype=np.uint16)
    if not len(pattern):
        return out
    combo = pattern.astype(np.int64) * max(1, n_types) + type_
    uniq, first, count = np.unique(combo, return_index=True, return_counts=True)
    pid, tid = uniq // max(1, n_types), uniq % max(1, n_types)
    order = np.lexsort((first, -count, pid))  # per pattern: most frequent, then first seen
    head = np.ones(len(order), dtype=bool)
    head[1:] = pid[order][1:] != pid[order][:-1]
    out[pid[order][head]] = tid[order][head]
    return out


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

