"""Constrained decoding with a :class:`TokenTrie` in Hugging Face ``generate``.

Two bridges with the same semantics:

* :class:`TrieConstraint` — a ``prefix_allowed_tokens_fn(batch_id, input_ids) -> list[int]``;
* :class:`TrieLogitsProcessor` — a ``transformers.LogitsProcessor`` that masks the scores of the
  whole batch at once (``generate(..., logits_processor=LogitsProcessorList([proc]))``).

The generated part of a beam is ``input_ids[prompt_length:]`` (decoder-only models: the
left-padded prompt is ``input_ids.shape[1]`` long at the first step; seq2seq: the decoder start
token plus the decoder prompt). A beam's trie node is found by **one** step from the node of its
parent beam, which was computed at the previous step and is cached under the bytes of the parent's
generated tokens; only the current and previous step are kept.

Allowed next tokens: the node's children whose subtree holds an allowed name (see
:class:`~genbel.trie.token_trie.Restriction`), plus EOS when a name ends at the node. A beam
that has ended (EOS or pad generated) or left the trie gets ``[pad_token_id]`` (or ``[eos]``):
the list is never empty.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor

from genbel.errors import Errors, InputError
from genbel.trie.tail_trie import TailTrie
from genbel.trie.token_trie import Restriction, TokenTrie

logger = logging.getLogger(__name__)

INVALID = -1  #: the generated tokens left the trie
ENDED = -2  #: EOS (or pad) was generated: the beam is finished

_BIG = 64  # numpy arrays of allowed tokens are cached for nodes with more children than this
_MAX_CACHE = 1_000_000  # cached nodes per constraint before the caches are cleared


class TrieConstraint:
    """``prefix_allowed_tokens_fn`` for ``model.generate`` that keeps beams on trie paths.

    ``trie`` may be a :class:`TokenTrie` or anything with a ``.trie`` attribute (a
    :class:`~genbel.trie.candidates.CandidateTrie`). ``restrictions[batch_id]`` (optional, ``None``
    = no restriction) limits batch item ``batch_id`` to a subset of names.
    """

    def __init__(
        self,
        trie: TokenTrie | Any,
        prompt_length: int | Sequence[int],
        *,
        num_beams: int,
        restrictions: Sequence[Restriction | None] | None = None,
        eos_token_id: int,
        pad_token_id: int | None = None,
    ) -> None:
        if not isinstance(trie, (TokenTrie, TailTrie)):
            trie = trie.trie
        if eos_token_id is None:
            raise InputError(Errors.E206)
        if num_beams < 1:
            raise InputError(Errors.E023.format(value=num_beams, field="num_beams", constraint=">= 1"))
        self.trie: TokenTrie | TailTrie = trie
        self.prompt_length = prompt_length
        self._plen = int(prompt_length) if isinstance(prompt_length, (int, np.integer)) else None
        self.num_beams = int(num_beams)
        self.restrictions = list(restrictions) if restrictions is not None else None
        for i, r in enumerate(self.restrictions or ()):
            if r is not None and r.trie is not trie:
                raise InputError(Errors.E207.format(index=i))
        self.eos_token_id = int(eos_token_id)
        self.pad_token_id = None if pad_token_id is None else int(pad_token_id)
        end = self.pad_token_id if self.pad_token_id is not None else self.eos_token_id
        self._end = np.array([end], dtype=np.int64)
        self._end_list = [end]
        self._cur: dict[bytes, int] = {}
        self._prev: dict[bytes, int] = {}
        self._cur_len = -1
        # node -> (first child's node id, child tokens as a Python list, a name ends here)
        self._info: dict[int, tuple[int, list[int], bool]] = {}
        # (node, restriction key) -> allowed tokens (Python list / numpy array)
        self._allowed: dict[tuple[int, int], list[int]] = {}
        self._arrays: dict[tuple[int, int], np.ndarray] = {}
        self.calls = 0  #: number of lookups served
        self.rewalks = 0  #: lookups whose parent was not cached (walked from the root instead)

    # ------------------------------------------------------------------ state
    def _prompt_len(self, batch_id: int) -> int:
        p = self.prompt_length
        return int(p) if isinstance(p, (int, np.integer)) else int(p[batch_id])

    def _restriction(self, batch_id: int) -> Restriction | None:
        if self.restrictions is None:
            return None
        if batch_id >= len(self.restrictions):
            raise InputError(
                Errors.E208.format(batch_id=batch_id, n=len(self.restrictions))
            )
        return self.restrictions[batch_id]

    def reset(self) -> None:
        """Forget cached beam states (done automatically when a new sequence length is seen)."""
        self._cur, self._prev, self._cur_len = {}, {}, -1

    def _node_info(self, node: int) -> tuple[int, list[int], bool]:
        info = self._info.get(node)
        if info is None:
            info = self.trie.node_info(node)
            if len(self._info) >= _MAX_CACHE:
                self._info.clear()
            self._info[node] = info
        return info

    def _advance(self, node: int, token: int) -> int:
        if node < 0:
            return node
        if token == self.eos_token_id:
            return ENDED
        a, kids, _ = self._node_info(node)
        i = bisect_left(kids, token)
        if i < len(kids) and kids[i] == token:
            return a + i
        return ENDED if token == self.pad_token_id else INVALID

    def advance(self, node: int, token: int) -> int:
        """The trie state after ``token`` at state ``node`` (:data:`ENDED` for EOS, or pad off the trie;
        :data:`INVALID` off the trie; a state below 0 stays as it is)."""
        return self._advance(node, token)

    def _walk(self, gen: np.ndarray) -> int:
        node = TokenTrie.ROOT
        for t in gen.tolist():
            node = self._advance(node, t)
            if node < 0:
                break
        return node

    def node(self, generated: np.ndarray, total_length: int) -> int:
        """Trie state (node id, :data:`INVALID` or :data:`ENDED`) of a beam's generated tokens.

        ``generated`` is a 1-D integer array, ``total_length`` the length of the whole sequence
        (prompt included), which tells the steps apart.
        """
        self.calls += 1
        if total_length != self._cur_len:
            if total_length == self._cur_len + 1:
                self._prev, self._cur = self._cur, {}
            else:
                self._prev, self._cur = {}, {}
            self._cur_len = total_length
        n = generated.shape[0]
        if n == 0:
            return TokenTrie.ROOT
        key = generated.tobytes()
        node = self._cur.get(key)
        if node is not None:
            return node
        if n == 1:
            parent: int | None = TokenTrie.ROOT
        else:
            pk = key[: -generated.itemsize]
            parent = self._prev.get(pk)
            if parent is None:
                parent = self._cur.get(pk)
        if parent is None:
            self.rewalks += 1
            parent = self._walk(generated[:-1])
        node = self._advance(parent, int(generated[-1]))
        self._cur[key] = node
        return node

    def allowed(self, batch_id: int, node: int) -> list[int]:
        """Allowed next tokens of batch item ``batch_id`` at trie state ``node`` (never empty).

        The list is cached and shared between calls: do not modify it.
        """
        if node < 0:
            return self._end_list
        r = self._restriction(batch_id)
        ck = (node, 0 if r is None else id(r))
        out = self._allowed.get(ck)
        if out is not None:
            return out
        _, kids, terminal = self._node_info(node)
        if r is None:
            out = kids + [self.eos_token_id] if terminal and self.eos_token_id not in kids else kids
        else:
            out = r.children(node).tolist()
            if r.allows_terminal(node) and self.eos_token_id not in out:
                out.append(self.eos_token_id)
        if not out:
            out = self._end_list
        if len(self._allowed) >= _MAX_CACHE:
            self._allowed.clear()
            self._arrays.clear()
        self._allowed[ck] = out
        return out

    def allowed_array(self, batch_id: int, node: int) -> np.ndarray:
        """:meth:`allowed` as an int64 array (cached for nodes with many children)."""
        if node < 0:
            return self._end
        lst = self.allowed(batch_id, node)
        if len(lst) <= _BIG:
            return np.array(lst, dtype=np.int64)
        r = self._restriction(batch_id)
        ck = (node, 0 if r is None else id(r))
        arr = self._arrays.get(ck)
        if arr is None:
            arr = self._arrays[ck] = np.array(lst, dtype=np.int64)
        return arr

    # ------------------------------------------------------------------ HF hook
    def __call__(self, batch_id: int, input_ids: torch.LongTensor) -> list[int]:
        """Allowed next tokens for one beam (``input_ids``: its whole sequence, prompt included)."""
        try:
            arr = input_ids.numpy()  # zero-copy on CPU
        except (TypeError, RuntimeError):  # on an accelerator, or requires grad
            arr = input_ids.detach().cpu().numpy()
        plen = self._plen if self._plen is not None else self._prompt_len(batch_id)
        return self.allowed(batch_id, self.node(arr[plen:], arr.shape[0]))


class TrieLogitsProcessor(LogitsProcessor):
    """A ``LogitsProcessor`` with :class:`TrieConstraint` semantics, masking the batch in one go.

    Rows of ``input_ids``/``scores`` are ``batch_size * num_beams`` beams; row ``i`` belongs to
    batch item ``i // num_beams``.
    """

    def __init__(
        self,
        trie: TokenTrie | Any,
        prompt_length: int | Sequence[int],
        *,
        num_beams: int,
        restrictions: Sequence[Restriction | None] | None = None,
        eos_token_id: int,
        pad_token_id: int | None = None,
    ) -> None:
        self.constraint = TrieConstraint(
            trie,
            prompt_length,
            num_beams=num_beams,
            restrictions=restrictions,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        c = self.constraint
        arr = input_ids.detach().cpu().numpy()
        if arr.dtype != np.int64:
            arr = arr.astype(np.int64)
        rows, total = arr.shape
        cols: list[np.ndarray] = []
        counts = np.empty(rows, dtype=np.int64)
        for i in range(rows):
            b = i // c.num_beams
            gen = arr[i, c._prompt_len(b) :]
            node = c.node(gen, total)
            allowed = c.allowed_array(b, node)
            cols.append(allowed)
            counts[i] = len(allowed)
        col = torch.from_numpy(np.concatenate(cols)).to(scores.device)
        row = torch.from_numpy(np.repeat(np.arange(rows, dtype=np.int64), counts)).to(scores.device)
        out = torch.full_like(scores, -float("inf"))
        out[row, col] = scores[row, col]
        return out
