"""TailTrie answers every query exactly as TokenTrie (property tests on random sequences), persists, and
decodes the same under TrieConstraint."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genbel.errors import FormatError, InputError
from genbel.trie import TailTrie, TokenTrie, TrieConstraint, load_trie
from tests.helpers import raises_code

SEQS = [[5, 2, 9], [5, 7], [3], [5, 2], [5, 7], []]


def prefixes(seqs: list[list[int]]) -> set[tuple[int, ...]]:
    return {tuple(s[:k]) for s in seqs for k in range(len(s) + 1)}


def assert_same(seqs: list[list[int]], values: list[int] | None = None, allowed: set[int] | None = None) -> None:
    full = TokenTrie.build(seqs, values=values)
    tail = TailTrie.build(seqs, values=values)
    assert tail.num_nodes == full.num_nodes and tail.num_sequences == full.num_sequences
    assert tail.seq_order.tolist() == full.seq_order.tolist()
    assert tail.seq_values.tolist() == full.seq_values.tolist()
    assert tail.max_depth == full.max_depth
    if allowed is not None:
        rf, rt = full.restriction(allowed), tail.restriction(allowed)
    for pre in prefixes(seqs):
        a, b = full.walk(pre), tail.walk(pre)
        assert a >= 0 and b >= 0
        assert tail.children(b).tolist() == full.children(a).tolist()
        assert tail.path(b) == list(pre) and tail.depth(b) == len(pre)
        assert tail.values(b).tolist() == full.values(a).tolist()
        assert tail.is_terminal(b) == full.is_terminal(a)
        assert tail.value_range(b) == full.value_range(a)
        assert tail.subtree_values(b).tolist() == full.subtree_values(a).tolist()
        assert [tail.token_of(x) for x in tail.child_nodes(b).tolist()] == full.children(a).tolist()
        if pre:
            assert tail.parent(b) == tail.walk(pre[:-1]) and tail.token_of(b) == pre[-1]
        assert tail.step(b, 10**9) == -1
        if allowed is not None:
            assert rt.children(b).tolist() == rf.children(a).tolist()
            assert rt.allows_terminal(b) == rf.allows_terminal(a) and rt.count(b) == rf.count(a)
            assert rt.values(b).tolist() == rf.values(a).tolist()
    assert [tail.sequence(p) for p in range(len(seqs))] == [full.sequence(p) for p in range(len(seqs))]


def test_hand_made() -> None:
    assert_same(SEQS, values=[10, 11, 12, 13, 14, 15], allowed={10, 14})
    t = TailTrie.build(SEQS)
    assert t.num_real < t.num_nodes or t.num_real == TokenTrie.build(SEQS).num_nodes
    for seqs in ([], [[]], [[4]], [[4, 4, 4]], [[1, 2], [1, 2]], [[1, 2, 3], [1]]):
        assert_same(seqs)


@pytest.mark.parametrize("seed", range(6))
def test_random_names_match_token_trie(seed: int) -> None:
    rng = random.Random(seed)
    vocab = rng.choice([3, 50, 60000, 100000])
    seqs = [[rng.randrange(vocab) for _ in range(rng.choice([0, 1, 2, 5, 9, 14]))] for _ in range(rng.randint(1, 80))]
    seqs += [list(s) for s in seqs[:4]] + [s[: len(s) // 2] for s in seqs[:4]]
    assert_same(seqs, allowed=set(rng.sample(range(len(seqs)), len(seqs) // 3)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=7), max_size=25), st.data())
def test_property_allowed_next_tokens(seqs: list[list[int]], data: st.DataObject) -> None:
    allowed = set(data.draw(st.lists(st.integers(0, max(len(seqs) - 1, 0)), max_size=10))) if seqs else None
    assert_same(seqs, allowed=allowed)


def test_constraint_allowed_tokens_equal() -> None:
    """The allowed next tokens of TrieConstraint, step by step along random names plus EOS (id 0)."""
    rng = random.Random(7)
    names = [[rng.randrange(1, 40) for _ in range(rng.randint(1, 8))] + [0] for _ in range(300)]
    full, tail = TokenTrie.build(names), TailTrie.build(names)
    restrictions = [None, full.restriction(range(0, 300, 3))]
    plen = 2
    for r_idx in range(2):
        cf = TrieConstraint(full, plen, num_beams=1, eos_token_id=0, pad_token_id=0,
                            restrictions=[restrictions[r_idx]])
        ct = TrieConstraint(tail, plen, num_beams=1, eos_token_id=0, pad_token_id=0,
                            restrictions=[None if r_idx == 0 else tail.restriction(range(0, 300, 3))])
        for name in names[:80]:
            for k in range(len(name) + 1):
                ids = torch.tensor([9, 9, *name[:k]])
                assert ct(0, ids) == cf(0, ids)


def test_nbytes_smaller_on_long_names() -> None:
    rng = random.Random(1)
    seqs = [[rng.randrange(5000) for _ in range(12)] for _ in range(2000)]
    assert TailTrie.build(seqs).nbytes < TokenTrie.build(seqs).nbytes / 3


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load(tmp_path, mmap: bool) -> None:
    t = TailTrie.build(SEQS, values=[10, 11, 12, 13, 14, 15])
    t.save(tmp_path / "t")
    back = load_trie(tmp_path / "t", mmap=mmap)
    assert isinstance(back, TailTrie) and isinstance(back.tail_tokens, np.memmap) is mmap
    assert back.nbytes == t.nbytes and back.max_depth == 3
    assert back.values(back.walk([5, 7])).tolist() == [11, 14]
    TokenTrie.build(SEQS).save(tmp_path / "old")  # the previous layout still loads
    assert isinstance(load_trie(tmp_path / "old"), TokenTrie)


def test_errors(tmp_path) -> None:
    with raises_code("E202", InputError):
        TailTrie.build([[1], [2, -4]])
    with raises_code("E603", InputError):
        from genbel.trie import build_trie

        build_trie(np.array([1]), np.array([0, 1]), layout="dawg")
    TailTrie.build(SEQS).save(tmp_path / "t")
    meta = json.loads((tmp_path / "t" / "trie.json").read_text())
    (tmp_path / "t" / "trie.json").write_text(json.dumps({**meta, "format": "x"}))
    with raises_code("E603", FormatError):
        load_trie(tmp_path / "t")
    (tmp_path / "t" / "trie.json").write_text(json.dumps({**meta, "format_version": 9}))
    with raises_code("E205", FormatError):
        load_trie(tmp_path / "t")
    (tmp_path / "t" / "trie.json").write_text(json.dumps(meta))
    np.save(tmp_path / "t" / "tail_ptr.npy", np.zeros(2, dtype=np.uint32))
    with raises_code("E201", FormatError):
        load_trie(tmp_path / "t")
