"""TokenTrie: exact structure on hand-made sequences, brute-force comparison, persistence, restrictions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from genbel.errors import FormatError, InputError
from genbel.trie import Restriction, TokenTrie
from tests.helpers import raises_code

# seq 0..5; seq 3 is a prefix of seq 0, seq 4 duplicates seq 1, seq 5 is empty
SEQS = [[5, 2, 9], [5, 7], [3], [5, 2], [5, 7], []]


@pytest.fixture
def trie() -> TokenTrie:
    return TokenTrie.build(SEQS, values=[10, 11, 12, 13, 14, 15])


def test_structure_exact(trie: TokenTrie) -> None:
    # sorted order: [] , [3], [5,2], [5,2,9], [5,7], [5,7]  (stable: seq 1 before seq 4)
    assert trie.seq_order.tolist() == [5, 2, 3, 0, 1, 4]
    assert trie.seq_values.tolist() == [15, 12, 13, 10, 11, 14]
    assert trie.num_sequences == 6
    # nodes: root, [3], [5], [5,2], [5,7], [5,2,9]
    assert trie.num_nodes == 6
    assert trie.children(TokenTrie.ROOT).tolist() == [3, 5]
    n5 = trie.step(0, 5)
    assert trie.children(n5).tolist() == [2, 7]
    assert trie.children(trie.walk([5, 2])).tolist() == [9]
    assert trie.children(trie.walk([5, 2, 9])).tolist() == []
    assert trie.children(trie.walk([3])).tolist() == []


def test_step_and_walk(trie: TokenTrie) -> None:
    assert trie.step(0, 4) == -1
    assert trie.step(0, 10**6) == -1  # beyond the token dtype
    assert trie.step(0, -3) == -1
    assert trie.step(-1, 5) == -1
    assert trie.walk([]) == TokenTrie.ROOT
    assert trie.walk([5, 2, 9, 1]) == -1
    assert trie.walk([2, 9], node=trie.walk([5])) == trie.walk([5, 2, 9])
    n = trie.walk([5, 7])
    assert trie.path(n) == [5, 7]
    assert trie.token_of(n) == 7
    assert trie.parent(n) == trie.walk([5])
    assert trie.parent(TokenTrie.ROOT) == -1
    assert trie.depth(n) == 2 and trie.depth(TokenTrie.ROOT) == 0 and trie.max_depth == 3
    assert TokenTrie.build([]).max_depth == 0
    assert trie.child_nodes(trie.walk([5])).tolist() == [trie.walk([5, 2]), trie.walk([5, 7])]


def test_values_terminals_and_ranges(trie: TokenTrie) -> None:
    assert trie.values(TokenTrie.ROOT).tolist() == [15]  # the empty sequence
    assert trie.is_terminal(TokenTrie.ROOT)
    assert not trie.is_terminal(trie.walk([5]))
    assert trie.values(trie.walk([5])).tolist() == []
    n52 = trie.walk([5, 2])
    assert trie.is_terminal(n52) and trie.values(n52).tolist() == [13]  # a prefix of [5, 2, 9]
    assert trie.values(trie.walk([5, 2, 9])).tolist() == [10]
    assert trie.values(trie.walk([5, 7])).tolist() == [11, 14]  # duplicates share the terminal
    assert trie.value_range(TokenTrie.ROOT) == (0, 6)
    assert trie.value_range(trie.walk([3])) == (1, 2)
    assert trie.value_range(trie.walk([5])) == (2, 6)
    assert trie.value_range(n52) == (2, 4)
    assert trie.value_range(trie.walk([5, 7])) == (4, 6)
    assert sorted(trie.subtree_values(trie.walk([5])).tolist()) == [10, 11, 13, 14]
    assert [trie.sequence(p) for p in range(6)] == [[], [3], [5, 2], [5, 2, 9], [5, 7], [5, 7]]


def test_default_values_and_empty_input() -> None:
    t = TokenTrie.build([[1, 2], [1]])
    assert t.values(t.walk([1, 2])).tolist() == [0]
    assert t.values(t.walk([1])).tolist() == [1]
    empty = TokenTrie.build([])
    assert empty.num_nodes == 1 and empty.num_sequences == 0
    assert empty.children(0).tolist() == [] and not empty.is_terminal(0)


def test_token_dtypes() -> None:
    small = TokenTrie.build([[1, 65535]])
    big = TokenTrie.build([[1, 70000], [1, 65536]])
    assert small.child_tokens.dtype == np.uint16
    assert big.child_tokens.dtype == np.uint32
    assert big.children(big.walk([1])).tolist() == [65536, 70000]
    huge = TokenTrie.build([[2**33, 1], [2**33]])
    assert huge.walk([2**33, 1]) > 0


def test_bad_input() -> None:
    with raises_code("E202", InputError, match="sequence 1: negative token id -4"):
        TokenTrie.build([[1], [2, -4]])
    with raises_code("E203", InputError, match="2 values given for 1 sequences"):
        TokenTrie.build([[1]], values=[1, 2])
    with raises_code("E203", InputError, match="offsets"):
        TokenTrie.from_flat(np.array([1, 2, 3]), np.array([0, 2]))


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    vocab = rng.choice([2, 4, 50, 60000, 100000])
    seqs = [
        [rng.randrange(vocab) for _ in range(rng.choice([0, 1, 2, 3, 7, 11, 19]))]
        for _ in range(rng.randint(1, 60))
    ]
    seqs += [list(s) for s in seqs[:4]] + [s[: len(s) // 2] for s in seqs[:4]]
    t = TokenTrie.build(seqs)
    assert t.seq_order.tolist() == sorted(range(len(seqs)), key=lambda i: (seqs[i], i))
    prefixes = {tuple(s[:k]) for s in seqs for k in range(len(s) + 1)}
    assert t.num_nodes == len(prefixes)
    for pre in prefixes:
        node = t.walk(pre)
        assert node >= 0 and t.path(node) == list(pre)
        kids = sorted({s[len(pre)] for s in seqs if tuple(s[: len(pre)]) == pre and len(s) > len(pre)})
        assert t.children(node).tolist() == kids
        ending = sorted(i for i, s in enumerate(seqs) if tuple(s) == pre)
        assert sorted(t.values(node).tolist()) == ending
        lo, hi = t.value_range(node)
        assert sorted(t.seq_order[lo:hi].tolist()) == [
            i for i, s in enumerate(seqs) if tuple(s[: len(pre)]) == pre
        ]


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, trie: TokenTrie, mmap: bool) -> None:
    trie.save(tmp_path / "t")
    back = TokenTrie.load(tmp_path / "t", mmap=mmap)
    assert isinstance(back.child_tokens, np.memmap) is mmap
    for a in ("child_ptr", "child_tokens", "lo", "hi", "term_end", "seq_values", "seq_order"):
        assert np.array_equal(getattr(back, a), getattr(trie, a)), a
        assert getattr(back, a).dtype == getattr(trie, a).dtype
    assert back.walk([5, 2, 9]) == trie.walk([5, 2, 9])
    assert back.values(back.walk([5, 7])).tolist() == [11, 14]
    assert back.nbytes == trie.nbytes
    # overwrite in place, nothing temporary left beside it
    TokenTrie.build([[1]]).save(tmp_path / "t")
    assert TokenTrie.load(tmp_path / "t").num_sequences == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_load_errors(tmp_path, trie: TokenTrie) -> None:
    with raises_code("E200", FormatError, match="not a genbel trie directory"):
        TokenTrie.load(tmp_path)
    trie.save(tmp_path / "t")
    meta = json.loads((tmp_path / "t" / "trie.json").read_text())
    (tmp_path / "t" / "trie.json").write_text(json.dumps({**meta, "format_version": 99}))
    with raises_code("E205", FormatError, match="format version 99"):
        TokenTrie.load(tmp_path / "t")
    (tmp_path / "t" / "trie.json").write_text(json.dumps(meta))
    np.save(tmp_path / "t" / "lo.npy", np.zeros(2, dtype=np.uint32))
    with raises_code("E201", FormatError, match="corrupt trie"):
        TokenTrie.load(tmp_path / "t")


def test_restriction(trie: TokenTrie) -> None:
    r = trie.restriction([10])  # only [5, 2, 9]
    assert isinstance(r, Restriction) and r.num_allowed == 1
    assert r.children(TokenTrie.ROOT).tolist() == [5]
    assert r.children(trie.walk([5])).tolist() == [2]
    assert r.allows(trie.walk([5, 2])) and not r.allows(trie.walk([5, 7])) and not r.allows(-1)
    assert not r.allows_terminal(trie.walk([5, 2]))  # [5, 2] ends there but is not allowed
    assert r.allows_terminal(trie.walk([5, 2, 9]))
    r2 = trie.restriction(np.array([14, 12]))  # one of the two [5, 7] and [3]
    assert r2.children(TokenTrie.ROOT).tolist() == [3, 5]
    assert r2.children(trie.walk([5])).tolist() == [7]
    assert r2.values(trie.walk([5, 7])).tolist() == [14]
    assert r2.count(TokenTrie.ROOT) == 2
    none = trie.restriction([])
    assert none.num_allowed == 0 and none.children(TokenTrie.ROOT).tolist() == []
    mask = np.zeros(16, dtype=bool)
    mask[[13, 15]] = True
    r3 = Restriction.from_payload_mask(trie, mask)
    assert r3.allows_terminal(TokenTrie.ROOT) and r3.children(TokenTrie.ROOT).tolist() == [5]
    assert Restriction.from_payload_mask(trie, np.ones(3, dtype=bool)).num_allowed == 0
    with raises_code("E203", InputError):
        Restriction(trie, np.ones(2, dtype=bool))


def test_restriction_matches_brute_force() -> None:
    rng = random.Random(3)
    seqs = [[rng.randrange(6) for _ in range(rng.randint(1, 6))] for _ in range(80)]
    t = TokenTrie.build(seqs)
    allowed = set(rng.sample(range(80), 17))
    r = t.restriction(allowed)
    for pre in {tuple(s[:k]) for s in seqs for k in range(len(s) + 1)}:
        node = t.walk(pre)
        kids = sorted(
            {
                s[len(pre)]
                for i, s in enumerate(seqs)
                if i in allowed and tuple(s[: len(pre)]) == pre and len(s) > len(pre)
            }
        )
        assert r.children(node).tolist() == kids
        assert r.allows_terminal(node) == any(tuple(seqs[i]) == pre for i in allowed)
