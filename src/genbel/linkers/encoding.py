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
"""

from __future__ import annotations

from dataclasses import dataclass

from genbel.errors import ConfigError, Errors
from genbel.linkers.base import MentionQuery
from genbel.linkers.prompts import PromptFormat

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
        tokenizer,
        prompt_format: PromptFormat,
        architecture: str,
        *,
        max_source_length: int = 512,
        decoder_start_token_id: int | None = None,
    ) -> None:
        if architecture not in ARCHITECTURES:
            raise ConfigError(
                Errors.E021.format(field="architecture", reason=f"{architecture!r} (causal|seq2seq)")
            )
        if architecture == "seq2seq" and decoder_start_token_id is None:
            raise ConfigError(
                Errors.E021.format(
                    field="decoder_start_token_id", reason="a seq2seq model needs one (config)"
                )
            )
        self.tokenizer = tokenizer
        self.format = prompt_format
        self.architecture = architecture
        self.max_source_length = max_source_length
        self.decoder_start_token_id = decoder_start_token_id
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(Errors.E021.format(field="tokenizer", reason="it has no EOS token"))
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
