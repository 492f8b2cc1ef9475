"""Tiny tokenizers and random models shared by the trie, linker and training tests (built in-process).

Each test area keeps its own texts, KB and special tokens and calls these builders with them:

- :func:`bpe_tokenizer`: a byte-level BPE trained on a few texts, wrapped as a ``PreTrainedTokenizerFast``;
- :func:`tiny_llama`, :func:`tiny_bart`, :func:`tiny_t5`: random 1–2 layer models of width 32, seeded,
  in eval mode; keyword arguments override any config field;
- :func:`single_thread` / the ``one_thread`` fixture: tiny models run faster on one thread and do not
  fight other tests for cores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

__all__ = [
    "bpe_tokenizer",
    "one_thread",
    "single_thread",
    "tiny_bart",
    "tiny_llama",
    "tiny_t5",
    "token_ids",
]


def bpe_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int,
    special_tokens: list[str],
    unk_token: str | None = None,
    padding_side: str | None = None,
    **tokens: str,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE (no prefix space) trained on ``texts``; deterministic.

    ``special_tokens`` get the first ids in order; ``tokens`` names them for transformers
    (``pad_token="<pad>"``, ``eos_token=...``); ``unk_token`` is used by the BPE model as well.
    """
    tk = Tokenizer(models.BPE(unk_token=unk_token))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer)
    if unk_token is not None:
        tokens["unk_token"] = unk_token
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, **tokens)
    if padding_side is not None:
        fast.padding_side = padding_side
    return fast


def token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """``pad_token_id``, ``bos_token_id`` (the eos id when there is no bos token) and ``eos_token_id``."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return {
        "pad_token_id": tokenizer.pad_token_id, "bos_token_id": bos, "eos_token_id": tokenizer.eos_token_id
    }


def tiny_llama(vocab_size: int, *, seed: int = 0, **config: Any) -> LlamaForCausalLM:
    """A random 2-layer Llama (hidden 32, 4 heads, 2 kv heads); pad 0, bos 1, eos 2 unless overridden."""
    torch.manual_seed(seed)
    cfg: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    cfg.update(config)
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def tiny_bart(vocab_size: int, *, seed: int = 0, **config: Any) -> BartForConditionalGeneration:
    """A random 1+1-layer BART (d_model 32); pad 0, bos 1, eos 2, decoding starts at eos unless overridden."""
    torch.manual_seed(seed)
    cfg: dict[str, Any] = {
        "vocab_size": vocab_size,
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 256,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "forced_eos_token_id": None,
    }
    cfg.update(config)
    cfg.setdefault("decoder_start_token_id", cfg["eos_token_id"])
    return BartForConditionalGeneration(BartConfig(**cfg)).eval()


def tiny_t5(vocab_size: int, *, seed: int = 0, **config: Any) -> T5ForConditionalGeneration:
    """A random 1+1-layer T5 (d_model 32); pad 0 (also the decoder start) and eos 2 unless overridden."""
    torch.manual_seed(seed)
    cfg: dict[str, Any] = {
        "vocab_size": vocab_size,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 1,
        "num_decoder_layers": 1,
        "num_heads": 2,
        "pad_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 0,
    }
    cfg.update(config)
    return T5ForConditionalGeneration(T5Config(**cfg)).eval()


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch thread, then restore the previous count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread for the whole test module; import it into a test module to use it."""
    with single_thread():
        yield
