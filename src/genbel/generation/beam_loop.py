"""genbel's own beam search loop: finished queries leave the batch, waiting ones take their place, and
tokens the trie leaves no choice about are fed in one forward pass.

:class:`BeamLoop` runs trie-constrained beam search for a stream of queries over a decoder-only model
with plain full-attention layers (Llama, Mistral, Qwen2, SmolLM2 …), with the **same beams and scores
as Hugging Face** ``generate(num_beams=k, length_penalty=1, early_stopping=False)`` with the
:class:`~genbel.trie.TrieLogitsProcessor` (the path :class:`~genbel.generation.beam_search.BeamSearchDecoder`
used before, kept as ``search="hf"``), up to float rounding. What differs is the cost:

* **Retiring and refilling.** Each query runs its own beam search; once it is done its rows leave the
  batch and a waiting query (its prompt) joins the next forward pass, so a batch no longer runs until
  its slowest query ends.
* **Forced tokens.** When the trie (with the query's restriction) allows a beam exactly one next token
  — a prefix that only one name continues — the beam's next tokens are determined until the next
  branching node or the name's end; they are fed to the model in the same forward pass as the token
  before them, and their log-probabilities (computed there, from the full softmax) are added to the
  beam's score step by step as usual. A beam that drops out before using them wasted those positions.
* **Packed forward passes.** One forward pass computes exactly the tokens that are needed (new
  prompts, each beam's chosen token and its forced continuation), packed into one sequence; attention
  reads each row's own history — its prompt, then its generated tokens — from a pool of key/value
  *slots* (:class:`SlotPool`) with :func:`slot_attention`, so beams share their prompt and common
  prefixes, and a beam reordering moves slot numbers, not tensors.

Per query, one step is Hugging Face's beam-search step (``transformers`` ``GenerationMixin._beam_search``)
on that query alone: with ``k`` beams and ``s`` new tokens generated so far, the running beams' constrained
log-probabilities plus their scores give candidates; the best ``2k`` are kept; a candidate *ends* if its
token is EOS or it reaches the length limit (``s + 1`` = the trie's longest target). The next running
beams are the best ``k`` candidates that did not end; an ended candidate among the best ``k`` joins the
finished hypotheses with score ``sum / (s + 1)`` (``length_penalty=1``), which keep the best ``k``.
**Stopping rule** (``early_stopping=False``): after the step, with ``s + 1`` tokens generated, the query
is done when it has ``k`` finished hypotheses and the best running beam's score divided by ``s + 1`` (its
mean log-probability if it ended now, without an EOS) is not above the worst finished score; it is also
done when no running beam is left (every candidate ended, or the length limit), which Hugging Face
reaches later with filler beams whose scores are ``-1e9`` and that are dropped from the results anyway.
Hugging Face's filler beams (the ``k - 1`` copies of the first beam that start at ``-1e9``, a candidate that
ended but fills a running slot) are not computed here: they can neither displace nor add a real
hypothesis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from genbel.generation.cache import attention_swapped

logger = logging.getLogger(__name__)

ATTENTION_NAME = "genbel_slots"
#: a running beam scored at or below this is one of Hugging Face's filler beams (-1e9 offsets)
FILLER = -1.0e8
_NEG = np.float32(-1.0e9)
#: forced tokens fed ahead of a beam at most (a longer run continues at the next forward pass)
MAX_FORCED = 64

_ACTIVE: ContextVar[_Pass | None] = ContextVar("genbel_slot_pass", default=None)


# ------------------------------------------------------------------------------------------ the slot pool
class SlotPool:
    """Key/value states of single tokens, per layer ``[capacity, kv_heads, head_dim]``; a sequence is
    a list of slot numbers. Grows by doubling; :meth:`compact` keeps only the slots still used."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                 capacity: int = 1024) -> None:
        shape = (capacity, kv_heads, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.size = 1  # slot 0 stays zero: the padding slot of gathers

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[0]

    def allocate(self, n: int, live: Callable[[], np.ndarray], remap: Callable[[np.ndarray], None]) -> np.ndarray:
        """``n`` new slot numbers; when full, first compacts to the ``live()`` slots (``remap(old → new)``
        then renumbers every holder), else doubles."""
        if self.size + n > self.capacity:
            used = np.unique(live())
            used = used[used > 0]
            if len(used) + 1 + n <= self.capacity // 2:
                mapping = np.zeros(self.capacity, dtype=np.int64)
                mapping[used] = np.arange(1, len(used) + 1)
                idx = torch.from_numpy(used).to(self.keys[0].device)
                for store in (self.keys, self.values):
                    for li, t in enumerate(store):
                        moved = t.index_select(0, idx)
                        t[1 : len(used) + 1] = moved
                self.size = len(used) + 1
                remap(mapping)
            else:
                cap = self.capacity
                while self.size + n > cap:
                    cap *= 2
                for store in (self.keys, self.values):
                    for li, t in enumerate(store):
                        grown = t.new_zeros((cap, *t.shape[1:]))
                        grown[: self.size] = t[: self.size]
                        store[li] = grown
        out = np.arange(self.size, self.size + n, dtype=np.int64)
        self.size += n
        return out


# ------------------------------------------------------------------------------------------ one forward pass
@dataclass
class _Pass:
    """What one packed forward pass attends over: ``S`` rows of at most ``W`` new tokens (``M`` in all),
    belonging to ``U`` queries (``nb`` beam rows each at most); a row attends to its query's prompt
    (read once per query), its own generated tokens, and causally to its new tokens."""

    pool: SlotPool
    prompts: torch.Tensor  # [U, P] slot numbers of each query's prompt (0 = padding)
    grid: torch.Tensor  # [S] row s's place u·nb + j in the [U·nb] grid of the queries' beam rows
    generated: torch.Tensor  # [S, G] slot numbers of each row's generated tokens so far (0 = padding)
    unpack: torch.Tensor  # [S·W] packed index of row s, column w (0 for padding columns)
    pack: torch.Tensor  # [M] row-major index s·W + w of each packed token
    new_slots: torch.Tensor  # [M] slots that receive the new tokens' states
    mask: torch.Tensor  # [S, 1, W, P + G + W] additive: 0 = attend, -inf = not
    beams: int
    reads: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)


class _SlotLayer(DynamicLayer):
    """Stores a pass's new key/value states in the pool; attention reads them back by slot."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        p = _ACTIVE.get()
        if p is None:
            raise RuntimeError(f"{ATTENTION_NAME} cache used outside a packed forward pass")
        p.updates[self.index] += 1
        p.pool.keys[self.index][p.new_slots] = key_states[0].transpose(0, 1).to(p.pool.keys[self.index].dtype)
        p.pool.values[self.index][p.new_slots] = value_states[0].transpose(0, 1).to(p.pool.values[self.index].dtype)
        return key_states, value_states

    def get_seq_length(self) -> int:
        return 0


class _SlotCache(Cache):
    def __init__(self, layers: int) -> None:
        super().__init__(layers=[_SlotLayer(i) for i in range(layers)])


def slot_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of a packed pass (``query`` ``[1, heads, M, d]``, ``key``/``value`` the new tokens'
    ``[1, kv_heads, M, d]``) with one softmax over three parts: the row's query's prompt (gathered from
    the slot pool once per query and read by all its beam rows in one matrix product), the row's
    generated tokens (gathered per row) and the new tokens (causal). Returns ``[1, M, heads, d]`` as the
    ``sdpa`` attention does."""
    p = _ACTIVE.get()
    if p is None:
        raise RuntimeError(f"{ATTENTION_NAME} attention used outside a packed forward pass")
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise NotImplementedError(f"{ATTENTION_NAME} attention supports plain full attention only")
    li = module.layer_idx
    p.reads[li] += 1
    _, heads, _m, dim = query.shape
    kv = key.shape[1]
    g = heads // kv  # query heads per key/value head (grouped-query attention)
    s, gen_len = p.generated.shape
    u, plen = p.prompts.shape
    w = p.unpack.shape[0] // s
    nb = p.beams
    scale = dim**-0.5 if scaling is None else scaling
    keys, values = p.pool.keys[li], p.pool.values[li]

    def rows(x: torch.Tensor, h: int) -> torch.Tensor:  # [1, h, M, d] -> [S, h, W, d]
        return x[0].transpose(0, 1).index_select(0, p.unpack).view(s, w, h, dim).transpose(1, 2)

    q = rows(query, heads)  # [S, heads, W, d]
    # prompt part: the beam rows of a query side by side against its prompt, [U, kv, nb·g·W, P]
    pk = keys.index_select(0, p.prompts.reshape(-1)).view(u, plen, kv, dim).transpose(1, 2).to(query.dtype)
    pv = values.index_select(0, p.prompts.reshape(-1)).view(u, plen, kv, dim).transpose(1, 2).to(query.dtype)
    grid = q.new_zeros((u * nb, heads, w, dim))
    grid[p.grid] = q
    grouped = grid.view(u, nb, kv, g, w, dim).permute(0, 2, 1, 3, 4, 5).reshape(u, kv, nb * g * w, dim)
    s_prompt = torch.matmul(grouped, pk.transpose(-1, -2))
    s_prompt = s_prompt.view(u, kv, nb, g, w, plen).permute(0, 2, 1, 3, 4, 5).reshape(u * nb, heads, w, plen)
    s_prompt = s_prompt[p.grid]  # [S, heads, W, P]
    # generated and new part, per row: [S, kv, G + W, d]
    flat = p.generated.reshape(-1)
    gk = keys.index_select(0, flat).view(s, gen_len, kv, dim).transpose(1, 2).to(key.dtype)
    gv = values.index_select(0, flat).view(s, gen_len, kv, dim).transpose(1, 2).to(value.dtype)
    k = torch.cat([gk, rows(key, kv)], dim=2)
    v = torch.cat([gv, rows(value, kv)], dim=2)
    s_own = torch.matmul(q.reshape(s, kv, g * w, dim), k.transpose(-1, -2)).view(s, heads, w, gen_len + w)
    scores = torch.cat([s_prompt, s_own], dim=-1).float() * scale + p.mask
    probs = torch.softmax(scores, dim=-1).to(query.dtype)
    p_prompt, p_own = probs[..., :plen], probs[..., plen:]
    pgrid = probs.new_zeros((u * nb, heads, w, plen))
    pgrid[p.grid] = p_prompt
    pgrid = pgrid.view(u, nb, kv, g, w, plen).permute(0, 2, 1, 3, 4, 5).reshape(u, kv, nb * g * w, plen)
    out = torch.matmul(pgrid, pv).view(u, kv, nb, g, w, dim).permute(0, 2, 1, 3, 4, 5).reshape(u * nb, heads, w, dim)
    out = out[p.grid] + torch.matmul(p_own.reshape(s, kv, g * w, gen_len + w), v).view(s, heads, w, dim)
    out = out.transpose(1, 2).reshape(s * w, heads, dim).index_select(0, p.pack)
    return out.unsqueeze(0), None


AttentionInterface.register(ATTENTION_NAME, slot_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


def _packed(model: Any, p: _Pass) -> AbstractContextManager[None]:
    """Within the block, ``model`` attends through :func:`slot_attention` for the pass ``p``; E257 if an
    attention module ignored it (its outputs would be wrong)."""
    return attention_swapped(model, ATTENTION_NAME, _ACTIVE, p,
                             lambda: [i for i, (r, u) in enumerate(zip(p.reads, p.updates)) if r != u or r != 1])


# ------------------------------------------------------------------------------------------ beam state
@dataclass
class _Row:
    """A running beam: its generated tokens, score (float32 sum of log-probabilities), trie node, the
    slots of its fed tokens (the prompt's last token, then generated ones, then forced ones fed
    ahead) and the constrained next-token distributions already computed ahead of it."""

    tokens: tuple[int, ...]
    score: np.float32
    node: int
    slots: tuple[int, ...]
    ahead: tuple[tuple[np.ndarray, np.ndarray], ...] = ()


@dataclass
class _Query:
    index: int  # position in the caller's list (its restriction)
    prompt_ids: list[int]
    prompt_slots: np.ndarray  # all but the last prompt token (filled by the prefill)
    rows: list[_Row | None]
    finished: list[tuple[np.float32, tuple[int, ...] | None, bool]]
    generated: int = 0  # tokens generated so far by the running beams (HF's cur_len - prompt length)
    prefilled: bool = False


@dataclass
class LoopStats:
    """Counts of one :meth:`BeamLoop.run`: forward passes, query steps, positions computed, tokens fed
    ahead (forced) and those of them used."""

    forwards: int = 0
    steps: int = 0  # query-steps (one query, one beam-search step)
    passes_per_query: int = 0  # sum over queries of the forward passes each waited for
    positions: int = 0
    forced: int = 0
    forced_used: int = 0


class BeamLoop:
    """Beam search over one model and one :class:`~genbel.trie.TrieConstraint`-style trie bridge.

    ``constraint`` (a :class:`~genbel.trie.TrieConstraint`) gives ``allowed_array(query_index, node)``
    and ``advance(node, token)``;
    ``max_new_tokens`` is the trie's longest target (EOS included); ``eos``/``pad`` the ids."""

    def __init__(self, model: Any, constraint: Any, *, num_beams: int, max_new_tokens: int, eos_token_id: int,
                 pad_token_id: int, device: torch.device, force: bool = True) -> None:
        self.model = model
        self.constraint = constraint
        self.k = int(num_beams)
        self.max_new = int(max_new_tokens)
        self.eos = int(eos_token_id)
        self.pad = int(pad_token_id)
        self.device = device
        self.force = force
        cfg = model.config
        self.layers = cfg.num_hidden_layers
        heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        self.stats = LoopStats()

    # ---------------------------------------------------------------- the trie
    def _forced_run(self, qi: int, node: int) -> list[int]:
        """Tokens the trie forces from ``node``: while exactly one token (not EOS) is allowed."""
        run: list[int] = []
        if not self.force:
            return run
        while node >= 0 and len(run) < MAX_FORCED:
            allowed = self.constraint.allowed_array(qi, node)
            if len(allowed) != 1 or int(allowed[0]) == self.eos:
                break
            t = int(allowed[0])
            run.append(t)
            node = self.constraint.advance(node, t)
        return run

    # ---------------------------------------------------------------- main loop
    @torch.inference_mode()
    def run(
        self,
        queries: Sequence[tuple[int, list[int]]],
        *,
        batch_size: int,
        prefill: Callable[[list[int]], tuple[list[torch.Tensor], list[torch.Tensor], list[np.ndarray]]] | None = None,
        refill_at: int | None = None,
        on_pass: Callable[[int], None] | None = None,
        on_done: Callable[[int, list[tuple[tuple[int, ...], float]]], None] | None = None,
    ) -> dict[int, list[tuple[tuple[int, ...], float]]]:
        """Finished hypotheses ``(target tokens, s_i)`` per query index, best first.

        ``queries`` are ``(index, prompt token ids)`` in the order they join; at most ``batch_size``
        run at once. Without ``prefill``, a joining query's prompt is computed in the next forward pass
        with the others' tokens; ``prefill(indices)`` instead returns, for those queries, per layer the
        keys and values of every prompt token but the last (``[n_i, kv_heads, d]`` per query, layer
        lists of query lists flattened as ``keys[layer][query]``) — document-level prompts that reuse a
        stored prefix — and joins happen when ``refill_at`` or fewer queries run."""
        waiting = list(queries)
        waiting.reverse()
        active: list[_Query] = []
        results: dict[int, list[tuple[tuple[int, ...], float]]] = {}
        self.pool = SlotPool(self.layers, self.kv_heads, self.head_dim, self._dtype(), self.device)
        refill_at = batch_size - 1 if prefill is None or refill_at is None else refill_at
        self._active_ref: list[_Query] = active
        while waiting or active:
            if waiting and (len(active) <= refill_at or not active):
                joining = []
                while waiting and len(active) + len(joining) < batch_size:
                    qi, ids = waiting.pop()
                    joining.append(_Query(qi, list(ids), np.zeros(0, dtype=np.int64),
                                          [None] * self.k, [(_NEG, None, False)] * self.k))
                if prefill is not None:
                    self._prefill(joining, prefill)
                for q in joining:
                    q.rows[0] = _Row((), np.float32(0.0), 0, ())  # the trie's root
                active.extend(joining)
            self._forward(active)
            self.stats.forwards += 1
            if on_pass is not None:
                on_pass(self.stats.forwards)
            still: list[_Query] = []
            for q in active:
                self.stats.passes_per_query += 1
                done = self._advance(q)
                if done:
                    res = [(toks, float(sc)) for sc, toks, fin in q.finished if fin and toks is not None]
                    results[q.index] = res
                    if on_done is not None:
                        on_done(q.index, res)
                else:
                    still.append(q)
            active = still
        return results

    def _dtype(self) -> torch.dtype:
        for p in self.model.parameters():
            if p.dtype.is_floating_point:
                return p.dtype
        return torch.float32

    # ---------------------------------------------------------------- prefill (prefix reuse)
    def _prefill(self, joining: list[_Query], prefill: Callable) -> None:
        keys, values, _ = prefill([q.index for q in joining])
        counts = [int(keys[0][j].shape[0]) for j in range(len(joining))]
        slots = self.pool.allocate(sum(counts), lambda: self._live(joining), lambda m: self._remap(m, joining))
        idx = torch.from_numpy(slots).to(self.device)
        for li in range(self.layers):
            self.pool.keys[li][idx] = torch.cat([k for k in keys[li]]).to(self.pool.keys[li].dtype)
            self.pool.values[li][idx] = torch.cat([v for v in values[li]]).to(self.pool.values[li].dtype)
        start = 0
        for q, n in zip(joining, counts):
            q.prompt_slots = slots[start : start + n]
            q.prefilled = True
            start += n

    # ---------------------------------------------------------------- slots in use
    def _live(self, extra: Sequence[_Query] = ()) -> np.ndarray:
        parts = [np.zeros(1, dtype=np.int64)]
        for q in [*self._active_ref, *extra]:
            parts.append(q.prompt_slots)
            for r in q.rows:
                if r is not None and r.slots:
                    parts.append(np.asarray(r.slots, dtype=np.int64))
        return np.concatenate(parts)

    def _remap(self, mapping: np.ndarray, extra: Sequence[_Query] = ()) -> None:
        for q in [*self._active_ref, *extra]:
            q.prompt_slots = mapping[q.prompt_slots]
            for j, r in enumerate(q.rows):
                if r is not None and r.slots:
                    r.slots = tuple(mapping[np.asarray(r.slots, dtype=np.int64)].tolist())

    # ---------------------------------------------------------------- one forward pass
    def _forward(self, active: list[_Query]) -> None:
        """Compute the next-token distributions every running beam lacks (and the prompts of new
        queries), in one packed forward pass."""
        self._active_ref = active
        # what each row feeds: (query, beam row j, tokens, first position, prompt tokens among them)
        feeds: list[tuple[_Query, int, list[int], int, int]] = []
        for q in active:
            prompt_len = len(q.prompt_ids)
            if not q.prefilled:  # the whole prompt, then the root's forced run
                run = self._forced_run(q.index, q.rows[0].node)
                body = q.prompt_ids[:-1]
                feeds.append((q, 0, [*body, q.prompt_ids[-1], *run], 0, len(body)))
                continue
            runs = {j: self._forced_run(q.index, r.node) for j, r in enumerate(q.rows)
                    if r is not None and not r.ahead}
            # the query can step without a pass while every beam has a distribution: at most `reach`
            # steps; a forced token fed beyond that would save no pass (the beam is fed again at the pass
            # the query waits for anyway), so it is left for then, when the beam may have dropped out
            reach = min([1 + len(run) for run in runs.values()]
                        + [len(r.ahead) for r in q.rows if r is not None and r.ahead])
            for j, run in runs.items():
                r = q.rows[j]
                # the row's last token (the prompt's last one for a fresh query) and its forced run
                last = r.tokens[-1] if r.tokens else q.prompt_ids[-1]
                start = prompt_len - 1 + len(r.slots)
                feeds.append((q, j, [last, *run[: reach - 1]], start, 0))
        if not feeds:
            return
        n_tokens = [len(f[2]) for f in feeds]
        m = sum(n_tokens)
        s, w = len(feeds), max(n_tokens)
        new_slots = self.pool.allocate(m, self._live, self._remap)
        # slot numbers are read after allocating (a compaction renumbers them)
        queries: dict[int, int] = {}
        for q, *_ in feeds:
            queries.setdefault(id(q), len(queries))
        by_id = {id(q): q for q, *_ in feeds}
        plen = max(1, max(len(by_id[i].prompt_slots) for i in queries))
        gen_rows = [np.asarray(q.rows[j].slots if q.prefilled else (), dtype=np.int64) for q, j, *_ in feeds]
        gen_len = max(1, max(len(x) for x in gen_rows))
        prompts = np.zeros((len(queries), plen), dtype=np.int64)
        prompt_len = np.zeros(len(queries), dtype=np.int64)
        for qid, ui in queries.items():
            slots = by_id[qid].prompt_slots
            prompts[ui, : len(slots)] = slots
            prompt_len[ui] = len(slots)
        generated = np.zeros((s, gen_len), dtype=np.int64)
        own_len = np.zeros(s, dtype=np.int64)
        row_query = np.empty(s, dtype=np.int64)
        grid = np.empty(s, dtype=np.int64)
        ids = np.empty(m, dtype=np.int64)
        pos = np.empty(m, dtype=np.int64)
        unpack = np.zeros(s * w, dtype=np.int64)
        pack = np.empty(m, dtype=np.int64)
        real = np.zeros((s, w), dtype=bool)
        keep: list[int] = []  # packed positions whose next-token distribution is needed
        c = 0
        for i, ((q, j, toks, start, skip), gen) in enumerate(zip(feeds, gen_rows)):
            n = len(toks)
            ui = queries[id(q)]
            row_query[i] = ui
            grid[i] = ui * self.k + j
            generated[i, : len(gen)] = gen
            own_len[i] = len(gen)
            ids[c : c + n] = toks
            pos[c : c + n] = np.arange(start, start + n)
            cols = np.arange(w - n, w)  # a row's tokens end at column W (padding on the left)
            pack[c : c + n] = i * w + cols
            unpack[i * w + cols] = np.arange(c, c + n)
            real[i, w - n :] = True
            keep.extend(range(c + skip, c + n))
            c += n
        dev = self.device
        col = torch.arange(w, device=dev)
        real_t = torch.from_numpy(real).to(dev)
        new_part = (col[None, :, None] >= col[None, None, :]) & real_t[:, None, :]  # [S, W(query), W(key)]
        new_part = new_part | torch.eye(w, dtype=torch.bool, device=dev)[None]  # padding attends to itself
        rq = torch.from_numpy(row_query).to(dev)
        prompt_part = torch.arange(plen, device=dev)[None, :] < torch.from_numpy(prompt_len).to(dev)[rq][:, None]
        own_part = torch.arange(gen_len, device=dev)[None, :] < torch.from_numpy(own_len).to(dev)[:, None]
        allowed = torch.cat([prompt_part[:, None, :].expand(s, w, plen), own_part[:, None, :].expand(s, w, gen_len),
                             new_part], dim=2)[:, None]
        # an additive mask, made once for every layer
        mask = torch.zeros(allowed.shape, dtype=torch.float32, device=dev).masked_fill_(~allowed, float("-inf"))
        p = _Pass(self.pool, torch.from_numpy(prompts).to(dev), torch.from_numpy(grid).to(dev),
                  torch.from_numpy(generated).to(dev), torch.from_numpy(unpack).to(dev),
                  torch.from_numpy(pack).to(dev), torch.from_numpy(new_slots).to(dev), mask, self.k,
                  [0] * self.layers, [0] * self.layers)
        keep_t = torch.tensor(keep, dtype=torch.long, device=dev)
        with _packed(self.model, p):
            out = self.model(
                input_ids=torch.from_numpy(ids).to(dev)[None],
                position_ids=torch.from_numpy(pos).to(dev)[None],
                attention_mask=mask,
                cache=_SlotCache(self.layers),
                use_cache=True,
                logits_to_keep=keep_t,
            )
        self.stats.positions += m
        logp = F.log_softmax(out.logits[0].to(dtype=torch.float32), dim=-1)
        # hand each row its distributions: one per fed token from the row's last one on
        c = k = 0
        for (q, j, toks, _start, skip), n in zip(feeds, n_tokens):
            slots = tuple(new_slots[c : c + n].tolist())
            used = n - skip
            r = q.rows[j]
            if not q.prefilled:  # prompt slots = all but the last prompt token
                q.prompt_slots = new_slots[c : c + skip]
                q.prefilled = True
                slots = slots[skip:]
            run = toks[skip + 1 :]
            self.stats.forced += len(run)
            node, ahead = r.node, []
            for step in range(used):
                allowed = self.constraint.allowed_array(q.index, node)
                ahead.append(self._candidates(logp[k + step], allowed))
                if step < len(run):
                    node = self.constraint.advance(node, run[step])
            r.slots = r.slots + slots
            r.ahead = tuple(ahead)
            c += n
            k += used

    def _candidates(self, logp: torch.Tensor, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The best ``2k`` allowed tokens and their log-probabilities (ascending token order among
        equals), as numpy arrays."""
        if len(allowed) == 1:
            return allowed, logp[int(allowed[0])].reshape(1).numpy().astype(np.float32)
        vals = logp[torch.from_numpy(allowed)]
        top = 2 * self.k
        if len(allowed) > top:
            v, i = torch.topk(vals, top)
            return allowed[i.numpy()], v.numpy().astype(np.float32)
        return allowed, vals.numpy().astype(np.float32)

    # ---------------------------------------------------------------- beam-search steps of one query
    def _advance(self, q: _Query) -> bool:
        """Beam-search steps of ``q`` while every running beam has its distribution; True when done."""
        while True:
            if any(r is not None and not r.ahead for r in q.rows):
                return False
            if self._step(q):
                return True

    def _step(self, q: _Query) -> bool:
        """One Hugging Face beam-search step of one query (see the module docstring); True when done."""
        k = self.k
        vals, toks, parents = [], [], []
        for j, r in enumerate(q.rows):
            if r is None:
                continue
            allowed, lp = r.ahead[0]
            vals.append(r.score + lp)  # float32, as HF's running_beam_scores + log_probs
            toks.append(allowed)
            parents.append(np.full(len(allowed), j))
        self.stats.steps += 1
        v = np.concatenate(vals).astype(np.float32)
        t = np.concatenate(toks).astype(np.int64)
        par = np.concatenate(parents)
        # HF: topk over beam*vocab (flat index ascending among equal scores)
        order = np.lexsort((par * (1 << 32) + t, -v))[: 2 * k]
        v, t, par = v[order], t[order], par[order]
        g = q.generated
        hits = (t == self.eos) | (g + 1 >= self.max_new)
        # running beams: the best k candidates that did not end
        running_scores = v + hits.astype(np.float32) * _NEG
        run_order = np.argsort(-running_scores, kind="stable")[:k]
        new_rows: list[_Row | None] = [None] * k
        for slot, c in enumerate(run_order):
            sc = running_scores[c]
            if hits[c] or not np.isfinite(sc) or sc <= FILLER:
                continue
            parent = q.rows[par[c]]
            tok = int(t[c])
            rest = parent.ahead[1:]
            if rest:
                self.stats.forced_used += 1
            new_rows[slot] = _Row(parent.tokens + (tok,), np.float32(sc), self.constraint.advance(parent.node, tok),
                                  parent.slots, rest)
        # finished hypotheses: ended candidates among the best k, scored sum / length
        length = np.float32(g + 1)
        merged = list(q.finished)
        for rank in range(min(k, len(v))):
            if hits[rank] and np.isfinite(v[rank]):
                merged.append((np.float32(v[rank] / length), q.rows[par[rank]].tokens + (int(t[rank]),), True))
        merged.sort(key=lambda h: -h[0])  # stable: earlier hypotheses first among equal scores
        q.finished = merged[:k]
        q.rows = new_rows
        q.generated = g + 1
        best = max((r.score for r in new_rows if r is not None), default=None)
        if best is None:
            return True
        if not all(f for _, _, f in q.finished):
            return False
        worst = min(s for s, _, _ in q.finished)
        return not (np.float32(best / np.float32(g + 1)) > worst)
