"""Combining detectors, and tagging the short forms of detected long forms.

Modes of :class:`CombinedDetector` (the first detector is the *primary*, normally the tagger; the
second the dictionary), chosen on dev data (``docs/benchmarks.md``):

* ``primary-types`` (the default): every span of the primary; the others' spans only for the types
  the primary does not detect (and where they overlap nothing kept). With the disease tagger and a
  disease KB this is the tagger alone (chosen on NCBI-disease dev: no combination with the dictionary
  beat the 6-layer tagger); with a wider KB the dictionary still finds the other types;
* ``primary-first`` (``tagger-first``): every span of the primary; spans of the others that overlap
  none of them are added (``dictionary-first`` in :func:`make_combined_detector`: the dictionary is
  the primary);
* ``union``: every span of every detector, overlaps resolved longest first;
* ``intersection``: only spans that all detectors found with the same offsets.

Abbreviations (``abbreviations=True``): for every Schwartz–Hearst definition in the text
(:func:`genbel.data.abbreviations.find_abbreviation_pairs`) whose long form ends a detected span
inside it (``familial adenomatous polyposis (FAP)``: the span may be the whole long form or its
head), every whole-word occurrence of the short form, in its case, is tagged with the span's type
(``source="abbreviation"``) where no span is already.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from genbel.errors import ConfigError, Errors
from genbel.ner.base import Detector, Span, create_detector, remove_overlaps

logger = logging.getLogger(__name__)

__all__ = ["MODES", "CombinedDetector", "combine_spans", "make_combined_detector", "tag_short_forms"]

MODES = ("primary-types", "primary-first", "union", "intersection")
_ALIASES = {"tagger-first": "primary-first"}


def combine_spans(span_lists: Sequence[Sequence[Span]], mode: str = "primary-first", *,
                  primary_types: Sequence[str] | None = None) -> list[Span]:
    """One detector's spans per list (the first is the primary), combined by ``mode``;
    ``primary_types`` are the types the primary detects (``primary-types`` mode; default: the types
    of its spans)."""
    mode = _ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ConfigError(Errors.E506.format(mode=mode, known=", ".join(MODES + tuple(_ALIASES))))
    if not span_lists:
        return []
    if mode == "primary-types":
        own = set(primary_types) if primary_types is not None else {s.type for s in span_lists[0]}
        kept = list(span_lists[0])
        for spans in span_lists[1:]:
            kept.extend([s for s in spans if s.type not in own and not any(s.overlaps(k) for k in kept)])
    elif mode == "intersection":
        keys = set.intersection(*[{(s.start, s.end) for s in spans} for spans in span_lists])
        kept = [s for s in span_lists[0] if (s.start, s.end) in keys]
    elif mode == "union":
        kept = remove_overlaps(s for spans in span_lists for s in spans)
    else:
        kept = list(span_lists[0])
        for spans in span_lists[1:]:
            kept.extend([s for s in spans if not any(s.overlaps(k) for k in kept)])
    return sorted((_agreed(s, span_lists) for s in kept), key=lambda s: (s.start, s.end))


def _agreed(span: Span, span_lists: Sequence[Sequence[Span]]) -> Span:
    """``span`` with the sources of every detector that found the same offsets, ``+``-joined."""
    sources: list[str] = []
    for spans in span_lists:
        for s in spans:
            if (s.start, s.end) == (span.start, span.end) and s.source and s.source not in sources:
                sources.append(s.source)
    return span.with_(source="+".join(sources)) if len(sources) > 1 else span


def tag_short_forms(text: str, spans: Sequence[Span]) -> list[Span]:
    """``spans`` plus the occurrences of the short forms of detected long forms (see the module doc)."""
    from genbel.data.abbreviations import find_abbreviation_pairs

    pairs = find_abbreviation_pairs(text) if "(" in text else []
    if not pairs:
        return list(spans)
    out = list(spans)
    for p in pairs:
        src = next((s for s in spans if p.long_start <= s.start and s.end == p.long_end), None)
        if src is None:
            continue
        for m in re.finditer(rf"(?<![\w]){re.escape(p.short)}(?![\w])", text):
            new = Span(m.start(), m.end(), m.group(0), src.type, src.score, "abbreviation")
            if not any(new.overlaps(s) for s in out):
                out.append(new)
    return sorted(out, key=lambda s: (s.start, s.end))


class CombinedDetector(Detector):
    """Several detectors combined by a mode, then short forms tagged (see the module doc)."""

    name = "combined"

    def __init__(self, detectors: Sequence[Detector], mode: str = "primary-types", *,
                 abbreviations: bool = True) -> None:
        if not detectors:
            raise ConfigError(Errors.E506.format(mode="(no detector)", known=", ".join(MODES)))
        combine_spans([], mode)  # validates the mode
        self.detectors = list(detectors)
        self.mode = _ALIASES.get(mode, mode)
        self.abbreviations = abbreviations

    def detect_batch(self, texts: Sequence[str], batch_size: int = 16) -> list[list[Span]]:
        own = set(self.detectors[0].types)
        per_detector = [
            # primary-types keeps no span of the primary's types from the others: one that can find only
            # those types (a disease dictionary behind the disease tagger) is not run at all
            [[] for _ in texts] if i and self.mode == "primary-types" and own and set(d.types) <= own
            else d.detect_batch(texts)
            for i, d in enumerate(self.detectors)
        ]
        out = []
        for i, text in enumerate(texts):
            spans = combine_spans([p[i] for p in per_detector], self.mode, primary_types=self.detectors[0].types)
            out.append(tag_short_forms(text, spans) if self.abbreviations else spans)
        return out

    def detect(self, text: str) -> list[Span]:
        return self.detect_batch([text])[0]

    @property
    def types(self) -> list[str]:
        return sorted({t for d in self.detectors for t in d.types})

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "mode": self.mode, "abbreviations": self.abbreviations,
                "parts": [d.describe() for d in self.detectors]}


def make_combined_detector(
    arg: str | None, kb: Any = None, *, mode: str = "primary-types", abbreviations: bool = True,
    tagger: Detector | str | None = None, training_docs: Any = None, quantize: bool = False,
    runtime: str = "torch", **options: Any,
) -> CombinedDetector:
    """Registry factory: ``combined`` (shipped tagger + dictionary over ``kb``), ``combined:PATH``
    (the tagger at PATH); ``tagger=`` may also give the tagger (a detector or a spec); ``quantize``
    (int8 linear layers) and ``runtime`` (``"onnx"``: ONNX Runtime) are how a tagger given by spec is
    loaded (:class:`genbel.ner.tagger.TokenTagger`)."""
    if kb is None:
        raise ConfigError(Errors.E502.format(what="combined"))
    dictionary_first = mode == "dictionary-first"
    if dictionary_first:
        mode = "primary-first"
    combine_spans([], mode)  # validates the mode before the tagger is loaded
    spec = tagger if tagger is not None else f"tagger:{arg or 'default'}"
    how = {**({"quantize": True} if quantize else {}), **({"runtime": runtime} if runtime != "torch" else {})}
    tagger_det = create_detector(spec, **how) if how and isinstance(spec, str) else create_detector(spec)
    dictionary = create_detector("dictionary", kb, training_docs=training_docs, **options)
    parts = [dictionary, tagger_det] if dictionary_first else [tagger_det, dictionary]
    return CombinedDetector(parts, mode, abbreviations=abbreviations)
