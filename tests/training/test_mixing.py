from __future__ import annotations

from collections import Counter

import pytest

from genbel.errors import ConfigError
from genbel.training.mixing import MixedBatchSampler, apportion
from tests.helpers import raises_code


def test_apportion():
    assert apportion(16, [0.5, 0.5]) == [8, 8]
    assert apportion(16, [1, 3]) == [4, 12]
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(8, [1, 0, 1]) == [4, 0, 4]
    assert apportion(4, [0.01, 1]) == [1, 3]  # a positive share always gets one slot
    with raises_code("E357", ConfigError):
        apportion(4, [0, 0])
    with raises_code("E357", ConfigError):
        apportion(1, [1, 1])


@pytest.mark.parametrize("shares,expected", [((0.5, 0.5), (4, 4)), ((0.25, 0.75), (2, 6))])
def test_every_batch_has_the_exact_ratio(shares, expected):
    n_human, n_synth = 10, 60
    s = MixedBatchSampler([n_human, n_synth], shares, batch_size=8, seed=1)
    batches = s.batches(0)
    assert len(batches) == len(s) == max(-(-n_human // expected[0]), -(-n_synth // expected[1]))
    for b in batches:
        assert len(b) == 8
        c = Counter("human" if i < n_human else "synth" for i in b)
        assert (c["human"], c["synth"]) == expected
    # the larger (synthetic) source is seen at least once per epoch; the human set is up-sampled
    seen = Counter(batches_i for b in batches for batches_i in b)
    assert all(seen[i] >= 1 for i in range(n_human, n_human + n_synth))
    assert min(seen[i] for i in range(n_human)) >= 2


def test_deterministic_and_epochs_differ():
    s = MixedBatchSampler([5, 20], [1, 1], batch_size=4, seed=0)
    assert s.batches(0) == MixedBatchSampler([5, 20], [1, 1], batch_size=4, seed=0).batches(0)
    assert s.batches(0) != s.batches(1)
    assert list(iter(s)) == s.batches(0)


def test_empty_source_gets_no_share():
    s = MixedBatchSampler([6, 0], [0.5, 0.5], batch_size=3, seed=0)
    assert s.counts == [3, 0]
    assert sorted(i for b in s.batches(0) for i in b) == list(range(6))


def test_group_by_length_single_source():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6]
    s = MixedBatchSampler([9], [1.0], batch_size=3, seed=0, lengths=lengths, megabatch=10)
    batches = s.batches(0)
    assert sorted(i for b in batches for i in b) == list(range(9))  # each example once
    # batches are contiguous runs of the length order
    spans = sorted(sorted(lengths[i] for i in b) for b in batches)
    assert spans == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    # lengths are ignored when sources are mixed (the ratio comes first)
    m = MixedBatchSampler([4, 5], [1, 1], batch_size=2, seed=0, lengths=lengths)
    assert m.lengths is None
