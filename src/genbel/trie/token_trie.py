"""A compact, memory-mappable prefix trie over token-id sequences.

The trie is stored in a handful of flat numpy arrays instead of nested Python dicts (GENRE,
GenBioEL and SynCABEL pickle a dict of dicts, which takes gigabytes for UMLS-sized name sets).

Layout
------
Sequences are sorted lexicographically ("DFS order"); sequence *position* ``p`` is the rank of a
sequence in that order. Nodes are numbered level by level (all depth-1 nodes, then all depth-2
nodes, ...) and, within a level, in lexicographic order. With this numbering the children of a
node are *consecutive* node ids and every non-root node appears exactly once as a child, so the
child lists form one CSR structure without a separate array of child node ids:

* ``child_ptr[node] .. child_ptr[node + 1]`` is the slice of ``child_tokens`` holding the node's
  child tokens (sorted); the child at slot ``j`` is node ``j + 1``;
* ``lo[node], hi[node]``: the sequences having the node's prefix are the positions
  ``[lo, hi)``;
* ``term_end[node]``: the sequences that *end* at the node are positions ``[lo, term_end)`` (a
  sequence sorts before its extensions), their payloads are ``seq_values[lo:term_end]``;
* ``seq_values[p]``: payload of the sequence at position ``p``; ``seq_order[p]``: its index in
  the input.

Memory is about 18 bytes per node (``uint16`` tokens when the vocabulary fits) plus 8 bytes per
sequence. The build is vectorised with numpy (sorting packed token words, longest common prefix
of neighbours, one pass per depth), so millions of sequences take seconds to minutes; its peak
memory is about 2.5 times the finished trie (plus the input tokens).

A :class:`Restriction` limits a trie to a subset of payloads without rebuilding it: a prefix sum
over sequence positions tells in O(1) whether a node's subtree holds an allowed sequence.

This module is one job (the trie's arrays: their build, queries, restrictions and on-disk format) and
stays one module of about 560 lines because every part reads the same array layout described above.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from genbel.errors import Errors, FormatError, InputError
from genbel.io import atomic_dir, write_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_META = "trie.json"
_ARRAYS = ("child_ptr", "child_tokens", "lo", "hi", "term_end", "seq_values", "seq_order")


def _read_meta(path: Path, files: list[str]) -> dict:
    """``trie.json`` of the trie directory ``path`` (E200 when it or one of ``files`` is missing, E201
    when it is not a JSON object)."""
    missing = [f for f in (_META, *files) if not (path / f).is_file()]
    if missing:
        raise FormatError(Errors.E200.format(path=path, missing=", ".join(missing)))
    try:
        meta = json.loads((path / _META).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(Errors.E201.format(path=path / _META, reason=str(e))) from e
    if not isinstance(meta, dict):
        raise FormatError(Errors.E201.format(path=path / _META, reason="not a JSON object"))
    return meta


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.uint32) if n < 2**32 - 1 else np.dtype(np.uint64)


def _token_dtype(max_token: int) -> np.dtype:
    if max_token < 2**16:
        return np.dtype(np.uint16)
    if max_token < 2**32:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


class _ArrayTrie:
    """What every array layout of the trie shares (:class:`TokenTrie`, and
    :class:`genbel.trie.tail_trie.TailTrie`): walking by :meth:`step`, payload slices by
    :meth:`value_range`, restrictions, and persistence as memory-mappable ``.npy`` files + ``trie.json``.
    A layout names its arrays in ``_arrays`` and writes its own ``trie.json`` fields in ``_meta``."""

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]], values: Sequence[int] | None = None) -> Self:
        """Build from token sequences; ``values[i]`` is the payload id of sequence ``i`` (default ``i``).

        Several sequences may share prefixes or be identical (their payloads then all sit at the
        same terminal node). Empty sequences end at the root. The layout builds from the flat
        arrays (``from_flat``).
        """
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter((int(t) for s in sequences for t in s), dtype=np.int64, count=int(offsets[-1]))
        return cls.from_flat(tokens, offsets, values)

    ROOT: int = 0
    _arrays: tuple[str, ...] = ()
    _format_version: int = FORMAT_VERSION
    seq_values: np.ndarray

    def step(self, node: int, token: int) -> int:
        raise NotImplementedError

    def value_range(self, node: int) -> tuple[int, int]:
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def num_sequences(self) -> int:
        return len(self.seq_values)

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, a).nbytes for a in self._arrays))

    def __len__(self) -> int:
        return self.num_sequences

    def walk(self, tokens: Iterable[int], node: int = ROOT) -> int:
        """Follow ``tokens`` from ``node``; the node reached, or ``-1`` if the path leaves the trie."""
        for t in tokens:
            node = self.step(node, int(t))
            if node < 0:
                return -1
        return node

    def subtree_values(self, node: int) -> np.ndarray:
        """Payloads of all sequences in the subtree of ``node`` (a view)."""
        lo, hi = self.value_range(node)
        return self.seq_values[lo:hi]

    def restriction(self, payloads: Iterable[int] | np.ndarray) -> Restriction:
        """A :class:`Restriction` allowing only sequences whose payload is in ``payloads``."""
        return Restriction.from_payloads(self, payloads)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the arrays as ``.npy`` files (memory-mappable) into directory ``path``, atomically."""
        return atomic_dir(path, self._write)

    def _write(self, d: Path) -> None:
        for name in self._arrays:
            np.save(d / f"{name}.npy", np.ascontiguousarray(getattr(self, name)), allow_pickle=False)
        write_json(d / _META, self._meta())

    @classmethod
    def _read(cls, path: Path, mmap: bool) -> tuple[Any, dict[str, Any]]:
        """An instance with its arrays loaded from ``path`` (not yet checked) and the ``trie.json`` meta:
        E200 for missing files, E201 for unreadable ones, E205 for another format version."""
        meta = _read_meta(path, [f"{a}.npy" for a in cls._arrays])
        if meta.get("format_version") != cls._format_version:
            raise FormatError(
                Errors.E205.format(path=path, found=meta.get("format_version"), expected=cls._format_version)
            )
        trie = cls.__new__(cls)
        for a in cls._arrays:
            try:
                setattr(trie, a, np.load(path / f"{a}.npy", mmap_mode="r" if mmap else None, allow_pickle=False))
            except ValueError as e:
                raise FormatError(Errors.E201.format(path=path / f"{a}.npy", reason=str(e))) from e
        return trie, meta

    def _check_sizes(self, path: Path, meta: dict[str, Any]) -> None:
        if self.num_nodes != meta.get("num_nodes") or self.num_sequences != meta.get("num_sequences"):
            raise FormatError(Errors.E201.format(path=path, reason="array sizes disagree with trie.json"))


class TokenTrie(_ArrayTrie):
    """Prefix trie over token-id sequences, stored as flat (optionally memory-mapped) arrays.

    Build with :meth:`build` (sequences of ints) or :meth:`from_flat` (one concatenated token
    array + offsets, the memory-frugal path for millions of sequences).
    """

    _arrays = _ARRAYS

    def __init__(
        self,
        child_ptr: np.ndarray,
        child_tokens: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        term_end: np.ndarray,
        seq_values: np.ndarray,
        seq_order: np.ndarray,
    ) -> None:
        self.child_ptr = child_ptr
        self.child_tokens = child_tokens
        self.lo = lo
        self.hi = hi
        self.term_end = term_end
        self.seq_values = seq_values
        self.seq_order = seq_order
        self._max_token = int(np.iinfo(child_tokens.dtype).max)
        self._check()

    def _check(self, path: Path | str = "<memory>") -> None:
        n = len(self.lo)
        problems = []
        if n < 1:
            problems.append("no root node")
        if len(self.child_ptr) != n + 1:
            problems.append(f"child_ptr has {len(self.child_ptr)} entries, expected {n + 1}")
        if len(self.child_tokens) != max(n - 1, 0):
            problems.append(f"child_tokens has {len(self.child_tokens)} entries, expected {n - 1}")
        if len(self.hi) != n or len(self.term_end) != n:
            problems.append("lo/hi/term_end lengths differ")
        if len(self.seq_values) != len(self.seq_order):
            problems.append("seq_values and seq_order lengths differ")
        if not problems and n and int(self.hi[0]) != len(self.seq_values):
            problems.append(f"root covers {int(self.hi[0])} sequences but {len(self.seq_values)} are stored")
        if problems:
            raise FormatError(Errors.E201.format(path=path, reason="; ".join(problems)))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_flat(
        cls,
        tokens: np.ndarray,
        offsets: np.ndarray,
        values: Sequence[int] | np.ndarray | None = None,
    ) -> TokenTrie:
        """Build from concatenated tokens: sequence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``."""
        tokens = np.asarray(tokens)
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(tokens):
            raise InputError(Errors.E203.format(reason="offsets must start at 0 and end at len(tokens)"))
        lengths = np.diff(offsets)
        if (lengths < 0).any():
            i = int(np.flatnonzero(lengths < 0)[0])
            raise InputError(Errors.E203.format(reason=f"offsets decrease at sequence {i}"))
        n_seq = len(lengths)
        if tokens.size:
            if not np.issubdtype(tokens.dtype, np.integer):
                raise InputError(Errors.E203.format(reason=f"token ids must be integers, got {tokens.dtype}"))
            if tokens.min() < 0:
                pos = int(np.flatnonzero(tokens < 0)[0])
                seq = int(np.searchsorted(offsets, pos, side="right") - 1)
                raise InputError(
                    Errors.E202.format(index=seq, reason=f"negative token id {int(tokens[pos])}")
                )
            max_token = int(tokens.max())
        else:
            max_token = 0
        if values is None:
            vals = np.arange(n_seq, dtype=np.int64)
        else:
            vals = np.asarray(values, dtype=np.int64)
            if vals.shape != (n_seq,):
                raise InputError(Errors.E203.format(reason=f"{len(vals)} values given for {n_seq} sequences"))
            if n_seq and vals.min() < 0:
                raise InputError(Errors.E202.format(index=int(np.argmin(vals)), reason="negative value"))
        if n_seq and int(vals.max()) >= 2**31:
            raise InputError(Errors.E203.format(reason="payload values must be < 2**31"))

        tokens = tokens.astype(_token_dtype(max_token), copy=False)
        order = _lex_order(tokens, offsets, lengths, max_token)
        lcp = _neighbour_lcp(tokens, offsets, lengths, order)
        # nodes <= tokens + 1, so this index dtype holds every node id and position
        idx = _index_dtype(max(n_seq, len(tokens)) + 2)
        child_ptr, child_tokens, lo, hi, term_end = _build_levels(tokens, offsets, lengths, order, lcp, idx)
        del lcp
        trie = cls(
            child_ptr=child_ptr,
            child_tokens=child_tokens,
            lo=lo,
            hi=hi,
            term_end=term_end,
            seq_values=vals[order].astype(np.int32),
            seq_order=order.astype(idx),
        )
        logger.debug("built trie: %d sequences, %d nodes, %.1f MB", n_seq, trie.num_nodes, trie.nbytes / 1e6)
        return trie

    # ------------------------------------------------------------------ queries
    @property
    def num_nodes(self) -> int:
        return len(self.lo)

    def child_range(self, node: int) -> tuple[int, int]:
        """Slots ``[a, b)`` of the node's children in ``child_tokens``; slot ``j`` is node ``j + 1``."""
        return int(self.child_ptr[node]), int(self.child_ptr[node + 1])

    def children(self, node: int) -> np.ndarray:
        """Sorted child token ids of ``node`` (a view, no copy)."""
        return self.child_tokens[self.child_ptr[node] : self.child_ptr[node + 1]]

    def child_nodes(self, node: int) -> np.ndarray:
        """Node ids of the children, aligned with :meth:`children`."""
        a, b = self.child_range(node)
        return np.arange(a + 1, b + 1, dtype=np.int64)

    def step(self, node: int, token: int) -> int:
        """The child of ``node`` reached by ``token``, or ``-1`` (binary search in the children)."""
        if node < 0 or token < 0 or token > self._max_token:
            return -1
        a = int(self.child_ptr[node])
        b = int(self.child_ptr[node + 1])
        if a == b:
            return -1
        kids = self.child_tokens[a:b]
        i = int(kids.searchsorted(token))
        if i < b - a and kids[i] == token:
            return a + i + 1
        return -1

    def parent(self, node: int) -> int:
        """Parent node id (``-1`` for the root)."""
        if node <= 0:
            return -1
        return int(np.searchsorted(self.child_ptr, node - 1, side="right")) - 1

    def token_of(self, node: int) -> int:
        """The token on the edge into ``node`` (``-1`` for the root)."""
        return int(self.child_tokens[node - 1]) if node > 0 else -1

    def path(self, node: int) -> list[int]:
        """The token sequence that leads from the root to ``node``."""
        out: list[int] = []
        while node > 0:
            out.append(int(self.child_tokens[node - 1]))
            node = self.parent(node)
        return out[::-1]

    def depth(self, node: int) -> int:
        """Number of tokens from the root to ``node``."""
        d = 0
        while node > 0:
            node = self.parent(node)
            d += 1
        return d

    @property
    def max_depth(self) -> int:
        """Length of the longest sequence (nodes are numbered level by level: the last is deepest)."""
        return self.depth(self.num_nodes - 1)

    def terminal_range(self, node: int) -> tuple[int, int]:
        """``[lo, term_end)``: the DFS positions of the sequences that end exactly at ``node``."""
        return int(self.lo[node]), int(self.term_end[node])

    def child_spans(self, node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Child tokens of ``node`` with the ``lo`` and ``hi`` positions of each child's subtree (views)."""
        a, b = int(self.child_ptr[node]), int(self.child_ptr[node + 1])
        return self.child_tokens[a:b], self.lo[a + 1 : b + 1], self.hi[a + 1 : b + 1]

    def node_info(self, node: int) -> tuple[int, list[int], bool]:
        """``(first child id, child tokens, terminal)`` of ``node``: child ``i`` is node ``first + i``
        (the step of constrained decoding, shared with :class:`~genbel.trie.tail_trie.TailTrie`)."""
        a, b = self.child_ptr[node : node + 2].tolist()
        return a + 1, self.child_tokens[a:b].tolist(), bool(self.term_end[node] > self.lo[node])

    def values(self, node: int) -> np.ndarray:
        """Payloads of the sequences that end exactly at ``node`` (a view; empty if none)."""
        return self.seq_values[self.lo[node] : self.term_end[node]]

    def is_terminal(self, node: int) -> bool:
        return bool(self.term_end[node] > self.lo[node])

    def value_range(self, node: int) -> tuple[int, int]:
        """``[lo, hi)``: the DFS-ordered sequence positions in the subtree of ``node``."""
        return int(self.lo[node]), int(self.hi[node])

    def sequence(self, position: int) -> list[int]:
        """Tokens of the sequence at DFS ``position`` (walks the trie; for tests and debugging)."""
        node = self.ROOT
        path: list[int] = []
        while not (int(self.lo[node]) <= position < int(self.term_end[node])):
            a, b = self.child_range(node)
            # the child whose [lo, hi) contains position
            j = a + int(np.searchsorted(self.lo[a + 1 : b + 1], position, side="right")) - 1
            node = j + 1
            path.append(int(self.child_tokens[j]))
        return path

    def _meta(self) -> dict[str, Any]:
        return {"format": "genbel.trie.TokenTrie", "format_version": FORMAT_VERSION,
                "num_nodes": self.num_nodes, "num_sequences": self.num_sequences}

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> TokenTrie:
        """Load a trie written by :meth:`save`; ``mmap=True`` maps the arrays read-only."""
        path = Path(path)
        trie, meta = cls._read(path, mmap)
        trie._max_token = int(np.iinfo(trie.child_tokens.dtype).max)
        trie._check(path)
        trie._check_sizes(path, meta)
        return trie

    def __repr__(self) -> str:
        return f"TokenTrie(sequences={self.num_sequences}, nodes={self.num_nodes}, nbytes={self.nbytes})"


class Restriction:
    """A subset of a trie's sequences (by payload), usable without rebuilding the trie.

    Works on a :class:`TokenTrie` or a :class:`~genbel.trie.tail_trie.TailTrie` (through their
    ``value_range``, ``terminal_range`` and ``child_spans``).

    ``cs`` is the prefix sum of the allowed-sequence mask over DFS positions, so a node's
    subtree holds ``cs[hi] - cs[lo]`` allowed sequences and a node is allowed iff that is > 0.
    """

    def __init__(self, trie: TokenTrie | Any, sequence_mask: np.ndarray) -> None:
        mask = np.asarray(sequence_mask, dtype=bool)
        if mask.shape != (trie.num_sequences,):
            raise InputError(
                Errors.E203.format(
                    reason=f"restriction mask has shape {mask.shape}, expected ({trie.num_sequences},)"
                )
            )
        dt = np.int32 if trie.num_sequences < 2**31 else np.int64
        cs = np.zeros(trie.num_sequences + 1, dtype=dt)
        np.cumsum(mask, out=cs[1:])
        self.trie = trie
        self.cs = cs

    @classmethod
    def from_payloads(cls, trie: TokenTrie | Any, payloads: Iterable[int] | np.ndarray) -> Restriction:
        ids = np.fromiter(payloads, dtype=np.int64) if not isinstance(payloads, np.ndarray) else payloads
        return cls(trie, np.isin(trie.seq_values, ids))

    @classmethod
    def from_payload_mask(cls, trie: TokenTrie | Any, payload_mask: np.ndarray) -> Restriction:
        """``payload_mask[v]`` says whether payload ``v`` is allowed (payloads beyond the mask are not)."""
        pm = np.asarray(payload_mask, dtype=bool)
        vals = trie.seq_values
        inside = vals < len(pm)
        seq_mask = np.zeros(len(vals), dtype=bool)
        seq_mask[inside] = pm[vals[inside]]
        return cls(trie, seq_mask)

    @property
    def num_allowed(self) -> int:
        """Number of allowed sequences."""
        return int(self.cs[-1])

    def count(self, node: int) -> int:
        """Allowed sequences in the subtree of ``node``."""
        lo, hi = self.trie.value_range(node)
        return int(self.cs[hi]) - int(self.cs[lo])

    def allows(self, node: int) -> bool:
        return node >= 0 and self.count(node) > 0

    def allows_terminal(self, node: int) -> bool:
        """Whether an allowed sequence ends exactly at ``node``."""
        lo, te = self.trie.terminal_range(node)
        return int(self.cs[te]) > int(self.cs[lo])

    def children(self, node: int) -> np.ndarray:
        """Child tokens of ``node`` whose subtree holds at least one allowed sequence."""
        kids, lo, hi = self.trie.child_spans(node)
        if not len(kids):
            return kids
        return kids[self.cs[hi] > self.cs[lo]]

    def values(self, node: int) -> np.ndarray:
        """Allowed payloads ending at ``node``."""
        lo, te = self.trie.terminal_range(node)
        allowed = np.diff(self.cs[lo : te + 1]) > 0
        return self.trie.seq_values[lo:te][allowed]

    def __repr__(self) -> str:
        return f"Restriction(allowed={self.num_allowed} of {self.trie.num_sequences})"


# ---------------------------------------------------------------------- vectorised build
def _gather(
    tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, seqs: np.ndarray, pos: int
) -> np.ndarray:
    """``tokens[seq][pos] + 1`` for each seq (``0`` where the sequence is shorter), as uint64."""
    out = np.zeros(len(seqs), dtype=np.uint64)
    valid = lengths[seqs] > pos
    if valid.any():
        out[valid] = tokens[offsets[seqs[valid]] + pos].astype(np.uint64) + np.uint64(1)
    return out


def _lex_order(tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, max_token: int) -> np.ndarray:
    """Indices of the sequences in lexicographic order (a sequence before its extensions).

    Rank refinement: sort all sequences by their first ``K`` tokens (packed into two uint64
    words), then re-sort only groups that still tie and have longer members by the next ``K``
    tokens, keeping each group inside its range of the order (the group rank is the position of
    its first member). Stable, so identical sequences keep input order.
    """
    n = len(lengths)
    order = np.arange(n, dtype=np.int64)
    if n <= 1:
        return order
    bits = max(1, (max_token + 1).bit_length())
    tpw = max(1, 64 // bits)  # tokens per uint64 word
    k = 2 * tpw
    shift = np.uint64(bits) if tpw > 1 else np.uint64(0)
    rank = np.zeros(n, dtype=np.int64)
    act = np.arange(n, dtype=np.int64)  # positions in `order` to refine (whole groups)
    maxlen = int(lengths.max())
    start = 0
    while act.size and start < maxlen:
        seqs = order[act]
        words = []
        for w in range(2):
            word = np.zeros(len(seqs), dtype=np.uint64)
            for j in range(tpw):
                if tpw > 1:
                    word <<= shift
                word |= _gather(tokens, offsets, lengths, seqs, start + w * tpw + j)
            words.append(word)
        r = rank[seqs]
        perm = np.lexsort((words[1], words[0], r))
        seqs = seqs[perm]
        r = r[perm]
        w0 = words[0][perm]
        w1 = words[1][perm]
        order[act] = seqs
        new = np.empty(len(seqs), dtype=bool)
        new[0] = True
        new[1:] = (r[1:] != r[:-1]) | (w0[1:] != w0[:-1]) | (w1[1:] != w1[:-1])
        run_start = np.flatnonzero(new)
        run_id = np.cumsum(new) - 1
        rank[seqs] = act[run_start][run_id]
        run_size = np.diff(np.append(run_start, len(seqs)))
        run_max = np.maximum.reduceat(lengths[seqs], run_start)
        start += k
        keep_run = (run_size > 1) & (run_max > start)
        act = act[keep_run[run_id]]
    return order


def _neighbour_lcp(
    tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """``lcp[p]``: common-prefix length of the sequences at positions ``p - 1`` and ``p`` (``lcp[0] = 0``)."""
    n = len(order)
    lcp = np.zeros(n, dtype=np.int64)
    if n <= 1:
        return lcp
    a = order[:-1]
    b = order[1:]
    minlen = np.minimum(lengths[a], lengths[b])
    idx = np.flatnonzero(minlen > 0)
    j = 0
    while idx.size:
        eq = tokens[offsets[a[idx]] + j] == tokens[offsets[b[idx]] + j]
        idx = idx[eq]
        j += 1
        lcp[idx + 1] = j
        idx = idx[minlen[idx] > j]
    return lcp


def _build_levels(
    tokens: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    order: np.ndarray,
    lcp: np.ndarray,
    idx: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nodes level by level from the sorted sequences: one vectorised pass per depth.

    Per-node arrays are kept in the final index dtype ``idx`` and concatenated one at a time,
    so the peak stays near the size of the finished trie.
    """
    n = len(order)
    plen = lengths[order]  # length per position
    parts: dict[str, list[np.ndarray]] = {
        "tok": [np.zeros(0, dtype=tokens.dtype)],
        "lo": [np.array([0], dtype=idx)],
        "hi": [np.array([n], dtype=idx)],
        "tend": [np.array([np.count_nonzero(plen == 0)], dtype=idx)],
        "parent": [np.zeros(0, dtype=idx)],
    }
    act = np.flatnonzero(plen > 0)  # positions whose sequence reaches the current depth
    par = np.zeros(len(act), dtype=np.int64)  # their node at depth d - 1
    next_id = 1
    d = 1
    while act.size:
        starts = lcp[act] < d
        run_start = np.flatnonzero(starts)
        m = len(run_start)
        node_of = np.cumsum(starts, dtype=np.int64)
        node_of += next_id - 1
        first = act[run_start]
        parts["tok"].append(tokens[offsets[order[first]] + (d - 1)])
        parts["lo"].append(first.astype(idx))
        last = np.append(run_start[1:], len(act)) - 1
        parts["hi"].append((act[last] + 1).astype(idx))
        alen = plen[act]
        ends = (alen == d).astype(np.int64)
        parts["tend"].append((first + np.add.reduceat(ends, run_start)).astype(idx))
        parts["parent"].append(par[run_start].astype(idx))
        keep = alen > d
        act = act[keep]
        par = node_of[keep]
        next_id += m
        d += 1
    del act, par, plen

    def cat(key: str) -> np.ndarray:
        arr = np.concatenate(parts[key])
        parts[key].clear()
        return arr

    num_nodes = next_id
    counts = np.bincount(cat("parent"), minlength=num_nodes)  # parents are non-decreasing
    child_ptr = np.zeros(num_nodes + 1, dtype=idx)
    np.cumsum(counts, dtype=idx, out=child_ptr[1:])
    del counts
    return child_ptr, cat("tok"), cat("lo"), cat("hi"), cat("tend")
