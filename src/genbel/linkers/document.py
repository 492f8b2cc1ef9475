"""Document-level generative linking with a memory of earlier normalizations (LongBEL).

:class:`DocumentLinker` wraps a :class:`~genbel.linkers.generative.GenerativeLinker` and links the
mentions of a document *in document order*. Each prediction is conditioned on

* the document around the mention — the whole document (or a ``context_chars`` character window)
  cut by *tokens* to at most ``max_prompt_tokens`` prompt tokens, symmetrically around the mention
  (the side with less text gives its unused share to the other); and
* a memory of the earlier normalizations of the same document: for every earlier mention, the
  ``(linked text, name of its top beam)`` pair, rendered by
  :meth:`PromptFormat.memory_block <genbel.generation.prompts.PromptFormat.memory_block>` as
  ``"mention is name"`` lines, in the layout the model was trained with (its format's
  ``memory_style``): ``"block"`` (LongBEL) shows the latest ``memory_size`` distinct mentions followed
  by ``---``; ``"lines"`` shows each mention with its first name in order of first occurrence, leaves
  out the oldest entries in chunks, and with a mention-only context ends with the bare
  ``"mention is"`` line — a document's prompts then extend one another, so with ``reuse_prefix``
  each decode computes only the name chosen for the previous mention and its own line.

The prompt is ``memory block + context with [mention]{Group} + "\\n" + "mention is"`` (the
SynCABEL/GenBioEL prompt of the wrapped linker, preceded by the memory block), built and tokenized by
:class:`~genbel.generation.encoding.DocumentPromptEncoder`, which training uses too
(``genbel train --memory``). When the memory block and the marked mention alone exceed
``max_prompt_tokens`` the oldest memory entries are left out first.

Decoding is the wrapped linker's :class:`~genbel.generation.beam_search.BeamSearchDecoder` with the
document-level prompt encoder (:meth:`~genbel.generation.beam_search.BeamSearchDecoder.with_encoder`:
same model, trie and scopes; trie-constrained beam search); semantic-guided decoding restricts
each mention to the names of its semantic group (the entity ``type``: a UMLS group, group code, TUI or
corpus type such as BC5CDR ``Chemical`` → Chemicals & Drugs, ``Disease`` → Disorders; see
:mod:`genbel.kb.semantic_groups`).

Batching: documents are linked in parallel, ``batch_size`` mentions (of different documents) per
decoding batch; a mention is decoded once every earlier mention of its document is linked (see
:meth:`DocumentLinker.run`).

``sample(bigbio_pages=..., num_beams=k)`` is the LongBEL model-card API: BigBio dicts in, a *flat* list
of exactly ``k`` predictions per mention out (fewer beams are padded with empty predictions of score
0, ``pred_concept_code == "NO_CODE"``), optionally with one saliency map per mention
(:mod:`genbel.linkers.saliency`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from genbel.data.model import Document
from genbel.data.queries import Candidate, MentionQuery, queries_from_documents
from genbel.errors import ConfigError, Errors, InputError
from genbel.generation.beam_search import Beam, BeamSearchDecoder, copy_beams
from genbel.generation.encoding import DocumentPromptEncoder, DocumentQuery, with_memory
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.linkers.generative import NO_CODE, GenerativeLinker
from genbel.linkers.registry import register_linker

logger = logging.getLogger(__name__)

__all__ = ["NO_CODE", "DocumentLinker", "documents_from_bigbio", "explainer"]


# ---------------------------------------------------------------------------------------------- input
def documents_from_bigbio(
    pages: Sequence[Mapping[str, Any] | Document], where: str = "bigbio_pages"
) -> list[Document]:
    """BigBio KB dicts (or :class:`Document` objects) → validated documents.

    Entity offsets that do not match the passage text raise :class:`~genbel.errors.InputError`
    (``E005``) naming the page and the entity.
    """
    from genbel.data.bigbio import document_from_dict

    docs: list[Document] = []
    for i, p in enumerate(pages):
        loc = f"{where}[{i}]"
        if isinstance(p, Document):
            p.validate(f"{loc} (document {p.document_id})")
            docs.append(p)
        else:
            docs.append(document_from_dict(p, loc, offsets="error"))
    return docs


def _group_by_document(queries: Sequence[MentionQuery]) -> list[list[int]]:
    """Query indices per document (``doc_id``), in the given order; ``None`` ids are one-mention documents."""
    groups: dict[Any, list[int]] = {}
    for i, q in enumerate(queries):
        key = q.doc_id if q.doc_id is not None else ("__single__", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


# ---------------------------------------------------------------------------------------------- linker
class DocumentLinker(Linker):
    """LongBEL-style document-level linker over a :class:`GenerativeLinker` (see the module docstring).

    Parameters
    ----------
    generator:
        the wrapped linker (its model, tokenizer, trie and KB are shared, not copied).
    use_memory:
        condition on earlier predictions of the document (``False``: context only).
    memory_size:
        most recent distinct memory entries in the prompt (default: the generator's format, 10).
    context_chars:
        character window each side of the mention before token trimming; ``None`` = the whole
        document; ``"model"`` = what the generator was trained with.
    max_prompt_tokens:
        token budget of the prompt (default: the generator's ``max_source_length``).
    reuse_prefix:
        causal models: keep each document's prompt key/value states and compute only what follows
        the prefix it shares with the next prompt (same results, less prompt computation).
    reuse_repeats:
        a mention whose text was already linked earlier in the same document takes the beams of that
        occurrence instead of being decoded again; its memory entry is added as usual. Types count only
        where they change the decode: when the prompt shows them (``include_group``) or when they
        restrict decoding to different semantic groups. On
        NCBI-disease test (mention-only prompts, ``context_chars=0``) the model itself repeated the
        earlier top-1 for 393 of 404 such mentions (and copying scored 332 vs 328 correct). With a
        context window the two occurrences see different text, so this is then an approximation
        (not measured); pass ``reuse_repeats=False`` to decode every occurrence.
    """

    name = "document"

    def __init__(
        self,
        generator: GenerativeLinker,
        *,
        use_memory: bool = True,
        memory_size: int | None = None,
        context_chars: int | None | str = None,
        max_prompt_tokens: int | None = None,
        num_beams: int | None = None,
        batch_size: int | None = None,
        restrict_to_group: bool | None = None,
        include_group: bool | None = None,
        reuse_prefix: bool = True,
        reuse_repeats: bool = True,
    ) -> None:
        base_fmt: PromptFormat = generator.format
        if isinstance(context_chars, str):
            if context_chars != "model":
                raise ConfigError(
                    Errors.E024.format(value=context_chars, field="context_chars", kind="an integer, None or 'model'")
                )
            context_chars = base_fmt.context_chars
        if context_chars is not None and int(context_chars) < 0:
            raise ConfigError(Errors.E023.format(value=context_chars, field="context_chars", constraint=">= 0 or None"))
        if memory_size is not None and int(memory_size) < 0:
            raise ConfigError(Errors.E023.format(value=memory_size, field="memory_size", constraint=">= 0"))
        max_prompt_tokens = int(max_prompt_tokens or generator.encoder.max_source_length)
        if max_prompt_tokens < 8:
            raise ConfigError(Errors.E023.format(value=max_prompt_tokens, field="max_prompt_tokens", constraint=">= 8"))
        self.generator = generator
        self.use_memory = bool(use_memory)
        self.max_prompt_tokens = max_prompt_tokens
        self.format = PromptFormat(
            style=base_fmt.style,
            context_chars=context_chars,
            include_group=base_fmt.include_group if include_group is None else bool(include_group),
            memory_size=base_fmt.memory_size if memory_size is None else int(memory_size),
            memory_style=base_fmt.memory_style,
        )
        self.num_beams = num_beams or generator.num_beams
        self.batch_size = batch_size or generator.batch_size
        self.reuse_prefix = bool(reuse_prefix)
        self.reuse_repeats = bool(reuse_repeats)
        self.restrict_to_group = (
            generator.restrict_to_group if restrict_to_group is None else restrict_to_group
        )
        enc = generator.encoder
        self.encoder = DocumentPromptEncoder(
            enc.tokenizer, self.format, enc.architecture, max_source_length=max_prompt_tokens,
            decoder_start_token_id=enc.decoder_start_token_id,
        )
        #: the generator's decoder with this linker's prompts: model, trie, KB, group restrictions and
        #: prompt prefill are shared with the generator; only the prompts differ
        self.decoder: BeamSearchDecoder = generator.decoder.with_encoder(self.encoder)

    # ------------------------------------------------------------------ construction
    @property
    def kb(self) -> KnowledgeBase:
        return self.generator.kb

    @classmethod
    def load(cls, path: str, kb: KnowledgeBase | None = None, **options: Any) -> DocumentLinker:
        """A saved generative linker directory (``genbel_linker.json``) used document-level.

        A model trained with memory prompts (``genbel train --memory``: ``memory_training`` in
        ``genbel_linker.json``) defaults to the context window it was trained with
        (``context_chars="model"``) and to its training prompt budget (its ``max_source_length``), so
        its prompts are built as in training; other models default to the whole document.
        """
        mine = {k: options.pop(k) for k in list(options) if k in _OPTIONS}
        generator = GenerativeLinker.load(path, kb, **options)
        if generator.memory_training:
            mine.setdefault("context_chars", "model")
        return cls(generator, **mine)

    def variant(self, **overrides: Any) -> DocumentLinker:
        """Another input configuration over the same model (e.g. ``use_memory=False``, another window)."""
        settings = {
            "use_memory": self.use_memory,
            "memory_size": self.format.memory_size,
            "context_chars": self.format.context_chars,
            "max_prompt_tokens": self.max_prompt_tokens,
            "num_beams": self.num_beams,
            "batch_size": self.batch_size,
            "restrict_to_group": self.restrict_to_group,
            "include_group": self.format.include_group,
            "reuse_prefix": self.reuse_prefix,
            "reuse_repeats": self.reuse_repeats,
        }
        unknown = set(overrides) - set(settings)
        if unknown:
            raise ConfigError(
                Errors.E025.format(what="document-level setting(s)", unknown=sorted(unknown), known=sorted(settings))
            )
        settings.update(overrides)
        return DocumentLinker(self.generator, **settings)

    def describe(self) -> str:
        ctx = "doc" if self.format.context_chars is None else f"{self.format.context_chars}ch"
        mem = f"mem{self.format.memory_size}" if self.use_memory else "nomem"
        if self.use_memory and self.format.memory_style != "block":
            mem += f"-{self.format.memory_style}"
        return f"{mem}/{ctx}/{self.max_prompt_tokens}tok"

    # ------------------------------------------------------------------ core loop
    def _repeat_keys(
        self,
        queries: Sequence[MentionQuery],
        restrict: bool,
        constrained: bool | None,
        check_groups: bool,
        where: Sequence[str] | None,
    ) -> list[tuple]:
        """Per query, what its decode depends on besides the memory and context: the text, the type
        only when the prompt shows it, and the scope (semantic group) the type restricts decoding to.

        A corpus that gives one string several types (NCBI-disease: ``SpecificDisease``, ``Modifier``, …)
        that map to the same group thus repeats the mention. Unknown types raise here, before decoding.
        """
        if where is None:
            where = [f"document {q.doc_id}, entity {q.entity_id}" for q in queries]
        constrained = self.decoder.constrained if constrained is None else constrained
        scopes = self.decoder.scopes.resolve(queries, None, restrict and constrained, where, check_groups)
        shown = self.format.include_group
        return [
            (q.text, q.type if shown else None, s.group, s.possible) for q, s in zip(queries, scopes)
        ]

    def run(
        self,
        queries: Sequence[MentionQuery],
        *,
        num_beams: int | None = None,
        constrained: bool | None = None,
        restrict_to_group: bool | None = None,
        check_groups: bool = False,
        where: Sequence[str] | None = None,
        show_progress: bool | None = None,
    ) -> tuple[list[DocumentQuery], list[list[Beam]]]:
        """Link ``queries`` document by document, in order; returns the queries as linked (with the
        memory each one saw) and their beams (:class:`~genbel.generation.beam_search.Beam`, best first).

        Queries of one document share a ``doc_id`` and come in document order.

        Scheduling: each document is a chain (a mention's memory needs the earlier predictions), and
        the chains are decoded together in rounds: a round decodes the next mention that needs a
        decode in every unfinished document, in batches of ``batch_size`` sorted by prompt length.
        Mentions that need no decode (repeats, with ``reuse_repeats``) are resolved as soon as their
        turn comes, so they never take a round. The schedule changes only which mentions share a
        batch, not what any of them sees.
        """
        nb = num_beams or self.num_beams
        restrict = self.restrict_to_group if restrict_to_group is None else restrict_to_group
        docs = _group_by_document(queries)
        keys = self._repeat_keys(queries, restrict, constrained, check_groups, where)
        linked: list[DocumentQuery | None] = [None] * len(queries)
        beams: list[list[Beam]] = [[] for _ in queries]
        memories: list[list[tuple[str, str]]] = [[] for _ in docs]
        # a mention whose prompt (memory included) and scope equal an earlier one's is not decoded again
        cache: dict[tuple, list[Beam]] = {}
        # causal models: the key/value states of each document's last prompt, reused for the common
        # prefix of its next one (the memory block grows by one entry per mention)
        prefixes: dict[int, Any] | None = {} if self.reuse_prefix else None
        # per document: repeat key -> beams of its latest occurrence (reuse_repeats)
        seen: list[dict[tuple, list[Beam]]] = [{} for _ in docs]
        pos = [0] * len(docs)  # next mention of each document

        def needs_decode(di: int, i: int) -> bool:
            return not (self.reuse_repeats and keys[i] in seen[di])

        def record(di: int, i: int, q: DocumentQuery, bs: list[Beam]) -> None:
            linked[i] = q
            beams[i] = bs
            seen[di][keys[i]] = bs
            if bs:
                memories[di].append((q.text, bs[0].name))
            pos[di] += 1

        def current(di: int) -> tuple[int, DocumentQuery]:
            i = docs[di][pos[di]]
            return i, with_memory(queries[i], memories[di] if self.use_memory else ())

        bar = tqdm(total=len(queries), desc="linking documents", unit="mention", leave=False,
                   disable=(not show_progress) if show_progress is not None else None)  # None: on a terminal
        unfinished = list(range(len(docs)))
        try:
            while unfinished:
                ready = []
                for di in unfinished:
                    while pos[di] < len(docs[di]) and not needs_decode(di, docs[di][pos[di]]):
                        i, q = current(di)
                        earlier = seen[di][keys[i]]
                        record(di, i, q, copy_beams(earlier))
                        bar.update(1)
                    if pos[di] < len(docs[di]):
                        ready.append(di)
                    elif prefixes is not None:
                        prefixes.pop(di, None)  # the document is done
                unfinished = ready
                if not ready:
                    break
                # one round: the next decode of every unfinished document, in batches of similar
                # prompt length (generate sorts them), so a batch's rows carry similar memories
                todo = [current(di) for di in ready]
                decoded = self.decoder.generate(
                    [q for _, q in todo],
                    constrained=constrained,
                    num_beams=nb,
                    batch_size=self.batch_size,
                    restrict_to_group=restrict,
                    where=[where[i] for i, _ in todo] if where is not None else None,
                    check_groups=check_groups,
                    cache=cache,
                    prefix_keys=ready,
                    prefix_store=prefixes,
                )
                for di, (i, q), bs in zip(ready, todo, decoded):
                    record(di, i, q, bs)
                bar.update(len(todo))
        finally:
            bar.close()
        return [q for q in linked if q is not None], beams

    # ------------------------------------------------------------------ Linker API
    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        """Ranked concepts per query; queries sharing a ``doc_id`` are one document, in the given order."""
        _, beams = self.run(queries, num_beams=max(self.num_beams, k))
        return [self.generator.candidates_from_beams(bs, k) for bs in beams]

    def link_documents(
        self, documents: Sequence[Document], k: int = 5, expand_abbreviations: bool = False,
        entity_types: Sequence[str] | None = None,
    ) -> list[tuple[MentionQuery, list[Candidate]]]:
        """Link every entity of the documents in document order (offsets are checked first: ``E005``)."""
        for d in documents:
            d.validate()
        queries = queries_from_documents(documents, expand_abbreviations, entity_types)
        linked, beams = self.run(queries, num_beams=max(self.num_beams, k))
        return [(q, self.generator.candidates_from_beams(bs, k)) for q, bs in zip(linked, beams)]

    # ------------------------------------------------------------------ model-card API
    def sample(
        self,
        bigbio_pages: Sequence[Mapping[str, Any] | Document],
        num_beams: int = 5,
        with_saliency_maps: bool = False,
        *,
        constrained: bool = True,
        restrict_to_group: bool = True,
        expand_abbreviations: bool = False,
    ) -> list[dict[str, Any]] | tuple[list[dict[str, Any]], list[Any]]:
        """Link BigBio pages: a flat list of ``num_beams`` predictions per mention, in document order.

        Each prediction: ``{"mention", "pred_concept_name", "pred_concept_code", "pred_concept_codes",
        "beam_score", "document_id", "entity_id", "beam"}``; ``beam_score = exp(s_i - s_max)`` (1.0 for
        the best beam). Missing beams are padded (name ``""``, code ``NO_CODE``, score 0.0). With
        ``with_saliency_maps`` also one :class:`~genbel.linkers.saliency.SaliencyMap` per mention (for
        its top prediction; ``None`` when there is none), computed on the prompt the mention was linked with.
        """
        if num_beams < 1:
            raise ConfigError(Errors.E023.format(value=num_beams, field="num_beams", constraint=">= 1"))
        docs = documents_from_bigbio(bigbio_pages)
        queries = queries_from_documents(docs, expand_abbreviations)
        where = [f"bigbio_pages document {q.doc_id}, entity {q.entity_id}" for q in queries]
        linked, beams = self.run(
            queries, num_beams=num_beams, constrained=constrained, restrict_to_group=restrict_to_group,
            check_groups=True, where=where,
        )
        preds: list[dict[str, Any]] = []
        for q, bs in zip(linked, beams):
            best = bs[0].logprob if bs else 0.0
            for j in range(num_beams):
                b = bs[j] if j < len(bs) else None
                preds.append(
                    {
                        "mention": q.surface,
                        "pred_concept_name": b.name if b else "",
                        "pred_concept_code": (b.codes[0] if b and b.codes else NO_CODE),
                        "pred_concept_codes": list(b.codes) if b else [],
                        "beam_score": math.exp(b.logprob - best) if b else 0.0,
                        "document_id": q.doc_id,
                        "entity_id": q.entity_id,
                        "beam": j + 1,
                    }
                )
        if not with_saliency_maps:
            return preds
        from genbel.linkers.saliency import saliency_maps

        targets = [(bs[0].name, bs[0].codes[0] if bs[0].codes else NO_CODE) if bs else None for bs in beams]
        return preds, saliency_maps(self.decoder, linked, targets)

    def explain(
        self, document: Document, expand_abbreviations: bool = False, entity_types: Sequence[str] | None = None
    ) -> str:
        """A self-contained HTML page with one saliency map per mention of ``document`` (its top
        prediction, on the prompt — memory included — it was linked with), in document order."""
        from genbel.linkers.saliency import document_html, saliency_maps

        document.validate()
        queries = queries_from_documents([document], expand_abbreviations, entity_types)
        linked, beams = self.run(queries, show_progress=False)
        targets = [(bs[0].name, bs[0].codes[0] if bs[0].codes else NO_CODE) if bs else None for bs in beams]
        maps = saliency_maps(self.decoder, linked, targets)
        return document_html(document.document_id, maps, [q.surface for q in linked])

    @staticmethod
    def display_saliency_map(saliency_map: Any, html_path: str | None = None, **kwargs: Any) -> Any:
        """Render a saliency map in the terminal (and as an HTML heat map).

        See :func:`genbel.linkers.saliency.display_saliency_map`.
        """
        from genbel.linkers.saliency import display_saliency_map

        return display_saliency_map(saliency_map, html_path=html_path, **kwargs)


def explainer(linker: Linker) -> DocumentLinker:
    """The document-level linker whose saliency maps explain ``linker``'s predictions: ``linker`` itself,
    or the first memory member of an ensemble (E632 when there is none)."""
    if isinstance(linker, DocumentLinker):
        return linker
    members = [m for m in getattr(linker, "members", ()) if isinstance(m, DocumentLinker)]
    for m in sorted(members, key=lambda m: not m.use_memory):
        return m
    raise ConfigError(Errors.E632)


_OPTIONS = {
    "use_memory", "memory_size", "context_chars", "max_prompt_tokens", "restrict_to_group", "include_group",
    "reuse_prefix", "reuse_repeats",
}


def _parse_option(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    v = value.strip().lower()
    if key in ("use_memory", "restrict_to_group", "include_group", "reuse_prefix", "reuse_repeats"):
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise ConfigError(Errors.E024.format(value=value, field=key, kind="a boolean"))
    if key == "context_chars" and v in ("none", "doc", "document"):
        return None
    if key == "context_chars" and v == "model":
        return "model"
    try:
        return int(v)
    except ValueError:
        raise InputError(Errors.E024.format(value=value, field=key, kind="an integer")) from None


@register_linker("document")
def _factory(kb: KnowledgeBase | None, path: str | None = None, **options: Any) -> Linker:
    """``document:PATH``: a saved generative linker used document-level (memory + whole-document context);
    ``document:default`` is the shipped generative model.

    Options (keyword, strings accepted): ``use_memory``, ``memory_size``, ``context_chars``
    (``None``/``"doc"`` = whole document, ``"model"``), ``max_prompt_tokens``, ``restrict_to_group``,
    ``include_group``, and ``ensemble=True`` for the default two-configuration ensemble (with and
    without memory; :func:`genbel.linkers.ensemble.default_ensemble`). Other options go to
    :meth:`GenerativeLinker.load`.
    """
    if not path:
        raise ConfigError(Errors.E255.format(where="--linker document"))
    if path == "default":  # the shipped generative model, as generative:default
        from genbel.linkers.default import default_model_dir

        shipped = default_model_dir()
        if shipped is None:
            raise ConfigError(Errors.E255.format(where="--linker document:default (no shipped model)"))
        path = str(shipped)
    ensemble = _parse_option("use_memory", options.pop("ensemble", False))
    opts = {k: _parse_option(k, v) if k in _OPTIONS else v for k, v in options.items()}
    linker = DocumentLinker.load(path, kb, **opts)
    if ensemble:
        from genbel.linkers.ensemble import default_ensemble

        return default_ensemble(linker)
    return linker
