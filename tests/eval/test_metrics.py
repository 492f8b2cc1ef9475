import numpy as np
import pytest

from genbel.eval.metrics import bootstrap_ci, first_correct_rank, recall_at


def test_first_correct_rank_any_of_gold():
    preds = [{"D9"}, {"D2", "OMIM:1"}, {"D3"}]
    assert first_correct_rank(preds, {"OMIM:1"}) == 1
    assert first_correct_rank(preds, {"D3", "D9"}) == 0
    assert first_correct_rank(preds, {"D7"}) is None
    assert first_correct_rank([], {"D1"}) is None


def test_recall_at_k():
    ranks = [0, 1, None, 4, 5]
    assert recall_at(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at(ranks, 5) == pytest.approx(3 / 5)
    assert recall_at([], 1) == 0.0


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    hits = (rng.random(500) < 0.7).astype(float)
    docs = np.repeat(np.arange(50), 10)
    lo, hi = bootstrap_ci(hits, docs, 1000, seed=3)
    assert (lo, hi) == bootstrap_ci(hits, docs, 1000, seed=3)
    assert lo < 100 * hits.mean() < hi
    assert 0 <= lo <= hi <= 100


def test_bootstrap_degenerate_cases():
    assert bootstrap_ci(np.ones(10), np.zeros(10, dtype=np.int64), 200) == (100.0, 100.0)
    assert bootstrap_ci(np.array([]), np.array([], dtype=np.int64)) == (0.0, 0.0)


def test_bootstrap_resamples_documents_not_mentions():
    # one document with all the hits, one with none: document resampling gives a much wider CI
    hits = np.array([1.0] * 50 + [0.0] * 50)
    by_doc = np.array([0] * 50 + [1] * 50)
    by_mention = np.arange(100)
    lo_d, hi_d = bootstrap_ci(hits, by_doc, 1000, seed=0)
    lo_m, hi_m = bootstrap_ci(hits, by_mention, 1000, seed=0)
    assert lo_d == 0.0 and hi_d == 100.0
    assert lo_m > 30 and hi_m < 70
