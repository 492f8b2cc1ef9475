"""Recall@k with document-level percentile bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def first_correct_rank(predicted: Sequence[set[str]], gold: set[str]) -> int | None:
    """0-based rank of the first predicted concept whose ids intersect ``gold`` (``None`` if none)."""
    for i, ids in enumerate(predicted):
        if ids & gold:
            return i
    return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r < k) / len(ranks)


def bootstrap_ci(
    hits: np.ndarray, doc_index: np.ndarray, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap CI of micro recall, resampling *documents* with replacement.

    ``hits[i]`` is 1 if mention ``i`` is correct, ``doc_index[i]`` its document number (0..D-1).
    Each resample draws D documents with replacement and recomputes sum(hits)/n_mentions over the
    drawn documents. Returns ``(low, high)`` percentages.
    """
    if len(hits) == 0:
        return (0.0, 0.0)
    n_docs = int(doc_index.max()) + 1
    doc_hits = np.bincount(doc_index, weights=hits, minlength=n_docs)
    doc_n = np.bincount(doc_index, minlength=n_docs).astype(float)
    rng = np.random.default_rng(seed)
    # chunked to bound memory for large corpora
    stats: list[np.ndarray] = []
    chunk = max(1, min(n_resamples, 2_000_000 // max(n_docs, 1)))
    done = 0
    while done < n_resamples:
        m = min(chunk, n_resamples - done)
        idx = rng.integers(0, n_docs, size=(m, n_docs))
        num = doc_hits[idx].sum(axis=1)
        den = doc_n[idx].sum(axis=1)
        stats.append(np.divide(num, den, out=np.zeros_like(num), where=den > 0))
        done += m
    s = np.concatenate(stats)
    lo, hi = np.percentile(s, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (round(100 * float(lo), 2), round(100 * float(hi), 2))
