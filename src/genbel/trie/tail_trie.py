"""A :class:`TokenTrie` layout for UMLS-sized name sets: unary tails stored as token runs.

Most nodes of a trie over millions of tokenized names lie on *tails*: once a prefix is shared by a
single name, every further node has one child and covers one sequence. :class:`TokenTrie` spends
18 bytes on each of them (child pointer, token, ``lo``/``hi``/``term_end``); :class:`TailTrie` keeps
full nodes only where the trie branches and stores each name's tail once, as its remaining tokens:

* **real nodes** (the root, every node covering two or more sequences, and their children): the
  CSR arrays of :class:`TokenTrie` (``child_ptr``, ``child_tokens``, ``lo``, ``hi``, ``term_end``);
  a real node covering exactly one sequence is a *tail head*;
* **tails**: ``tail_tokens[tail_ptr[p]:tail_ptr[p + 1]]`` are the tokens of the sequence at DFS
  position ``p`` below its tail head (empty when it has none); the tail token at index ``k`` is
  node ``num_real + k``; ``tail_last`` (packed bits) marks the last token of each tail.

A tail node's child is the next node id, and it is terminal iff it is its tail's last token, so a
decoding step reads one token and one bit. Sequence positions (``seq_values``/``seq_order``) are the
same as :class:`TokenTrie`'s and every query answers the same (tests compare the two layouts on random
sequences); node ids differ. On UMLS-shaped names (SmolLM2 tokens) 29 % of the nodes branch and the
arrays take 52 bytes a name instead of 114 (``docs/scale.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genbel.errors import Errors, FormatError, InputError
from genbel.trie.token_trie import FORMAT_VERSION as _FULL_VERSION
from genbel.trie.token_trie import (
    TokenTrie,
    _ArrayTrie,
    _index_dtype,
    _lex_order,
    _neighbour_lcp,
    _read_meta,
    _token_dtype,
)

logger = logging.getLogger(__name__)

FORMAT = "genbel.trie.TailTrie"
FORMAT_VERSION = 1
_ARRAYS = ("child_ptr", "child_tokens", "lo", "hi", "term_end", "tail_ptr", "tail_tokens", "tail_last",
           "seq_values", "seq_order")
LAYOUTS = ("tail", "full")


class TailTrie(_ArrayTrie):
    """Prefix trie over token-id sequences with the API of :class:`TokenTrie` and tails as token runs."""

    _arrays = _ARRAYS
    _format_version = FORMAT_VERSION

    def __init__(self, arrays: dict[str, np.ndarray], max_depth: int) -> None:
        for a in _ARRAYS:
            setattr(self, a, arrays[a])
        self.num_real = len(self.lo)
        self._max_depth = int(max_depth)
        self._max_token = int(np.iinfo(self.child_tokens.dtype).max)
        self._check()

    child_ptr: np.ndarray
    child_tokens: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    term_end: np.ndarray
    tail_ptr: np.ndarray
    tail_tokens: np.ndarray
    tail_last: np.ndarray
    seq_values: np.ndarray
    seq_order: np.ndarray

    def _check(self, path: Path | str = "<memory>") -> None:
        r, s, t = len(self.lo), len(self.seq_values), len(self.tail_tokens)
        problems = []
        if r < 1:
            problems.append("no root node")
        if len(self.child_ptr) != r + 1 or len(self.child_tokens) != max(r - 1, 0):
            problems.append("child arrays do not match the number of nodes")
        if len(self.hi) != r or len(self.term_end) != r:
            problems.append("lo/hi/term_end lengths differ")
        if len(self.seq_order) != s or len(self.tail_ptr) != s + 1:
            problems.append("sequence arrays lengths differ")
        if len(self.tail_last) != (t + 7) // 8 or (len(self.tail_ptr) and int(self.tail_ptr[-1]) != t):
            problems.append("tail arrays do not match")
        if self.tail_tokens.dtype != self.child_tokens.dtype:
            problems.append("tail and child token dtypes differ")
        if not problems and int(self.hi[0]) != s:
            problems.append(f"root covers {int(self.hi[0])} sequences but {s} are stored")
        if problems:
            raise FormatError(Errors.E201.format(path=path, reason="; ".join(problems)))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_flat(
        cls, tokens: np.ndarray, offsets: np.ndarray, values: Sequence[int] | np.ndarray | None = None
    ) -> TailTrie:
        """As :meth:`TokenTrie.from_flat`: sequence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``."""
        tokens, offsets, lengths, vals, max_token = _check_input(tokens, offsets, values)
        n_seq = len(lengths)
        tokens = tokens.astype(_token_dtype(max_token), copy=False)
        order = _lex_order(tokens, offsets, lengths, max_token)
        lcp = _neighbour_lcp(tokens, offsets, lengths, order)
        idx = _index_dtype(max(n_seq, len(tokens)) + 2)
        arrays = _build_tail_levels(tokens, offsets, lengths, order, lcp, idx)
        del lcp
        arrays["seq_values"] = vals[order].astype(np.int32)
        arrays["seq_order"] = order.astype(idx)
        trie = cls(arrays, int(lengths.max()) if n_seq else 0)
        logger.debug("built tail trie: %d sequences, %d real nodes, %d tail nodes, %.1f MB", n_seq,
                     trie.num_real, len(trie.tail_tokens), trie.nbytes / 1e6)
        return trie

    # ------------------------------------------------------------------ node helpers
    def _pos(self, k: int) -> int:
        """DFS position of the sequence holding tail token ``k``."""
        return int(np.searchsorted(self.tail_ptr, k, side="right")) - 1

    def _last(self, k: int) -> bool:
        return bool((int(self.tail_last[k >> 3]) >> (7 - (k & 7))) & 1)

    def _head(self, position: int) -> tuple[int, list[int]]:
        """The tail head of the sequence at ``position`` and the tokens leading to it."""
        node, path = self.ROOT, []
        while int(self.hi[node]) - int(self.lo[node]) > 1:
            a, b = int(self.child_ptr[node]), int(self.child_ptr[node + 1])
            j = a + int(np.searchsorted(self.lo[a + 1 : b + 1], position, side="right")) - 1
            node = j + 1
            path.append(int(self.child_tokens[j]))
        return node, path

    def node_info(self, node: int) -> tuple[int, list[int], bool]:
        """``(first child id, child tokens, terminal)``: child ``i`` is node ``first + i``."""
        r = self.num_real
        if node >= r:
            k = node - r
            if self._last(k):
                return node + 1, [], True
            return node + 1, [int(self.tail_tokens[k + 1])], False
        lo, hi = int(self.lo[node]), int(self.hi[node])
        terminal = int(self.term_end[node]) > lo
        if hi - lo > 1:
            a, b = self.child_ptr[node : node + 2].tolist()
            return a + 1, self.child_tokens[a:b].tolist(), terminal
        if hi == lo:
            return 0, [], terminal
        a, b = int(self.tail_ptr[lo]), int(self.tail_ptr[lo + 1])
        return r + a, ([int(self.tail_tokens[a])] if a < b else []), terminal

    # ------------------------------------------------------------------ queries (TokenTrie's API)
    @property
    def num_nodes(self) -> int:
        return self.num_real + len(self.tail_tokens)

    @property
    def max_depth(self) -> int:
        return self._max_depth

    def children(self, node: int) -> np.ndarray:
        """Sorted child token ids of ``node``."""
        if node < self.num_real:
            lo, hi = int(self.lo[node]), int(self.hi[node])
            if hi - lo > 1:
                return self.child_tokens[self.child_ptr[node] : self.child_ptr[node + 1]]
        _, kids, _ = self.node_info(node)
        return np.asarray(kids, dtype=self.tail_tokens.dtype)

    def child_nodes(self, node: int) -> np.ndarray:
        first, kids, _ = self.node_info(node)
        return np.arange(first, first + len(kids), dtype=np.int64)

    def step(self, node: int, token: int) -> int:
        """The child of ``node`` reached by ``token``, or ``-1``."""
        if node < 0 or token < 0 or token > self._max_token:
            return -1
        if node < self.num_real and int(self.hi[node]) - int(self.lo[node]) > 1:
            a, b = int(self.child_ptr[node]), int(self.child_ptr[node + 1])
            kids = self.child_tokens[a:b]
            i = int(kids.searchsorted(token))
            return a + i + 1 if i < b - a and kids[i] == token else -1
        first, kids, _ = self.node_info(node)
        return first if kids and kids[0] == token else -1

    def parent(self, node: int) -> int:
        if node <= 0:
            return -1
        if node < self.num_real:
            return int(np.searchsorted(self.child_ptr, node - 1, side="right")) - 1
        k = node - self.num_real
        p = self._pos(k)
        return node - 1 if k > int(self.tail_ptr[p]) else self._head(p)[0]

    def token_of(self, node: int) -> int:
        if node <= 0:
            return -1
        if node < self.num_real:
            return int(self.child_tokens[node - 1])
        return int(self.tail_tokens[node - self.num_real])

    def path(self, node: int) -> list[int]:
        if node < self.num_real:
            out: list[int] = []
            while node > 0:
                out.append(int(self.child_tokens[node - 1]))
                node = self.parent(node)
            return out[::-1]
        k = node - self.num_real
        p = self._pos(k)
        _, path = self._head(p)
        return path + self.tail_tokens[int(self.tail_ptr[p]) : k + 1].tolist()

    def depth(self, node: int) -> int:
        return len(self.path(node))

    def value_range(self, node: int) -> tuple[int, int]:
        if node < self.num_real:
            return int(self.lo[node]), int(self.hi[node])
        p = self._pos(node - self.num_real)
        return p, p + 1

    def terminal_range(self, node: int) -> tuple[int, int]:
        """``[lo, term_end)``: positions of the sequences ending exactly at ``node``."""
        if node < self.num_real:
            return int(self.lo[node]), int(self.term_end[node])
        k = node - self.num_real
        p = self._pos(k)
        return p, p + 1 if self._last(k) else p

    def child_spans(self, node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Child tokens with the ``lo`` and ``hi`` positions of each child's subtree."""
        if node < self.num_real and int(self.hi[node]) - int(self.lo[node]) > 1:
            a, b = int(self.child_ptr[node]), int(self.child_ptr[node + 1])
            return self.child_tokens[a:b], self.lo[a + 1 : b + 1], self.hi[a + 1 : b + 1]
        kids = self.children(node)
        lo, hi = self.value_range(node)  # one sequence: the child covers it too
        return kids, np.full(len(kids), lo, dtype=np.int64), np.full(len(kids), hi, dtype=np.int64)

    def values(self, node: int) -> np.ndarray:
        lo, te = self.terminal_range(node)
        return self.seq_values[lo:te]

    def is_terminal(self, node: int) -> bool:
        if node >= self.num_real:
            return self._last(node - self.num_real)
        return bool(self.term_end[node] > self.lo[node])

    def sequence(self, position: int) -> list[int]:
        """Tokens of the sequence at DFS ``position``."""
        node, path = self.ROOT, []
        while not (int(self.lo[node]) <= position < int(self.term_end[node])):
            if int(self.hi[node]) - int(self.lo[node]) <= 1:
                return path + self.tail_tokens[int(self.tail_ptr[position]) : int(self.tail_ptr[position + 1])].tolist()
            a, b = int(self.child_ptr[node]), int(self.child_ptr[node + 1])
            j = a + int(np.searchsorted(self.lo[a + 1 : b + 1], position, side="right")) - 1
            node = j + 1
            path.append(int(self.child_tokens[j]))
        return path

    def _meta(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "num_nodes": self.num_nodes,
                "num_real": self.num_real, "num_sequences": self.num_sequences, "max_depth": self.max_depth}

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> TailTrie:
        path = Path(path)
        trie, meta = cls._read(path, mmap)
        trie.num_real = len(trie.lo)
        trie._max_depth = int(meta.get("max_depth", 0))
        trie._max_token = int(np.iinfo(trie.child_tokens.dtype).max)
        trie._check(path)
        trie._check_sizes(path, meta)
        return trie

    def __repr__(self) -> str:
        return (f"TailTrie(sequences={self.num_sequences}, nodes={self.num_nodes}, real={self.num_real}, "
                f"nbytes={self.nbytes})")


def build_trie(
    tokens: np.ndarray, offsets: np.ndarray, values: Sequence[int] | np.ndarray | None = None, layout: str = "tail"
) -> TailTrie | TokenTrie:
    """A trie of the given ``layout`` (``tail``: :class:`TailTrie`; ``full``: :class:`TokenTrie`)."""
    if layout == "tail":
        return TailTrie.from_flat(tokens, offsets, values)
    if layout == "full":
        return TokenTrie.from_flat(tokens, offsets, values)
    raise InputError(Errors.E603.format(path="<build>", layout=layout, known=", ".join(LAYOUTS)))


def load_trie(path: str | Path, mmap: bool = True) -> TailTrie | TokenTrie:
    """Load a trie directory of either layout (the ``format`` field of its ``trie.json``)."""
    path = Path(path)
    meta = _read_meta(path, [])
    fmt = meta.get("format", "genbel.trie.TokenTrie")
    if fmt == FORMAT:
        return TailTrie.load(path, mmap=mmap)
    if fmt == "genbel.trie.TokenTrie":
        return TokenTrie.load(path, mmap=mmap)
    raise FormatError(Errors.E603.format(path=path, layout=fmt, known=f"{FORMAT}, genbel.trie.TokenTrie "
                                                                       f"(format {_FULL_VERSION})"))


# ---------------------------------------------------------------------- helpers
def _check_input(
    tokens: np.ndarray, offsets: np.ndarray, values: Sequence[int] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The input checks of :meth:`TokenTrie.from_flat` (same errors)."""
    tokens = np.asarray(tokens)
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(tokens):
        raise InputError(Errors.E203.format(reason="offsets must start at 0 and end at len(tokens)"))
    lengths = np.diff(offsets)
    if (lengths < 0).any():
        raise InputError(Errors.E203.format(reason=f"offsets decrease at sequence {int(np.flatnonzero(lengths < 0)[0])}"))
    n_seq = len(lengths)
    max_token = 0
    if tokens.size:
        if not np.issubdtype(tokens.dtype, np.integer):
            raise InputError(Errors.E203.format(reason=f"token ids must be integers, got {tokens.dtype}"))
        if tokens.min() < 0:
            pos = int(np.flatnonzero(tokens < 0)[0])
            seq = int(np.searchsorted(offsets, pos, side="right") - 1)
            raise InputError(Errors.E202.format(index=seq, reason=f"negative token id {int(tokens[pos])}"))
        max_token = int(tokens.max())
    vals = np.arange(n_seq, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64)
    if vals.shape != (n_seq,):
        raise InputError(Errors.E203.format(reason=f"{len(vals)} values given for {n_seq} sequences"))
    if n_seq and vals.min() < 0:
        raise InputError(Errors.E202.format(index=int(np.argmin(vals)), reason="negative value"))
    if n_seq and int(vals.max()) >= 2**31:
        raise InputError(Errors.E203.format(reason="payload values must be < 2**31"))
    return tokens, offsets, lengths, vals, max_token


def _build_tail_levels(
    tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, order: np.ndarray, lcp: np.ndarray,
    idx: np.dtype,
) -> dict[str, np.ndarray]:
    """Real nodes level by level (as ``token_trie._build_levels``), stopping each sequence at its tail head."""
    n = len(order)
    plen = lengths[order]
    head = np.full(n, -1, dtype=np.int64)  # per position: depth of its tail head (-1: none)
    parts: dict[str, list[np.ndarray]] = {
        "tok": [np.zeros(0, dtype=tokens.dtype)],
        "lo": [np.array([0], dtype=idx)],
        "hi": [np.array([n], dtype=idx)],
        "tend": [np.array([np.count_nonzero(plen == 0)], dtype=idx)],
        "parent": [np.zeros(0, dtype=idx)],
    }
    if n == 1:
        head[0] = 0
        act = np.zeros(0, dtype=np.int64)
    else:
        act = np.flatnonzero(plen > 0)
    par = np.zeros(len(act), dtype=np.int64)
    next_id, d = 1, 1
    while act.size:
        starts = lcp[act] < d
        run_start = np.flatnonzero(starts)
        m = len(run_start)
        run_id = np.cumsum(starts, dtype=np.int64) - 1
        first = act[run_start]
        last = np.append(run_start[1:], len(act)) - 1
        hi = act[last] + 1
        parts["tok"].append(tokens[offsets[order[first]] + (d - 1)])
        parts["lo"].append(first.astype(idx))
        parts["hi"].append(hi.astype(idx))
        alen = plen[act]
        ends = (alen == d).astype(np.int64)
        parts["tend"].append((first + np.add.reduceat(ends, run_start)).astype(idx))
        parts["parent"].append(par[run_start].astype(idx))
        single = (hi - first) == 1
        head[first[single]] = d
        keep = (alen > d) & ~single[run_id]
        act = act[keep]
        par = run_id[keep] + next_id
        next_id += m
        d += 1
    del act, par
    num_real = next_id
    counts = np.bincount(np.concatenate(parts.pop("parent")), minlength=num_real)
    child_ptr = np.zeros(num_real + 1, dtype=idx)
    np.cumsum(counts, dtype=idx, out=child_ptr[1:])
    del counts
    # tails: tokens[head:] of every position with a tail head
    tl = np.where(head >= 0, plen - head, 0)
    tail_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(tl, out=tail_ptr[1:])
    total = int(tail_ptr[-1])
    has = np.flatnonzero(tl > 0)
    src = np.repeat(offsets[order[has]] + head[has] - tail_ptr[has], tl[has])
    src += np.arange(total, dtype=np.int64)
    tail_tokens = tokens[src]
    del src
    last = np.zeros(total, dtype=bool)
    last[tail_ptr[has + 1] - 1] = True
    tdt = np.dtype(np.uint32) if total < 2**32 - 1 else np.dtype(np.uint64)
    return {
        "child_ptr": child_ptr,
        "child_tokens": np.concatenate(parts["tok"]),
        "lo": np.concatenate(parts["lo"]),
        "hi": np.concatenate(parts["hi"]),
        "term_end": np.concatenate(parts["tend"]),
        "tail_ptr": tail_ptr.astype(tdt),
        "tail_tokens": tail_tokens,
        "tail_last": np.packbits(last),
    }
