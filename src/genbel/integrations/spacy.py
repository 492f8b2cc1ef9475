"""spaCy v3 pipeline components: ``genbel_ner`` (mention detection) and ``genbel_linker`` (entity linking).

::

    import spacy
    nlp = spacy.blank("en")                      # any pipeline; no model download needed
    nlp.add_pipe("genbel_ner")                   # genbel's default detector over the bundled MEDIC KB
    nlp.add_pipe("genbel_linker", config={"kb": "default", "linker": "tfidf"})
    doc = nlp("Familial adenomatous polyposis (FAP) is an inherited cancer syndrome.")
    for ent in doc.ents:
        print(ent.text, ent.label_, ent._.kb_ents)     # [(concept id, score), …], best first

``genbel_linker`` links the entities in ``doc.ents``, whoever set them: ``genbel_ner``, spaCy's
``entity_ruler``, a trained ``ner`` or scispacy's models. Like scispacy's ``scispacy_linker`` it sets
``ent._.kb_ents`` (a list of ``(concept_id, score)``, best first, at most ``max_entities_per_mention``,
scores at least ``threshold``) and accepts ``resolve_abbreviations`` (link a short form defined in the
document as its long form), ``k`` (candidates asked of the linker: distinct concepts, default 5 — a
generative linker decodes that many beams), ``threshold`` and ``max_entities_per_mention``; the component's ``kb``
attribute is the genbel :class:`~genbel.kb.KnowledgeBase` (``linker.kb[cid].name``). A scispacy pipeline
switches by changing one line: ``nlp.add_pipe("scispacy_linker", config={…})`` →
``nlp.add_pipe("genbel_linker", config={"kb": "default"})``.

Both components are registered through spaCy's ``spacy_factories`` entry points (installing genbel is
enough; importing this module registers them too). ``kb`` is ``"default"`` (the bundled MEDIC), a KB
file or a built KB directory; ``detector`` and ``linker`` are genbel specs (``default``, ``dictionary``,
``tfidf``, ``dense:default``, ``generative:PATH`` …). The KB, detector and linker are built on first use.
``nlp.to_disk`` stores each component's settings and, for a KB given as a path, the KB itself (a genbel
KB store), so ``spacy.load`` works without the original file; a linker or tagger given by a path is
referred to, not copied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from genbel.deps import require

require("spacy", extra="spacy", feature="the spaCy pipeline components")

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, minibatch

from genbel.data.model import Document, Entity, Passage
from genbel.errors import ConfigError, Errors, InputError
from genbel.kb import KnowledgeBase, open_kb

logger = logging.getLogger(__name__)

__all__ = ["GenbelLinkerComponent", "GenbelNERComponent", "make_genbel_linker", "make_genbel_ner"]

_SETTINGS = "genbel_component.json"
_KB_DIR = "kb"

if not Span.has_extension("kb_ents"):
    Span.set_extension("kb_ents", default=[])


class _KBComponent:
    """What both components share: a KB named by a spec, loaded on first use, saved with the pipeline."""

    def __init__(self, name: str, kb: str, kb_format: str | None) -> None:
        self.name = name
        self.kb_spec = kb
        self.kb_format = kb_format
        self._kb: KnowledgeBase | None = None
        self._saved_kb: Path | None = None

    @property
    def kb(self) -> KnowledgeBase:
        """The genbel knowledge base (loaded on first use)."""
        if self._kb is None:
            self._kb = (KnowledgeBase.load(self._saved_kb) if self._saved_kb is not None
                        else open_kb(self.kb_spec, self.kb_format))
        return self._kb

    def set_kb(self, kb: KnowledgeBase) -> None:
        """Use ``kb`` (a KB object built in Python); ``nlp.to_disk`` then saves it with the pipeline."""
        self._kb = kb
        self._saved_kb = None
        self.kb_spec = f"<{kb.name}>"
        self._reset()

    def _settings(self) -> dict[str, Any]:
        return {"kb": self.kb_spec, "kb_format": self.kb_format}

    def _reset(self) -> None:  # the KB changed: drop what was built over it
        pass

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        saved_kb = self.kb_spec != "default"
        if saved_kb:
            self.kb.save(p / _KB_DIR)
        (p / _SETTINGS).write_text(
            json.dumps({"component": self.name, **self._settings(), "saved_kb": saved_kb}, indent=2),
            encoding="utf-8",
        )

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> _KBComponent:
        p = Path(path)
        settings_file = p / _SETTINGS
        if not settings_file.is_file():
            raise InputError(Errors.E527.format(path=p, missing=_SETTINGS))
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        if settings.get("saved_kb"):
            if not (p / _KB_DIR).is_dir():
                raise InputError(Errors.E527.format(path=p, missing=f"{_KB_DIR}/"))
            self._saved_kb = p / _KB_DIR
            self._kb = None
            self._reset()
        return self


def _check_int(name: str, field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(Errors.E528.format(name=name, field=field, value=value,
                                             reason=f"an integer of at least {minimum}"))
    return value


class GenbelNERComponent(_KBComponent):
    """``genbel_ner``: finds mentions with a genbel detector and adds them to ``doc.ents``.

    Entities already in ``doc.ents`` (from an earlier component) are kept; a detected span that
    overlaps one of them is dropped. Labels are the detector's types (semantic groups, ``Disorders``).
    """

    def __init__(self, nlp: Language, name: str, kb: str, kb_format: str | None, detector: str) -> None:
        super().__init__(name, kb, kb_format)
        self.detector_spec = detector
        self._detector: Any = None

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "detector": self.detector_spec}

    def _reset(self) -> None:
        self._detector = None

    def set_detector(self, detector: Any) -> None:
        """Use a :class:`~genbel.ner.Detector` built in Python (it is not saved by ``nlp.to_disk``:
        the saved pipeline rebuilds its ``detector`` spec)."""
        self._detector = detector

    @property
    def detector(self) -> Any:
        """The genbel :class:`~genbel.ner.Detector` (built on first use)."""
        if self._detector is None:
            from genbel.annotate import make_detector

            self._detector = make_detector(self.detector_spec, self.kb)
        return self._detector

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        from genbel.annotate import detect_mentions

        for batch in minibatch(stream, size=batch_size):
            yield from self._set_ents(list(batch), detect_mentions)

    def _set_ents(self, docs: list[Doc], detect: Any) -> list[Doc]:
        found = detect([_document(d, i) for i, d in enumerate(docs)], self.detector)
        for doc, fd in zip(docs, found):
            spans = []
            for e in fd.entities:
                span = doc.char_span(e.start, e.end, label=e.type or "ENTITY", alignment_mode="expand")
                if span is not None:
                    spans.append(span)
            existing = list(doc.ents)
            new = [s for s in filter_spans(spans)
                   if not any(s.start < x.end and x.start < s.end for x in existing)]
            doc.ents = sorted([*existing, *new], key=lambda s: s.start)
        return docs


class GenbelLinkerComponent(_KBComponent):
    """``genbel_linker``: links every entity of ``doc.ents`` and sets ``ent._.kb_ents``."""

    def __init__(
        self, nlp: Language, name: str, kb: str, kb_format: str | None, linker: str, k: int,
        resolve_abbreviations: bool, threshold: float, max_entities_per_mention: int,
        linker_options: dict[str, Any],
    ) -> None:
        super().__init__(name, kb, kb_format)
        self.linker_spec = linker
        self.k = _check_int(name, "k", k, 1)
        self.max_entities_per_mention = _check_int(name, "max_entities_per_mention", max_entities_per_mention, 1)
        self.resolve_abbreviations = bool(resolve_abbreviations)
        self.threshold = float(threshold)
        self.linker_options = dict(linker_options or {})
        self._linker: Any = None
        self._types: dict[str, str] = {}

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "linker": self.linker_spec}

    def _reset(self) -> None:
        self._linker = None
        self._types = {}

    def set_linker(self, linker: Any) -> None:
        """Use a :class:`~genbel.linkers.Linker` built in Python over :attr:`kb` (not saved by
        ``nlp.to_disk``: the saved pipeline rebuilds its ``linker`` spec)."""
        self._linker = linker

    @property
    def linker(self) -> Any:
        """The genbel :class:`~genbel.linkers.Linker` (built on first use)."""
        if self._linker is None:
            from genbel.annotate import make_linker

            self._linker = make_linker(self.linker_spec, self.kb, **self.linker_options)
        return self._linker

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size):
            yield from self._link(list(batch))

    def _type(self, label: str) -> str:
        """The entity's label when it names a semantic group of the KB (linkers may restrict to it)."""
        from genbel.kb.semantic_groups import resolve_group

        if label not in self._types:
            try:
                self._types[label] = resolve_group(label, self.kb.semantic_groups, self.name) if label else ""
            except InputError:
                self._types[label] = ""  # a label of another NER (ORG, ENTITY …): no group restriction
        return self._types[label]

    def _link(self, docs: list[Doc]) -> list[Doc]:
        gdocs = []
        for i, doc in enumerate(docs):
            gd = _document(doc, i)
            gd.entities = [Entity(f"T{j}", self._type(ent.label_), [ent.text], [(ent.start_char, ent.end_char)])
                           for j, ent in enumerate(doc.ents)]
            gdocs.append(gd)
        if any(gd.entities for gd in gdocs):
            results = self.linker.link_documents(gdocs, k=self.k, expand_abbreviations=self.resolve_abbreviations)
        else:
            results = []
        by_key = {(q.doc_id, q.entity_id): cands for q, cands in results}
        for i, doc in enumerate(docs):
            for j, ent in enumerate(doc.ents):
                cands = by_key.get((str(i), f"T{j}"), [])
                ent._.kb_ents = [(c.concept_id, float(c.score)) for c in cands
                                 if c.score >= self.threshold][: self.max_entities_per_mention]
        return docs


def _document(doc: Doc, i: int) -> Document:
    text = doc.text
    return Document(str(i), str(i), [Passage(f"{i}-text", "text", [text], [(0, len(text))])])


@Language.factory(
    "genbel_ner",
    default_config={"kb": "default", "kb_format": None, "detector": "default"},
)
def make_genbel_ner(nlp: Language, name: str, kb: str, kb_format: str | None, detector: str) -> GenbelNERComponent:
    """spaCy factory of ``genbel_ner``."""
    return GenbelNERComponent(nlp, name, kb, kb_format, detector)


@Language.factory(
    "genbel_linker",
    default_config={
        "kb": "default", "kb_format": None, "linker": "default", "k": 5, "resolve_abbreviations": True,
        "threshold": 0.0, "max_entities_per_mention": 5, "linker_options": {},
    },
)
def make_genbel_linker(
    nlp: Language, name: str, kb: str, kb_format: str | None, linker: str, k: int, resolve_abbreviations: bool,
    threshold: float, max_entities_per_mention: int, linker_options: dict[str, Any],
) -> GenbelLinkerComponent:
    """spaCy factory of ``genbel_linker``."""
    return GenbelLinkerComponent(nlp, name, kb, kb_format, linker, k, resolve_abbreviations, threshold,
                                 max_entities_per_mention, linker_options)
