"""Beam search over encoded queries: the decoding step of generative linking.

:class:`BeamSearchDecoder` runs beam search with ``num_beams`` beams per query and, in *constrained*
mode, the trie of KB names (the :class:`~genbel.trie.CandidateTrie`, restricted to each query's
:class:`~genbel.generation.scopes.Scope`) so that only the token sequences of KB names can be written.
A generated name maps to its concept codes. Two loops give the same beams and scores:

* ``search="genbel"`` (default): genbel's own loop, :class:`~genbel.generation.beam_loop.BeamLoop`, for
  constrained decoding with a decoder-only model whose layers are plain full attention: each query
  leaves the batch when it is done and a waiting query takes its place, and tokens the trie forces are
  fed ahead in one forward pass (its module docstring states the step and the stopping rule exactly);
* ``search="hf"`` (and, whatever the setting, seq2seq models, models with sliding-window layers and
  unconstrained decoding): Hugging Face ``generate`` with a :class:`~genbel.trie.TrieLogitsProcessor`,
  a batch at a time; a batch runs until its last query is done.

Stopping: Hugging Face's ``early_stopping=False`` rule, per query: a query is done when its
``num_beams`` hypotheses are finished and the best running beam, scored as if it ended now, is not
above the worst of them (already earlier than an exact bound, since more tokens can only raise a
negative mean log-probability's length-normalised value); ``True`` (done at ``num_beams`` finished
hypotheses) lost 9.4 R@1 on NCBI-disease dev.

Each beam ``i`` carries the length-normalised log-probability of its target tokens (EOS included)::

    s_i = (1 / |y_i|) * sum_t log p(y_i,t | prompt, y_i,<t)

which is what ``generate`` reports with ``length_penalty=1`` and what
:func:`genbel.generation.scoring.score_candidates` computes by teacher forcing.

Queries are batched by :mod:`genbel.generation.batching` (ordered by prompt length); with ``generate``
causal prompts are prefilled once per query and shared by their beams (:mod:`genbel.generation.cache`).
The decoder holds no prompt format of its own: its :class:`~genbel.generation.encoding.PromptEncoder`
turns queries into ids, and :meth:`BeamSearchDecoder.with_encoder` gives a decoder over the same model,
trie and scopes with other prompts (document-level linking, whose reused prompt prefixes both loops
read through :class:`~genbel.generation.cache.PromptPrefill`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from genbel.data.queries import MentionQuery
from genbel.generation.batching import batches, model_inputs
from genbel.generation.beam_loop import BeamLoop
from genbel.generation.cache import PromptPrefill, beam_cache, plain_cache
from genbel.generation.encoding import EncodedQuery, PromptEncoder
from genbel.generation.saved import longest_target
from genbel.generation.scopes import Scope, ScopeResolver, decode_key
from genbel.kb.base import KnowledgeBase

logger = logging.getLogger(__name__)

#: the decoding loops of :class:`BeamSearchDecoder`: genbel's (default) and Hugging Face ``generate``
SEARCHES = ("genbel", "hf")

# Beams scored below this are filler hypotheses (a trie with fewer names than beams: generate pads
# with sequences penalised by -1e9, then divided by their length). Real scores are mean token
# log-probabilities, far above it.
INVALID_SCORE = -1.0e4


@dataclass
class Beam:
    """One decoded hypothesis: the name, its concept codes (empty if not a KB name), and ``s_i``."""

    name: str
    codes: list[str]
    logprob: float


def copy_beams(beams: Sequence[Beam]) -> list[Beam]:
    """Copies of ``beams`` that share no state (their code lists are copied too)."""
    return [dataclasses.replace(b, codes=list(b.codes)) for b in beams]


class _StepCallback:
    """A ``StoppingCriteria`` that never stops: it reports each decoding step (progress bars)."""

    def __init__(self, on_step: Callable[[int, int], None], max_steps: int) -> None:
        self.on_step = on_step
        self.max_steps = max_steps
        self.step = 0

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.step += 1
        self.on_step(self.step, self.max_steps)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class BeamSearchDecoder:
    """Beam search of one model over one candidate trie, with the prompts of one encoder.

    ``constrained`` (default for :meth:`generate`), ``share_prompt_cache`` (causal models: compute
    the prompt's key/value states once per query, not once per beam) and
    ``share_prompt_across_beams`` (causal models with plain full-attention layers: keep those states
    once per query during beam search) are plain attributes; the last two never change the beams.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        encoder: PromptEncoder,
        trie: Any,
        scopes: ScopeResolver,
        *,
        max_target_length: int | None = None,
        constrained: bool = True,
        share_prompt_cache: bool = True,
        share_prompt_across_beams: bool = True,
        device: torch.device | None = None,
        prefill: PromptPrefill | None = None,
        search: str = "genbel",
        force_unique: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.trie = trie
        self.scopes = scopes
        self.device = device if device is not None else next(model.parameters()).device
        self.architecture = encoder.architecture
        #: tokens of the longest name target (constrained decoding never needs more new tokens)
        self.trie_depth = longest_target(trie)
        #: new tokens of an unconstrained generation
        self.max_target_length = max_target_length or self.trie_depth
        self.constrained = constrained
        self.share_prompt_cache = share_prompt_cache
        self.share_prompt_across_beams = share_prompt_across_beams
        self.prefill = prefill or PromptPrefill(model, encoder.pad_token_id, self.device)
        #: ``"genbel"``: :class:`~genbel.generation.beam_loop.BeamLoop` where it applies (constrained,
        #: decoder-only, plain full attention), else HF ``generate``; ``"hf"``: always HF ``generate``
        #: (the earlier path, kept to compare against). Both give the same beams and scores.
        self.search = search
        #: feed the tokens a trie prefix forces in one forward pass (genbel's loop only; same beams)
        self.force_unique = force_unique
        self._plain: bool | None = None  # the model's layers are all plain full attention (checked once)
        #: counts of the last :meth:`decode_with_loop` (forward passes, steps, positions, forced tokens)
        self.last_loop_stats: Any = None

    @property
    def kb(self) -> KnowledgeBase:
        return self.scopes.kb

    @property
    def text_to_code(self) -> dict[str, list[str]]:
        """KB name → concept codes (the names the trie decodes to)."""
        return self.trie.text_to_code

    def with_encoder(self, encoder: PromptEncoder) -> BeamSearchDecoder:
        """A decoder with ``encoder``'s prompts over the same model, trie, scopes and prefill (shared,
        not copied), with this decoder's settings."""
        return BeamSearchDecoder(
            self.model,
            self.tokenizer,
            encoder,
            self.trie,
            self.scopes,
            max_target_length=self.max_target_length,
            constrained=self.constrained,
            share_prompt_cache=self.share_prompt_cache,
            share_prompt_across_beams=self.share_prompt_across_beams,
            device=self.device,
            prefill=self.prefill,
            search=self.search,
            force_unique=self.force_unique,
        )

    # ------------------------------------------------------------------ one batch
    def generation_config(self, num_beams: int, max_new_tokens: int) -> Any:
        """The ``GenerationConfig`` of a ``num_beams`` beam search returning every beam with its score."""
        from transformers import GenerationConfig

        return GenerationConfig(
            num_beams=num_beams,
            num_return_sequences=num_beams,
            do_sample=False,
            length_penalty=1.0,
            early_stopping=False,  # HF's heuristic stop per query (True lost 9.4 R@1: docs/benchmarks.md)
            max_new_tokens=max_new_tokens,
            eos_token_id=self.encoder.eos_token_id,
            pad_token_id=self.encoder.pad_token_id,
            decoder_start_token_id=self.encoder.decoder_start_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )

    @torch.inference_mode()
    def generate_batch(
        self,
        batch: list[EncodedQuery],
        scopes: list[Scope],
        constrained: bool,
        num_beams: int,
        prefix: tuple[list[Any], dict[Any, Any]] | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[Beam]]:
        """Beams of one batch of encoded queries, best first; ``prefix = (keys, store)`` reuses stored
        prompt prefixes (:meth:`PromptPrefill.prompt_cache_with_prefixes
        <genbel.generation.cache.PromptPrefill.prompt_cache_with_prefixes>`); ``on_step(step,
        max_steps)`` is called after each decoding step (progress within a batch)."""
        inputs, prompt_len = model_inputs(batch, self.architecture, self.encoder.pad_token_id, self.device)
        kwargs: dict[str, Any] = {}
        decoding: AbstractContextManager = nullcontext()
        if self.architecture == "causal" and num_beams > 1 and prompt_len > 1 and self.share_prompt_cache:
            if prefix is not None and self.prefill.prefix_reuse_supported:
                past, inputs, prompt_len = self.prefill.prompt_cache_with_prefixes(batch, inputs, *prefix)
            else:
                past = self.prefill.prompt_cache(inputs)
            kwargs["cache"], decoding = beam_cache(
                self.model, past, num_beams, self.share_prompt_across_beams
            )
        if constrained:
            from transformers import LogitsProcessorList

            from genbel.trie import TrieLogitsProcessor

            kwargs["logits_processor"] = LogitsProcessorList(
                [
                    TrieLogitsProcessor(
                        self.trie.trie,
                        prompt_len,
                        num_beams=num_beams,
                        restrictions=[sc.restriction for sc in scopes],
                        eos_token_id=self.encoder.eos_token_id,
                        pad_token_id=self.encoder.pad_token_id,
                    )
                ]
            )
            max_new = self.trie_depth
        else:
            max_new = self.max_target_length
        if on_step is not None:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_StepCallback(on_step, max_new)])
        with decoding:
            out = self.model.generate(
                **inputs, generation_config=self.generation_config(num_beams, max_new), **kwargs
            )
        seqs = out.sequences[:, prompt_len:].tolist()
        scores = out.sequences_scores.tolist()
        results: list[list[Beam]] = [[] for _ in batch]
        for row, (tokens, s) in enumerate(zip(seqs, scores)):
            beam = self.to_beam(tokens, s, scopes[row // num_beams], constrained)
            if beam is not None:
                results[row // num_beams].append(beam)
        for r in results:
            r.sort(key=lambda b: -b.logprob)
        return results

    def to_beam(self, tokens: Sequence[int], score: float, scope: Scope, constrained: bool) -> Beam | None:
        """The :class:`Beam` of generated ``tokens`` scored ``score`` (None for a filler hypothesis, or a
        name that is not a KB name or has no code in ``scope``)."""
        if not math.isfinite(score) or score < INVALID_SCORE:
            return None
        tokens = list(tokens)
        eos = self.encoder.eos_token_id
        cut = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        target = tokens[:cut]
        if constrained:
            hit = self.trie.decode(target)
            if hit is None:
                return None
            name, codes = hit
        else:
            name = self.tokenizer.decode(target, skip_special_tokens=True).strip()
            codes = list(self.text_to_code.get(name, []))
        codes = self.scopes.keep_codes(codes, scope)
        if constrained and not codes:  # a name shared with a concept outside the scope
            return None
        return Beam(name, codes, float(score))

    # ------------------------------------------------------------------ queries
    def generate(
        self,
        queries: Sequence[MentionQuery],
        *,
        num_beams: int,
        batch_size: int,
        restrict_to_group: bool,
        constrained: bool | None = None,
        candidates: Sequence[Sequence[str] | None] | None = None,
        where: Sequence[str] | None = None,
        check_groups: bool = False,
        cache: dict[tuple, list[Beam]] | None = None,
        prefix_keys: Sequence[Any] | None = None,
        prefix_store: dict[Any, Any] | None = None,
    ) -> list[list[Beam]]:
        """Beams per query, best first (see :meth:`GenerativeLinker.generate
        <genbel.linkers.generative.GenerativeLinker.generate>` for the arguments).

        Queries with identical model inputs and scope are decoded once; ``cache`` also reuses the beams
        of earlier calls; ``prefix_keys`` + ``prefix_store`` reuse the key/value states of each key's
        previous prompt (causal models).
        """
        constrained = self.constrained if constrained is None else constrained
        if where is None:
            where = [
                f"document {q.doc_id}, entity {q.entity_id}" if q.doc_id is not None else f"query {i + 1}"
                for i, q in enumerate(queries)
            ]
        restrict = restrict_to_group and constrained
        scopes = self.scopes.resolve(queries, candidates, restrict, where, check_groups)
        encoded = [self.encoder.encode(q) for q in queries]
        results: list[list[Beam]] = [[] for _ in queries]
        # identical inputs with the same scope decode identically: run each once (repeated mentions)
        first: dict[tuple, int] = {}
        copies: list[tuple[int, int]] = []
        todo: list[int] = []
        for i in range(len(queries)):
            if not scopes[i].possible:
                continue
            key = decode_key(encoded[i], scopes[i])
            if cache is not None and key in cache:
                results[i] = copy_beams(cache[key])
            elif key in first:
                copies.append((i, first[key]))
            else:
                first[key] = i
                todo.append(i)
        self.decode_todo(encoded, scopes, todo, results, constrained=constrained, num_beams=num_beams,
                         batch_size=batch_size, prefix_keys=prefix_keys, prefix_store=prefix_store)
        for i, j in copies:
            results[i] = copy_beams(results[j])
        if cache is not None:
            for key, i in first.items():
                cache[key] = copy_beams(results[i])
        return results

    # ------------------------------------------------------------------ the two decoding paths
    def decode_todo(
        self,
        encoded: list[EncodedQuery],
        scopes: list[Scope],
        todo: list[int],
        results: list[list[Beam]],
        *,
        constrained: bool,
        num_beams: int,
        batch_size: int,
        prefix_keys: Sequence[Any] | None = None,
        prefix_store: dict[Any, Any] | None = None,
    ) -> None:
        """Decode the queries ``todo`` (indices into ``encoded``/``scopes``, each decoded once) into
        ``results``: with genbel's loop where :meth:`uses_loop`, else with Hugging Face ``generate``."""
        if self.uses_loop(constrained):
            self.decode_with_loop(encoded, scopes, todo, results, num_beams=num_beams, batch_size=batch_size,
                                  prefix_keys=prefix_keys, prefix_store=prefix_store)
        else:
            self.decode_with_generate(encoded, scopes, todo, results, constrained=constrained, num_beams=num_beams,
                                      batch_size=batch_size, prefix_keys=prefix_keys, prefix_store=prefix_store)

    def uses_loop(self, constrained: bool) -> bool:
        """True if :meth:`generate` decodes with genbel's loop (:mod:`genbel.generation.beam_loop`):
        ``search="genbel"``, constrained decoding, a decoder-only model whose layers are all plain
        full-attention layers (checked once on a one-token pass); otherwise Hugging Face ``generate``."""
        if self.search != "genbel" or not constrained or self.architecture != "causal":
            return False
        if self._plain is None:
            with torch.inference_mode():
                ids = torch.tensor([[self.encoder.pad_token_id]], device=self.device)
                self._plain = plain_cache(self.model(input_ids=ids, use_cache=True).cache)
            if not self._plain:
                logger.info("%s has layers other than plain full attention: decoding with HF generate",
                            type(self.model).__name__)
        return self._plain

    def decode_with_loop(
        self,
        encoded: list[EncodedQuery],
        scopes: list[Scope],
        todo: list[int],
        results: list[list[Beam]],
        *,
        num_beams: int,
        batch_size: int,
        prefix_keys: Sequence[Any] | None = None,
        prefix_store: dict[Any, Any] | None = None,
    ) -> None:
        """Decode the queries ``todo`` with :class:`~genbel.generation.beam_loop.BeamLoop` into
        ``results`` (finished queries leave the batch, waiting ones join, forced tokens are fed ahead)."""
        from genbel.trie import TrieConstraint

        constraint = TrieConstraint(
            self.trie.trie, 0, num_beams=num_beams, restrictions=[sc.restriction for sc in scopes],
            eos_token_id=self.encoder.eos_token_id, pad_token_id=self.encoder.pad_token_id,
        )
        loop = BeamLoop(self.model, constraint, num_beams=num_beams, max_new_tokens=self.trie_depth,
                        eos_token_id=self.encoder.eos_token_id, pad_token_id=self.encoder.pad_token_id,
                        device=self.device, force=self.force_unique)
        order = [i for idx in batches(encoded, todo, batch_size, self.architecture) for i in idx]
        prefill = None
        if prefix_store is not None and prefix_keys is not None and self.prefill.prefix_reuse_supported:
            def prefill(indices: list[int]) -> tuple[list, list, list]:
                batch = [encoded[i] for i in indices]
                inputs, _ = model_inputs(batch, "causal", self.encoder.pad_token_id, self.device)
                past, laid_out, _ = self.prefill.prompt_cache_with_prefixes(
                    batch, inputs, [prefix_keys[i] for i in indices], prefix_store
                )
                real = laid_out["attention_mask"][:, :-1].bool()
                keys = [[layer.keys[b][:, real[b]].transpose(0, 1) for b in range(len(indices))]
                        for layer in past.layers]
                values = [[layer.values[b][:, real[b]].transpose(0, 1) for b in range(len(indices))]
                          for layer in past.layers]
                return keys, values, []

        with tqdm(total=len(todo), desc="decoding", unit="mention", disable=None if todo else True,
                  leave=False) as bar:

            def on_pass(n: int) -> None:
                bar.set_postfix_str(f"pass {n}", refresh=False)
                bar.update(0)

            def on_done(i: int, hyps: list[tuple[tuple[int, ...], float]]) -> None:
                beams = [self.to_beam(toks, sc, scopes[i], True) for toks, sc in hyps]
                results[i] = sorted((b for b in beams if b is not None), key=lambda b: -b.logprob)
                bar.update(1)

            loop.run([(i, encoded[i].input_ids) for i in order], batch_size=batch_size, prefill=prefill,
                     refill_at=max(0, batch_size - max(1, batch_size // 4)), on_pass=None if bar.disable else on_pass,
                     on_done=on_done)
        self.last_loop_stats = loop.stats

    def decode_with_generate(
        self,
        encoded: list[EncodedQuery],
        scopes: list[Scope],
        todo: list[int],
        results: list[list[Beam]],
        *,
        constrained: bool,
        num_beams: int,
        batch_size: int,
        prefix_keys: Sequence[Any] | None = None,
        prefix_store: dict[Any, Any] | None = None,
    ) -> None:
        """Decode the queries ``todo`` with Hugging Face ``generate`` into ``results``, a batch at a
        time (a batch runs until its slowest query ends)."""
        order = batches(encoded, todo, batch_size, self.architecture)
        # on a terminal (tqdm's disable=None), a bar per decoded mention, moving within a batch too:
        # its postfix counts the batch's decoding steps
        with tqdm(total=len(todo), desc="decoding", unit="mention", disable=None if todo else True,
                  leave=False) as bar:

            def on_step(step: int, most: int) -> None:
                bar.set_postfix_str(f"batch {done_batches + 1}/{len(order)}, step {step}/{most}", refresh=False)
                bar.update(0)  # redraws at most every tqdm mininterval

            for done_batches, idx in enumerate(order):
                prefix = None
                if prefix_store is not None and prefix_keys is not None:
                    prefix = ([prefix_keys[i] for i in idx], prefix_store)
                beams = self.generate_batch(
                    [encoded[i] for i in idx], [scopes[i] for i in idx], constrained, num_beams, prefix=prefix,
                    on_step=None if bar.disable else on_step,
                )
                for i, b in zip(idx, beams):
                    results[i] = b
                bar.update(len(idx))
