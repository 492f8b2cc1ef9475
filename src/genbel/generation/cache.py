"""Prompt key/value states for beam search: computed once per query, kept once per query.

Two jobs of one kind (the key/value states of the prompts a beam search continues):

* **prefill** (:class:`PromptPrefill`): the states of every prompt but its last token, computed once
  per query rather than once per beam; with prefix reuse (document-level linking, where the memory
  block is a growing prefix) each prompt reuses the states of the longest common token prefix with
  the previous prompt stored under the same key and computes only the rest;
* **sharing** (:class:`SharedPromptCache`, :func:`beam_cache`): during the beam search itself the
  prompt part is kept once per query, not once per beam.

Sharing
-------

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

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
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
def attention_swapped(model: Any, name: str, var: ContextVar, state: Any,
                      bypassed: Callable[[], list[int]]) -> Iterator[None]:
    """Within the block, ``model`` attends through the attention function registered as ``name``, which
    reads ``state`` from ``var``; after a block that ended normally, E257 names the layers ``bypassed()``
    finds (e.g. attention modules reading another config object: their outputs ignored ``state``)."""
    config = model.config
    previous = config._attn_implementation
    token = var.set(state)
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = previous
        var.reset(token)
    layers = bypassed()
    if layers:
        raise ConfigError(Errors.E257.format(model=type(model).__name__, layers=layers))


@contextmanager
def shared_prompt_decoding(model: Any, cache: SharedPromptCache) -> Iterator[None]:
    """Within the block, ``model`` attends through :func:`shared_prompt_attention` over ``cache``."""
    with attention_swapped(model, ATTENTION_NAME, _ACTIVE, cache,
                           lambda: [i for i, layer in enumerate(cache.layers) if layer.reads != layer.updates]):
        yield


def beam_cache(
    model: Any, past: Any, num_beams: int, share_across_beams: bool = True
) -> tuple[Any, AbstractContextManager]:
    """The per-query prompt cache ``past`` made ready for a ``num_beams`` beam search, and the
    context ``generate`` must run in.

    Plain full-attention models (with ``share_across_beams``) keep each prompt's states once, shared
    by its beams (:class:`SharedPromptCache`: a step's cost no longer grows with the prompt's length,
    same results); other caches (e.g. sliding-window layers) are repeated for each beam."""
    if share_across_beams and plain_cache(past):
        shared = SharedPromptCache([(layer.keys, layer.values) for layer in past.layers], num_beams)
        return shared, shared_prompt_decoding(model, shared)
    past.batch_repeat_interleave(num_beams)
    return past, nullcontext()


# ---------------------------------------------------------------------------------------------- prefill
def left_padded_layers(
    rows: Sequence[tuple[Any, int]], width: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the (keys, values) of a batch: row ``r`` = the first ``n_r`` positions of its own
    per-layer ``(keys, values)`` list (``kv_r``, ``None`` when ``n_r == 0``), left-padded with zeros to
    ``width`` (the padding is masked)."""
    template = next(kv for kv, n in rows if n)
    layers = []
    for li, (k0, _v0) in enumerate(template):
        ks, vs = [], []
        for kv, n in rows:
            if n:
                k, v = kv[li][0][:, :, :n], kv[li][1][:, :, :n]
            else:
                k = v = k0.new_zeros((1, k0.shape[1], 0, k0.shape[3]))
            ks.append(F.pad(k, (0, 0, width - n, 0)))
            vs.append(F.pad(v, (0, 0, width - n, 0)))
        layers.append((torch.cat(ks), torch.cat(vs)))
    return layers


class PromptPrefill:
    """Computes the key/value states of causal prompts (all but their last token) before beam search.

    ``prefix_reuse_supported`` starts True and turns False (for good) the first time the model's cache
    turns out not to be a plain per-layer key/value cache (e.g. sliding-window layers): prefix reuse
    then falls back to :meth:`prompt_cache`.
    """

    def __init__(self, model: Any, pad_token_id: int, device: torch.device) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.device = device
        self.prefix_reuse_supported: bool = True

    def prompt_cache(self, inputs: dict[str, torch.Tensor]) -> Any:
        """KV cache of every prompt but its last token, computed once per query.

        ``generate`` copies each prompt ``num_beams`` times before its first forward pass; feeding it
        this cache instead (shared by the beams, see :func:`beam_cache`) makes the prompt cost one
        forward per query, not one per beam (the prompt is most of the tokens a linker processes).
        The last prompt token is left for ``generate`` so that it computes the first next-token
        distribution itself.
        """
        out = self.model(
            input_ids=inputs["input_ids"][:, :-1],
            attention_mask=inputs["attention_mask"][:, :-1],
            position_ids=inputs["position_ids"][:, :-1],
            use_cache=True,
            logits_to_keep=1,
        )
        return out.cache

    def prompt_cache_with_prefixes(
        self,
        batch: Sequence[Any],
        inputs: dict[str, torch.Tensor],
        keys: Sequence[Any],
        store: dict[Any, Any],
    ) -> tuple[Any, dict[str, torch.Tensor], int]:
        """:meth:`prompt_cache`, but each row first reuses the key/value states stored under its key
        for the longest common token prefix, and only the rest is computed; each row then stores its
        own states under its key.

        ``batch`` holds the rows' :class:`~genbel.generation.encoding.EncodedQuery` objects and
        ``inputs`` their left-padded model inputs. Row ``i`` reuses ``p_i`` states and computes ``n_i``
        new tokens, in one forward pass for all rows whose ``n_i`` are of similar length
        (:meth:`prefill_rows`; a row that must recompute its whole prompt — its memory lost its oldest
        entry — is not allowed to pad every other row's few new tokens to its length). Returns the
        cache re-laid out compactly as ``[pad][prompt_i]`` (as wide as the longest prompt), the model
        inputs that match that layout (the prompt's last token after it) and their length. Models
        whose cache is not a plain per-layer key/value cache (e.g. sliding-window layers) fall back
        to :meth:`prompt_cache` (and :attr:`prefix_reuse_supported` becomes False).
        """
        bodies = [enc.input_ids[:-1] for enc in batch]
        reused: list[tuple[int, Any]] = []
        for body, key in zip(bodies, keys):
            p, entry = 0, store.get(key)
            if entry is not None:
                old_ids = entry[0]
                limit = min(len(old_ids), len(body))
                while p < limit and old_ids[p] == body[p]:
                    p += 1
            reused.append((p, entry[1] if p else None))
        # one pass per run of similar new-part lengths (at most twice the shortest + 8 tokens)
        new = [len(body) - p for body, (p, _) in zip(bodies, reused)]
        groups: list[list[int]] = []
        for r in sorted(range(len(bodies)), key=new.__getitem__):
            if groups and new[r] <= 2 * new[groups[-1][0]] + 8:
                groups[-1].append(r)
            else:
                groups.append([r])
        states: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for group in groups:
            kvs = self.prefill_rows([bodies[r] for r in group], [reused[r] for r in group])
            if kvs is None:
                store.clear()
                self.prefix_reuse_supported = False  # decided once per model, not once per batch
                return self.prompt_cache(inputs), inputs, inputs["input_ids"].shape[1]
            states.update(zip(group, kvs))
        rows = []
        for r, (body, key) in enumerate(zip(bodies, keys)):
            store[key] = (list(body), states[r])
            rows.append((states[r], len(body)))
        # beam search then runs on the compact layout [pad][prompt_i]: as wide as the longest prompt,
        # not longest reuse + longest new part (the attention over the prompt grows with the width).
        # Keys carry their positions (rotary embeddings), so moving them changes nothing but padding.
        width = max(len(body) for body in bodies)
        past = DynamicCache(ddp_cache_data=left_padded_layers(rows, width))
        mask = torch.tensor(
            [[0] * (width - len(body)) + [1] * len(body) for body in bodies],
            dtype=torch.long,
            device=self.device,
        )
        # the prompt as generate sees it: the cached layout (its ids are never recomputed) + last token
        pad = self.pad_token_id
        last = torch.tensor([[enc.input_ids[-1]] for enc in batch], dtype=torch.long, device=self.device)
        full_mask = torch.cat([mask, torch.ones_like(last)], dim=1)
        laid_out = {
            "input_ids": torch.cat([torch.full_like(mask, pad), last], dim=1),
            "attention_mask": full_mask,
            "position_ids": (full_mask.cumsum(-1) - 1).clamp(min=0),
        }
        return past, laid_out, width + 1

    def prefill_rows(
        self, bodies: list[list[int]], reused: list[tuple[int, Any]]
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]]] | None:
        """Per row, per layer, the (keys, values) of ``body`` (``[1, heads, len(body), d]``): the
        reused ``p`` states of ``reused`` followed by the rest, computed in one forward pass laid out
        as ``[pad][reused p_i][pad][new n_i]``; None if the model's cache is not plain."""
        big_p = max(p for p, _ in reused)
        big_n = max(len(body) - p for body, (p, _) in zip(bodies, reused))
        past = None
        if big_p:
            past = DynamicCache(ddp_cache_data=left_padded_layers([(kv, p) for p, kv in reused], big_p))
        pad = self.pad_token_id
        mask_rows, id_rows, pos_rows = [], [], []
        for body, (p, _) in zip(bodies, reused):
            n = len(body) - p
            mask_rows.append([0] * (big_p - p) + [1] * p + [0] * (big_n - n) + [1] * n)
            id_rows.append([pad] * (big_n - n) + body[p:])
            pos_rows.append([0] * (big_n - n) + list(range(p, len(body))))
        if big_n:
            out = self.model(
                input_ids=torch.tensor(id_rows, dtype=torch.long, device=self.device),
                attention_mask=torch.tensor(mask_rows, dtype=torch.long, device=self.device),
                position_ids=torch.tensor(pos_rows, dtype=torch.long, device=self.device),
                cache=past,
                use_cache=True,
                logits_to_keep=1,
            )
            past = out.cache
        if not plain_cache(past):
            return None
        total = big_p + big_n
        states = []
        for r, (body, (p, _)) in enumerate(zip(bodies, reused)):
            n = len(body) - p
            kv = []
            for layer in past.layers:
                k, v = layer.keys[r : r + 1], layer.values[r : r + 1]
                kv.append((
                    torch.cat([k[:, :, big_p - p : big_p], k[:, :, total - n :]], dim=2),
                    torch.cat([v[:, :, big_p - p : big_p], v[:, :, total - n :]], dim=2),
                ))
            states.append(kv)
        return states
