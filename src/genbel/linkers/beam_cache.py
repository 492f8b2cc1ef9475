"""Beam search that keeps each query's prompt key/value states once, not once per beam.

``generate`` with ``num_beams=k`` runs ``k`` rows per query, and the default key/value cache holds
the prompt's states in each of them: every step grows the whole cache by ``torch.cat`` and every
beam reordering copies it again, so a step costs more the longer the prompt (SmolLM2-135M on 2 CPU
threads, 100 rows: 352 → 629 ms from 16 to 140 prompt tokens; 322 → 408 ms with this cache;
``benchmarks/bench_beam_step.py``). Linking prompts are long where it matters most: document-level
prompts carry a memory block and a context window.

:class:`SharedPromptCache` keeps the prompt part of each layer once per query (``[B, kv_heads, P, d]``)
and only the generated part per beam (``[B·k, kv_heads, T, d]``); beam reordering touches the
generated part only (a beam never moves to another query). :func:`shared_prompt_attention` attends
over both parts with one softmax: the scores of the ``k`` beams' queries against their prompt are
one matrix product per query, so nothing of the prompt is copied per beam or per step.

The attention runs only inside :func:`shared_prompt_decoding`, which switches the model to it for
one ``generate`` call and back. It serves decoder-only models whose every layer is a plain
full-attention layer (Llama, Mistral, Qwen2, SmolLM2 …); callers check :func:`plain_cache` first and
keep the default cache otherwise (sliding-window layers, e.g. Gemma 3).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from genbel.errors import ConfigError, Errors

ATTENTION_NAME = "genbel_shared_prompt"

_ACTIVE: ContextVar[SharedPromptCache | None] = ContextVar("genbel_shared_prompt_cache", default=None)


class SharedPromptLayer(DynamicLayer):
    """One layer: the prompt's keys/values once per query, the generated ones once per beam."""

    def __init__(self, prompt_keys: torch.Tensor, prompt_values: torch.Tensor, num_beams: int) -> None:
        super().__init__()
        self.prompt_keys = prompt_keys
        self.prompt_values = prompt_values
        self.num_beams = num_beams
        b, heads, _, dim = prompt_keys.shape
        self.keys = prompt_keys.new_zeros((b * num_beams, heads, 0, dim))
        self.values = prompt_values.new_zeros((b * num_beams, heads, 0, prompt_values.shape[-1]))
        self.device = prompt_keys.device
        self.is_initialized = True
        #: forward passes that stored states here / that attended through the shared prompt (equal
        #: unless the model bypassed :func:`shared_prompt_attention`, checked after each decoding)
        self.updates = self.reads = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new (generated) states; returns the generated part only — the prompt part is
        read by :func:`shared_prompt_attention` from the layer itself."""
        self.updates += 1
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.prompt_keys.shape[-2] + self.keys.shape[-2]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        # beams only ever move within their own query, whose prompt part is shared: nothing to move there
        if self.keys.shape[-2]:
            idx = beam_idx.to(self.keys.device)
            self.keys = self.keys.index_select(0, idx)
            self.values = self.values.index_select(0, idx)

    def _unsupported(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a shared-prompt cache serves one beam search and is not resized")

    crop = batch_repeat_interleave = batch_select_indices = _unsupported


class SharedPromptCache(Cache):
    """The prompt states of ``B`` queries (per layer ``(keys, values)`` of shape ``[B, heads, P, d]``,
    left-padded rows, padding masked by the caller's attention mask) for a ``k``-beam search."""

    def __init__(self, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], num_beams: int) -> None:
        super().__init__(layers=[SharedPromptLayer(k, v, num_beams) for k, v in layers])
        self.num_beams = num_beams


def plain_cache(cache: Any) -> bool:
    """True if every layer of a computed cache is a plain full-attention :class:`DynamicLayer`."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def shared_prompt_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` (``[B·k, heads, q, d]``) over the layer's shared prompt states and the
    generated ``key``/``value`` (``[B·k, kv_heads, T, d]``), with one softmax over both.

    ``attention_mask`` is the boolean ``[B·k, 1, q, P + T]`` mask of ``sdpa`` (``None``: attend to
    every position, causally within ``q``). Returns ``[B·k, q, heads, d]`` as the ``sdpa`` attention
    does."""
    cache = _ACTIVE.get()
    if cache is None:
        raise RuntimeError(f"{ATTENTION_NAME} attention used outside shared_prompt_decoding")
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise NotImplementedError(f"{ATTENTION_NAME} attention supports plain full attention only")
    layer = cache.layers[module.layer_idx]
    layer.reads += 1
    pk, pv, k = layer.prompt_keys, layer.prompt_values, layer.num_beams
    rows, heads, q, dim = query.shape
    b, kv_heads, p, _ = pk.shape
    g = heads // kv_heads  # query heads per key/value head (grouped-query attention)
    t = key.shape[-2]
    scale = dim**-0.5 if scaling is None else scaling

    # beams x grouped heads of one query side by side, against that query's prompt: [b, kv, k·g·q, p]
    grouped = query.view(b, k, kv_heads, g, q, dim).permute(0, 2, 1, 3, 4, 5).reshape(b, kv_heads, -1, dim)
    s_prompt = torch.matmul(grouped, pk.transpose(-1, -2))
    s_prompt = s_prompt.view(b, kv_heads, k, g, q, p).permute(0, 2, 1, 3, 4, 5).reshape(rows, heads, q, p)
    s_new = torch.matmul(query.view(rows, kv_heads, g * q, dim), key.transpose(-1, -2)).view(rows, heads, q, t)
    scores = torch.cat([s_prompt, s_new], dim=-1).float() * scale
    if attention_mask is None:
        attention_mask = torch.ones(q, p + t, dtype=torch.bool, device=query.device).tril(p + t - q)
    elif attention_mask.dtype != torch.bool:
        raise TypeError(f"{ATTENTION_NAME} attention expects a boolean mask, got {attention_mask.dtype}")
    scores = scores.masked_fill(~attention_mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(query.dtype)
    p_prompt, p_new = probs[..., :p], probs[..., p:]

    p_prompt = p_prompt.reshape(b, k, kv_heads, g, q, p).permute(0, 2, 1, 3, 4, 5).reshape(b, kv_heads, -1, p)
    out = torch.matmul(p_prompt, pv)  # [b, kv, k·g·q, d]
    out = out.view(b, kv_heads, k, g, q, dim).permute(0, 2, 1, 3, 4, 5).reshape(rows, heads, q, dim)
    out = out + torch.matmul(p_new.reshape(rows, kv_heads, g * q, t), value).view(rows, heads, q, dim)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, shared_prompt_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


@contextmanager
def shared_prompt_decoding(model: Any, cache: SharedPromptCache) -> Iterator[None]:
    """Within the block, ``model`` attends through :func:`shared_prompt_attention` over ``cache``."""
    config = model.config
    previous = config._attn_implementation
    token = _ACTIVE.set(cache)
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        _ACTIVE.reset(token)
    bypassed = [i for i, layer in enumerate(cache.layers) if layer.reads != layer.updates]
    if bypassed:  # e.g. attention modules reading another config object: their outputs ignored the prompt
        raise ConfigError(Errors.E257.format(model=type(model).__name__, layers=bypassed))
