"""Token-level encoding of generative-linker inputs and targets (shared by inference and training).

The rule that keeps training, trie building and decoding consistent: the *prompt* and the
*target* are tokenized separately and their ids concatenated; the target is
:meth:`PromptFormat.target` (``" " + name``) tokenized without special tokens, followed by EOS.
The trie (:class:`genbel.trie.CandidateTrie`) holds exactly these target ids.

Decoder-only (``causal``) models
    ``input_ids = tok(prompt, add_special_tokens=True)`` (BOS when the tokenizer adds one) and the
    model continues with the target ids.

Encoder-decoder (``seq2seq``) models
    ``encoder ids = tok(source, add_special_tokens=True)``;
    ``decoder_input_ids = [decoder_start_token_id] + tok(prefix, add_special_tokens=False)``
    (the GenBioEL decoder prompt ``"mention is"``), and the decoder continues with the target ids.

A prompt longer than ``max_source_length`` keeps its end (the mention and the decoder prompt are at
the end of a causal prompt); the first special token, if any, is kept.

Document-level prompts (LongBEL; :class:`DocumentPromptEncoder`, used by
:class:`~genbel.linkers.document.DocumentLinker` and by memory training): a :class:`DocumentQuery`
carries the memory of earlier normalizations of its document, rendered as the format's memory block
before the context, and the context is cut by *tokens* to the prompt budget, symmetrically around the
mention (the side with less text gives its unused share to the other). When the memory block and the
marked mention alone exceed the budget the oldest memory entries are left out first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from genbel.data.queries import MentionQuery
from genbel.errors import ConfigError, Errors
from genbel.generation.prompts import PromptFormat

ARCHITECTURES = ("causal", "seq2seq")


@dataclass
class EncodedQuery:
    """Token ids of one query: the model input and (seq2seq only) the decoder prompt."""

    input_ids: list[int]
    decoder_ids: list[int] | None = None

    @property
    def prompt_ids(self) -> list[int]:
        """The ids the target continues: the decoder prompt (seq2seq) or the whole input (causal)."""
        return self.decoder_ids if self.decoder_ids is not None else self.input_ids


class PromptEncoder:
    """Turns :class:`MentionQuery` objects and concept names into token ids."""

    def __init__(
        self,
        tokenizer: Any,
        prompt_format: PromptFormat,
        architecture: str,
        *,
        max_source_length: int = 512,
        decoder_start_token_id: int | None = None,
    ) -> None:
        if architecture not in ARCHITECTURES:
            raise ConfigError(
                Errors.E022.format(value=architecture, field="architecture", known="causal, seq2seq")
            )
        if architecture == "seq2seq" and decoder_start_token_id is None:
            raise ConfigError(
                Errors.E258
            )
        self.tokenizer = tokenizer
        self.format = prompt_format
        self.architecture = architecture
        self.max_source_length = max_source_length
        self.decoder_start_token_id = decoder_start_token_id
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(Errors.E206)
        self.eos_token_id: int = int(eos)
        pad = tokenizer.pad_token_id
        self.pad_token_id: int = int(pad) if pad is not None else self.eos_token_id

    # ------------------------------------------------------------------ pieces
    def _ids(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _clip(self, ids: list[int]) -> list[int]:
        n = self.max_source_length
        if len(ids) <= n:
            return ids
        first = ids[0]
        if first in self.tokenizer.all_special_ids:
            return [first, *ids[len(ids) - n + 1 :]]
        return ids[len(ids) - n :]

    def encode(self, query: MentionQuery) -> EncodedQuery:
        """Prompt ids of one query (see the module docstring)."""
        if self.architecture == "causal":
            return EncodedQuery(self._clip(self._ids(self.format.prompt(query), True)))
        source = self._ids(self.format.source(query), True)
        if len(source) > self.max_source_length:  # keep the window around the mention, not the start
            source = source[: self.max_source_length]
        decoder = [int(self.decoder_start_token_id), *self._ids(self.format.prefix(query), False)]
        return EncodedQuery(source, decoder)

    def encode_target(self, name: str, eos: bool = True) -> list[int]:
        """Target ids of a concept name: ``tok(" " + name)`` without special tokens, then EOS."""
        ids = self._ids(PromptFormat.target(name), False)
        return [*ids, self.eos_token_id] if eos else ids


# ------------------------------------------------------------------------------------------ document level
@dataclass
class DocumentQuery(MentionQuery):
    """A :class:`MentionQuery` with the memory it is linked with: ``(mention text, concept name)`` pairs,
    oldest first (earlier mentions of the same document)."""

    memory: list[tuple[str, str]] = field(default_factory=list)


def with_memory(q: MentionQuery, memory: Sequence[tuple[str, str]]) -> DocumentQuery:
    """A copy of ``q`` carrying ``memory``."""
    return DocumentQuery(
        text=q.text, surface=q.surface, type=q.type, context=q.context, start=q.start, end=q.end,
        doc_id=q.doc_id, entity_id=q.entity_id, gold_ids=list(q.gold_ids), memory=list(memory),
    )


def distinct_memory(memory: Sequence[tuple[str, str]], size: int) -> list[tuple[str, str]]:
    """The entries a ``"block"`` :meth:`PromptFormat.memory_block` shows: the latest ``size`` distinct
    mentions, each with its latest name, ordered by their latest occurrence (oldest first); see
    :meth:`PromptFormat.memory_entries` for both styles."""
    return PromptFormat(memory_size=max(0, size)).memory_entries(memory)


class DocumentPromptEncoder(PromptEncoder):
    """A :class:`PromptEncoder` for document-level prompts: memory block + token-trimmed context.

    ``encode(q)`` reads ``q.memory`` (a :class:`DocumentQuery`; plain queries have no memory) and
    returns at most ``max_source_length`` prompt ids (encoder ids for seq2seq models). The context
    window is first the format's ``context_chars`` (``None`` = whole document), then cut at token
    boundaries as described in the module docstring. Without memory and with a context that fits,
    the ids equal those of the plain :class:`PromptEncoder`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the context is cut before rendering, so the rendering format keeps all of it (a mention-only
        # format stays one: "lines" memory then renders the bare "mention is" query line)
        whole = 0 if self.format.context_chars == 0 else None
        self._whole = PromptFormat.from_dict({**self.format.to_dict(), "context_chars": whole})

    def _render(
        self, q: MentionQuery, left: str, mention: str, right: str, memory: Sequence[tuple[str, str]]
    ) -> str:
        q2 = MentionQuery(
            text=q.text, surface=q.surface, type=q.type, context=left + mention + right, start=len(left),
            end=len(left) + len(mention),
        )
        if self.architecture == "causal":
            return self._whole.prompt(q2, memory)
        return self._whole.memory_block(memory) + self._whole.source(q2)

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        if not text:
            return []
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return [tuple(o) for o in enc["offset_mapping"]]
        # slow tokenizers: approximate tokens by whitespace-separated words
        out, pos = [], 0
        for w in text.split():
            s = text.index(w, pos)
            out.append((s, s + len(w)))
            pos = s + len(w)
        return out

    def fit_prompt(self, q: MentionQuery) -> tuple[str, int]:
        """The prompt text within the token budget and the number of memory entries it kept."""
        memory = self.format.memory_entries(getattr(q, "memory", None) or [])
        left, mention, right = self.format.context(q)
        # "lines" memory leaves out whole chunks of the oldest entries (PromptFormat.memory_entries)
        drop = max(1, self.format.memory_size // 2) if self.format.memory_style == "lines" else 1
        budget = self.max_source_length

        def n_tokens(text: str) -> int:
            return len(self._ids(text, True))

        # 1. the memory block + marked mention must fit: leave out the oldest memory entries first
        while memory and n_tokens(self._render(q, "", mention, "", memory)) > budget:
            memory = memory[drop:]
        full = self._render(q, left, mention, right, memory)
        if n_tokens(full) <= budget:
            return full, len(memory)
        room = budget - n_tokens(self._render(q, "", mention, "", memory))
        if room <= 0:
            return self._render(q, "", mention, "", memory), len(memory)
        # 2. share the room between the two sides, in tokens
        lo, ro = self._offsets(left), self._offsets(right)
        for _ in range(6):
            kl = min(len(lo), room // 2)
            kr = min(len(ro), room - kl)
            kl = min(len(lo), room - kr)
            l2 = left[lo[len(lo) - kl][0]:] if kl > 0 else ""
            r2 = right[: ro[kr - 1][1]] if kr > 0 else ""
            text = self._render(q, l2, mention, r2, memory)
            excess = n_tokens(text) - budget
            if excess <= 0:
                return text, len(memory)
            room -= max(1, excess)  # tokens merged differently at the cuts: shrink and retry
            if room <= 0:
                break
        return self._render(q, "", mention, "", memory), len(memory)

    def encode(self, query: MentionQuery) -> EncodedQuery:
        text, _ = self.fit_prompt(query)
        if self.architecture == "causal":
            return EncodedQuery(self._clip(self._ids(text, True)))
        source = self._ids(text, True)
        if len(source) > self.max_source_length:
            source = source[: self.max_source_length]
        decoder = [int(self.decoder_start_token_id), *self._ids(self.format.prefix(query), False)]
        return EncodedQuery(source, decoder)
