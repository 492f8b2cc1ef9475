"""The detected-span record, the :class:`Detector` interface and the detector registry.

A detector finds mentions in raw text: :meth:`Detector.detect` takes one text and returns
:class:`Span` objects (character offsets into *that* text, ``text[start:end] == span.text``),
sorted by start, not overlapping. Detectors are made by name::

    from genbel.ner import create_detector, default_detector
    det = create_detector("dictionary", kb)          # KB names (+ training mentions)
    det = create_detector("tagger:default")          # the shipped disease tagger
    det = create_detector("combined", kb)            # both, combined as chosen on dev data
    det = default_detector(kb)                       # what `genbel annotate` uses
    det.detect("Familial adenomatous polyposis (FAP) is ...")
    det.detect_batch(texts)

Span types are semantic group names (``Disorders``, ``Chemicals & Drugs``: what
:func:`genbel.kb.semantic_groups.resolve_group` gives for a corpus type such as ``SpecificDisease``
or ``Chemical``), so a span can be linked within its group.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from genbel.errors import ConfigError, Errors

if TYPE_CHECKING:
    from genbel.kb.base import KnowledgeBase

logger = logging.getLogger(__name__)

__all__ = [
    "DETECTORS", "Detector", "Span", "create_detector", "default_detector", "register_detector",
    "remove_overlaps",
]


@dataclass(frozen=True, order=True)
class Span:
    """A detected mention: ``text == source_text[start:end]``.

    ``score`` is the detector's confidence in [0, 1] (1.0 for a dictionary match), ``source`` names
    the detector that found it (``dictionary``, ``tagger``, ``abbreviation``; a combination keeps
    the source of the span it kept, ``+``-joined when several agreed).
    """

    start: int
    end: int
    text: str
    type: str = "Disorders"
    score: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ConfigError(Errors.E500.format(start=self.start, end=self.end, text=self.text))

    @property
    def offsets(self) -> tuple[int, int]:
        return (self.start, self.end)

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    def with_(self, **changes: Any) -> Span:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "type": self.type,
                "score": round(float(self.score), 4), "source": self.source}


def remove_overlaps(spans: Iterable[Span], key: Callable[[Span], Any] | None = None) -> list[Span]:
    """Non-overlapping spans sorted by start: greedily keep the best by ``key`` (default: longest,
    then leftmost, then highest score)."""
    key = key or (lambda s: (-(s.end - s.start), s.start, -s.score))
    kept: list[Span] = []
    for s in sorted(spans, key=key):
        if not any(s.overlaps(k) for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: (s.start, s.end))


class Detector(ABC):
    """Finds mentions in raw text. Subclasses implement :meth:`detect`; :meth:`detect_batch` may be
    overridden where batching is faster (the tagger)."""

    #: registry name of the detector kind (``dictionary``, ``tagger``, ``combined``)
    name: str = "detector"

    @abstractmethod
    def detect(self, text: str) -> list[Span]:
        """The mentions in ``text``, sorted by start, not overlapping."""

    def detect_batch(self, texts: Sequence[str], batch_size: int = 16) -> list[list[Span]]:
        """:meth:`detect` for each text, in order."""
        return [self.detect(t) for t in texts]

    @property
    def types(self) -> list[str]:
        """The span types this detector can return."""
        return []

    def describe(self) -> dict[str, Any]:
        """Settings worth recording next to results (benchmarks, annotate output)."""
        return {"detector": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


#: registry name → ``module:factory``; factories take ``(arg, kb, **options)`` where ``arg`` is what
#: follows ``:`` in the spec (``tagger:default`` → ``"default"``) or ``None``
DETECTORS: dict[str, str] = {
    "dictionary": "genbel.ner.dictionary:make_dictionary_detector",
    "tagger": "genbel.ner.tagger:make_tagger_detector",
    "combined": "genbel.ner.combine:make_combined_detector",
}
_FACTORIES: dict[str, Callable[..., Detector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Decorator registering a detector factory under ``name`` (for third-party detectors)."""

    def deco(fn: Callable[..., Detector]) -> Callable[..., Detector]:
        _FACTORIES[name] = fn
        return fn

    return deco


def _factory(name: str) -> Callable[..., Detector]:
    if name in _FACTORIES:
        return _FACTORIES[name]
    target = DETECTORS.get(name)
    if target is None:
        known = ", ".join(sorted(set(DETECTORS) | set(_FACTORIES)))
        raise ConfigError(Errors.E501.format(spec=name, known=known))
    module, attr = target.split(":")
    fn = getattr(importlib.import_module(module), attr)
    _FACTORIES[name] = fn
    return fn


def create_detector(spec: str | Detector, kb: KnowledgeBase | None = None, **options: Any) -> Detector:
    """A detector from a spec: ``dictionary``, ``tagger`` (= ``tagger:default``), ``tagger:PATH``
    (a directory written by ``genbel train-ner``), ``combined`` (tagger + dictionary, see
    :mod:`genbel.ner.combine`; ``combined:PATH`` uses the tagger at PATH) or ``default``
    (:func:`default_detector`). ``kb`` is needed by the dictionary (and so by ``combined``).
    ``options`` go to the factory (e.g. ``training_docs=…`` for the dictionary, ``mode=…`` for the
    combination). A :class:`Detector` is returned as is."""
    if isinstance(spec, Detector):
        return spec
    spec = str(spec).strip()
    if spec == "default":
        return default_detector(kb, **options)
    name, _, arg = spec.partition(":")
    return _factory(name.strip().lower())(arg.strip() or None, kb, **options)


def default_detector(kb: KnowledgeBase | None = None, **options: Any) -> Detector:
    """genbel's default detector: the shipped disease tagger combined with a dictionary matcher over
    ``kb`` (the tagger alone when ``kb`` is ``None``)."""
    if kb is None:
        return create_detector("tagger:default", **options)
    return create_detector("combined", kb, **options)
