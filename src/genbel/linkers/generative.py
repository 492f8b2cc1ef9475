"""Generative entity linking: a language model writes the concept *name*, a prefix trie keeps it in the KB.

:class:`GenerativeLinker` wraps any Hugging Face causal LM (Llama family incl. SmolLM2, Qwen, Gemma)
or encoder-decoder model (BART, T5). For each mention it builds a prompt
(:class:`~genbel.generation.prompts.PromptFormat`: SynCABEL's inline ``[mention]{Group}`` for causal
models, GenBioEL's ``[ST] mention [ET]`` + decoder prompt ``"mention is"`` for seq2seq models),
runs beam search, and — in *constrained* mode — lets the model write only the token sequences of KB
names (:class:`genbel.trie.CandidateTrie` + :class:`genbel.trie.TrieConstraint`). A generated name
maps to its concept codes (N names → 1 concept, GenBioEL's multi-synonym trie).

The linker composes the pieces of :mod:`genbel.generation`: the prompt encoder
(:mod:`~genbel.generation.encoding`), the beam-search decoder (:mod:`~genbel.generation.beam_search`,
with batching, scopes and the prompt key/value cache), teacher-forced scoring
(:mod:`~genbel.generation.scoring`) and the saved-linker directory (:mod:`~genbel.generation.saved`).

Scores
------
Each beam ``i`` has the length-normalised log-probability of its target tokens (EOS included)::

    s_i = (1 / |y_i|) * sum_t log p(y_i,t | prompt, y_i,<t)

which is what :meth:`~transformers.GenerationMixin.generate` reports with ``length_penalty=1``,
and what :meth:`GenerativeLinker.score_candidates` computes by teacher forcing. The user-facing
``beam_score`` is ``exp(s_i - max_j s_j)``: the best beam scores ``1.0`` and the others their
per-token probability ratio to it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genbel.deps import require

require("torch", "transformers", extra="models", feature="the generative linker")

import torch

from genbel.data.queries import Candidate, MentionQuery, dedupe_candidates
from genbel.errors import ConfigError, Errors
from genbel.generation import saved
from genbel.generation.beam_search import Beam, BeamSearchDecoder
from genbel.generation.encoding import PromptEncoder
from genbel.generation.prompts import PromptFormat, parse_markup
from genbel.generation.scopes import ScopeResolver
from genbel.generation.scoring import score_candidates
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.linkers.registry import register_linker

logger = logging.getLogger(__name__)

NO_CODE = "NO_CODE"

__all__ = ["NO_CODE", "GenerativeLinker"]


class GenerativeLinker(Linker):
    """Trie-constrained generative linker over a Hugging Face causal LM or seq2seq model.

    Build with :meth:`load`: a directory written by :meth:`save` (or by ``genbel train``), or a plain
    model — a local checkpoint, a packaged alias such as ``smollm2-135m`` or a hub id — plus a KB.
    Use :meth:`sample` (model-card API over ``[mention]{Group}`` sentences; beam search),
    :meth:`link` (the :class:`Linker` interface) and :meth:`score_candidates` (teacher-forced scores
    of given names). Decoding is done by :attr:`decoder` (a
    :class:`~genbel.generation.beam_search.BeamSearchDecoder`).
    """

    name = "generative"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        kb: KnowledgeBase,
        *,
        trie: Any | None = None,
        prompt_format: PromptFormat | None = None,
        base_model: str | None = None,
        max_source_length: int = 512,
        max_target_length: int | None = None,
        num_beams: int = 5,
        batch_size: int = 8,
        restrict_to_group: bool = True,
        constrained: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        self.architecture = saved.architecture_of(model.config)
        self.model = model
        self.tokenizer = tokenizer
        self.kb = kb
        self.base_model = base_model
        self.format = prompt_format or PromptFormat(
            style="genbioel" if self.architecture == "seq2seq" else "syncabel"
        )
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.restrict_to_group = restrict_to_group
        #: the memory-training settings when the model was trained on memory prompts (``genbel train
        #: --memory``; read from ``genbel_linker.json``), else None
        self.memory_training: dict | None = None
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.model.eval()
        encoder = PromptEncoder(
            tokenizer,
            self.format,
            self.architecture,
            max_source_length=max_source_length,
            decoder_start_token_id=getattr(model.config, "decoder_start_token_id", None),
        )
        if trie is None:
            trie = saved.build_trie(kb, tokenizer, encoder.eos_token_id, show_progress=kb.n_names() > 50_000)
        #: the beam-search decoder (model, prompt encoder, trie and scopes of this linker)
        self.decoder = BeamSearchDecoder(
            model,
            tokenizer,
            encoder,
            trie,
            ScopeResolver(kb, trie),
            max_target_length=max_target_length,
            constrained=constrained,
            device=self.device,
        )

    # ------------------------------------------------------------------ settings
    @property
    def encoder(self) -> PromptEncoder:
        """The prompt encoder (queries and names → token ids)."""
        return self.decoder.encoder

    @property
    def trie(self) -> Any:
        """The :class:`~genbel.trie.CandidateTrie` of the KB's names."""
        return self.decoder.trie

    @property
    def max_target_length(self) -> int:
        """New tokens of an unconstrained generation (default: the longest name target)."""
        return self.decoder.max_target_length

    @property
    def constrained(self) -> bool:
        """Default decoding mode: only KB names (True) or free text (False)."""
        return self.decoder.constrained

    @constrained.setter
    def constrained(self, value: bool) -> None:
        self.decoder.constrained = value

    @property
    def share_prompt_cache(self) -> bool:
        """Causal models: compute the prompt's KV cache once per query, not once per beam (same results)."""
        return self.decoder.share_prompt_cache

    @share_prompt_cache.setter
    def share_prompt_cache(self, value: bool) -> None:
        self.decoder.share_prompt_cache = value

    @property
    def share_prompt_across_beams(self) -> bool:
        """Causal models with plain full-attention layers: keep that cache once per query during beam
        search, not once per beam (same results; a step's cost no longer grows with the prompt)."""
        return self.decoder.share_prompt_across_beams

    @share_prompt_across_beams.setter
    def share_prompt_across_beams(self, value: bool) -> None:
        self.decoder.share_prompt_across_beams = value

    @property
    def text_to_code(self) -> dict[str, list[str]]:
        """KB name → concept codes (the ``text_to_code.json`` of the SynCABEL/LongBEL model cards)."""
        return self.trie.text_to_code

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(
        cls,
        path: str | Path,
        kb: KnowledgeBase | None = None,
        *,
        model: Any | None = None,
        merge_lora: bool = True,
        dtype: torch.dtype | None = None,
        quantize: str | None = "auto",
        **kwargs: Any,
    ) -> GenerativeLinker:
        """Load a saved linker directory, or build a linker over a plain model and ``kb``.

        ``path`` with a ``genbel_linker.json`` is a directory written by :meth:`save` or by training
        (:mod:`genbel.generation.saved`): the model is a full checkpoint, or a peft LoRA adapter
        applied to ``base_model`` and merged (``merge_lora``); the KB is ``kb`` or the saved ``kb/``;
        the trie is loaded (memory-mapped) when it was built for that KB, else rebuilt. ``model``
        replaces the saved weights (the exported model class reading its own folder).

        Any other ``path`` — a Hugging Face checkpoint directory, a packaged alias
        (``genbel.models.resolve_model``) or a hub id — is a plain model (loaded in ``dtype`` if given):
        a ``kb`` is then required and the trie is built for it. A directory that holds neither a
        ``genbel_linker.json`` nor a ``config.json`` raises ``E251``. Other keyword arguments go to
        the constructor. ``quantize`` sets how the model's linear layers compute, after the LoRA merge
        (:mod:`genbel.generation.quantize`): ``"auto"`` (bfloat16 weights on a CPU that computes bfloat16
        natively, else unchanged), ``"bf16"``, ``"int8"`` (opt-in: it changes beams) or ``"none"``; a
        ``model`` passed in is never changed by ``"auto"``.
        """
        from genbel.generation.quantize import quantize_model

        if model is not None and quantize == "auto":  # the caller's own model object stays as it is
            quantize = "none"
        p = Path(path)
        if not saved.is_linker_dir(p):
            if p.is_dir() and not (p / saved.MODEL_CONFIG).is_file():
                raise ConfigError(Errors.E251.format(path=p, missing=saved.CONFIG_FILE))
            if kb is None:
                raise ConfigError(Errors.E014.format(where="generative linker", field="kb"))
            hf_model, tokenizer = saved.load_pretrained(path, dtype)
            return cls(quantize_model(hf_model, quantize), tokenizer, kb, base_model=str(path), **kwargs)
        files = saved.read_linker(p, kb, model=model, merge_lora=merge_lora)
        options = {**files.options, **kwargs}
        linker = cls(quantize_model(files.model, quantize), files.tokenizer, files.kb, trie=files.trie, **options)
        linker.memory_training = files.memory_training
        return linker

    def save(self, path: str | Path, *, extra_files: dict[str, str] | None = None) -> Path:
        """Write the linker directory atomically (layout: :mod:`genbel.generation.saved`).

        ``path`` must not exist, be empty, or be an earlier linker directory (which is replaced).
        ``extra_files`` (file name → text) are written beside the linker's files. A model loaded with
        rounded weights (``quantize`` other than ``"none"``) is not saved (E634).
        """
        from genbel.generation.quantize import quantization_of
        from genbel.io import atomic_dir

        mode = quantization_of(self.model)
        if mode != "none":
            raise ConfigError(Errors.E634.format(mode=mode))
        saved.check_replaceable(Path(path))

        def write(d: Path) -> None:
            saved.write_linker(
                d,
                model=self.model,
                tokenizer=self.tokenizer,
                kb=self.kb,
                trie=self.trie,
                architecture=self.architecture,
                prompt_format=self.format,
                base_model=self.base_model,
                max_source_length=self.encoder.max_source_length,
                max_target_length=self.max_target_length,
                memory_training=self.memory_training,
            )
            for name, text in (extra_files or {}).items():
                (d / name).write_text(text, encoding="utf-8")

        return atomic_dir(path, write)

    # ------------------------------------------------------------------ decoding
    def generate(
        self,
        queries: Sequence[MentionQuery],
        *,
        constrained: bool | None = None,
        num_beams: int | None = None,
        batch_size: int | None = None,
        candidates: Sequence[Sequence[str] | None] | None = None,
        restrict_to_group: bool | None = None,
        where: Sequence[str] | None = None,
        check_groups: bool = False,
        cache: dict[tuple, list[Beam]] | None = None,
        prefix_keys: Sequence[Any] | None = None,
        prefix_store: dict[Any, Any] | None = None,
    ) -> list[list[Beam]]:
        """Beams per query, best first (``Beam.logprob`` is the length-normalised log-probability).

        Queries with identical model inputs and scope are decoded once. ``cache`` (a dict the caller
        keeps across calls, e.g. for one document-level run) also reuses the beams of earlier calls.
        ``prefix_keys[i]`` + ``prefix_store`` (causal models): the prompt of query ``i`` reuses the
        key/value states of the longest common token prefix with the last prompt stored under the same
        key, and stores its own (document-level linking: the memory block is a growing prefix).

        ``candidates[i]`` (concept ids) restricts query ``i`` to those concepts (an empty list gives
        no beam); otherwise, with ``restrict_to_group``, a query whose ``type`` resolves to a
        semantic group of the KB is restricted to that group (a group the KB lacks gives no beam).
        """
        return self.decoder.generate(
            queries,
            num_beams=num_beams or self.num_beams,
            batch_size=batch_size or self.batch_size,
            restrict_to_group=self.restrict_to_group if restrict_to_group is None else restrict_to_group,
            constrained=constrained,
            candidates=candidates,
            where=where,
            check_groups=check_groups,
            cache=cache,
            prefix_keys=prefix_keys,
            prefix_store=prefix_store,
        )

    # ------------------------------------------------------------------ public API
    def sample(
        self,
        sentences: Sequence[str] | str,
        constrained: bool = True,
        num_beams: int = 5,
        batch_size: int | None = None,
        restrict_to_group: bool = True,
        candidates: Sequence[Sequence[str] | None] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Link ``[mention]{Group}`` sentences by beam search; the SynCABEL model-card API.

        The name ``sample`` is the model card's: decoding is deterministic beam search with
        ``num_beams`` beams (constrained to KB names with ``constrained``), not sampling.
        Returns, per sentence, up to ``num_beams`` dicts, best first::

            {"mention", "pred_concept_name", "pred_concept_code", "pred_concept_codes", "beam_score"}

        ``pred_concept_code`` is the first code of the name (``"NO_CODE"`` when an unconstrained
        generation is not a KB name), ``pred_concept_codes`` all of them. ``beam_score`` is
        ``exp(s_i - s_max)`` of the length-normalised log-probabilities ``s_i`` (best beam = 1.0).
        The group must be a KB group, a UMLS group (name or code), a TUI or a corpus type of
        :data:`genbel.kb.semantic_groups.GROUP_ALIASES`; with ``restrict_to_group`` (and constrained
        decoding) only names of that group are generated.
        """
        if isinstance(sentences, str):
            sentences = [sentences]
        where = [f"sentence {i + 1}" for i in range(len(sentences))]
        queries = [parse_markup(s, w) for s, w in zip(sentences, where)]
        beams = self.generate(
            queries,
            constrained=constrained,
            num_beams=num_beams,
            batch_size=batch_size,
            candidates=candidates,
            restrict_to_group=restrict_to_group,
            where=where,
            check_groups=True,
        )
        out: list[list[dict[str, Any]]] = []
        for q, bs in zip(queries, beams):
            best = bs[0].logprob if bs else 0.0
            out.append(
                [
                    {
                        "mention": q.surface,
                        "pred_concept_name": b.name,
                        "pred_concept_code": b.codes[0] if b.codes else NO_CODE,
                        "pred_concept_codes": list(b.codes),
                        "beam_score": math.exp(b.logprob - best),
                    }
                    for b in bs
                ]
            )
        return out

    def link(
        self,
        queries: Sequence[MentionQuery],
        k: int = 5,
        candidates: Sequence[Sequence[str] | None] | None = None,
    ) -> list[list[Candidate]]:
        """Ranked concepts per query: beams mapped to their concepts, best first, distinct, at most ``k``.

        A name with several codes gives several candidates (in code order, same score). Unconstrained
        generations that are not exact KB names are looked up after normalisation
        (:meth:`KnowledgeBase.lookup`); names still unknown are dropped. ``candidates`` restricts each
        query to the given concept ids (retrieve-then-generate). Scores are ``beam_score``.
        """
        beams = self.generate(queries, num_beams=max(self.num_beams, k), candidates=candidates)
        return [self.candidates_from_beams(bs, k) for bs in beams]

    def candidates_from_beams(self, beams: Sequence[Beam], k: int) -> list[Candidate]:
        """At most ``k`` distinct concepts of ``beams`` (best first), scored ``exp(s_i - s_max)``.

        Beams without codes (unconstrained generations) are looked up after normalisation
        (:meth:`KnowledgeBase.lookup`); names still unknown are dropped.
        """
        best = beams[0].logprob if beams else 0.0
        cands: list[Candidate] = []
        for b in beams:
            codes = b.codes or self.kb.lookup(b.name)
            score = math.exp(b.logprob - best)
            for code in codes:
                concept = self.kb.get(code)
                if concept is not None:
                    cands.append(Candidate(concept.id, concept.name, score, matched=b.name))
        return dedupe_candidates(cands, k)

    def score_candidates(
        self,
        queries: Sequence[MentionQuery],
        candidate_names: Sequence[Sequence[str]],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
    ) -> list[list[float]]:
        """Teacher-forced log-likelihood of each given name (target + EOS) for its query.

        ``normalize=True`` gives the mean log-probability per target token (the ``s_i`` that beam
        search ranks by), ``False`` the sum. All (query, name) pairs go through the model in
        batches of ``batch_size * num_beams`` sequences.
        """
        rows = (batch_size or self.batch_size) * max(1, self.num_beams)
        return score_candidates(
            self.model,
            self.encoder,
            queries,
            candidate_names,
            normalize=normalize,
            rows=rows,
            device=self.device,
        )


@register_linker("generative")
def _factory(kb: KnowledgeBase | None, path: str | None = None, **options: Any) -> GenerativeLinker:
    """``generative:PATH``: a saved linker directory (``genbel_linker.json``), a model name/path, or
    ``generative:default`` — the shipped default model."""
    if not path:
        raise ConfigError(Errors.E255.format(where="--linker generative"))
    if path == "default":
        from genbel.linkers.default import default_model_dir

        shipped = default_model_dir()
        if shipped is None:
            raise ConfigError(Errors.E255.format(where="--linker generative:default (no shipped model)"))
        path = str(shipped)
    return GenerativeLinker.load(path, kb, **options)
