"""Losses of dense-retriever training (:mod:`genbel.training.retriever`).

* :func:`infonce_loss` — multi-positive InfoNCE over in-batch names (SapBERT-style training);
* :func:`multi_similarity_loss` — SapBERT's multi-similarity loss with hard-pair mining;
* :func:`marginal_nll` — BioSyn's synonym-marginalised likelihood over retrieved candidates.
"""

from __future__ import annotations

import torch


def infonce_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive InfoNCE over a batch of unit vectors: for each anchor, −log of the softmax
    mass (over all other items) on items with the same label. Anchors without a positive are ignored."""
    sim = emb @ emb.T / temperature
    n = emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    sim = sim.masked_fill(eye, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~eye
    has = pos.any(1)
    if not bool(has.any()):
        return emb.sum() * 0.0
    log_all = torch.logsumexp(sim, dim=1)
    log_pos = torch.logsumexp(sim.masked_fill(~pos, float("-inf")), dim=1)
    return (log_all - log_pos)[has].mean()


def multi_similarity_loss(
    emb: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5,
    epsilon: float = 0.1,
) -> torch.Tensor:
    """Multi-similarity loss (Wang et al., 2019) with its pair mining, as SapBERT uses it."""
    sim = emb @ emb.T
    n = emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    neg = labels[:, None] != labels[None, :]
    inf = torch.tensor(float("inf"), device=emb.device)
    min_pos = torch.where(pos, sim, inf).min(1).values
    max_neg = torch.where(neg, sim, -inf).max(1).values
    pos_keep = pos & (sim - epsilon < max_neg[:, None])
    neg_keep = neg & (sim + epsilon > min_pos[:, None])
    zero = torch.zeros_like(sim)
    pos_term = torch.log1p(torch.where(pos_keep, torch.exp(-alpha * (sim - base)), zero).sum(1)) / alpha
    neg_term = torch.log1p(torch.where(neg_keep, torch.exp(beta * (sim - base)), zero).sum(1)) / beta
    return (pos_term + neg_term).mean()


def marginal_nll(logits: torch.Tensor, positive: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BioSyn's synonym marginalisation: mean over rows with a positive of
    ``−log Σ_{positive} softmax(logits)``; rows without a positive candidate are left out.
    ``reduction="sum"``: their sum (a share of a batch split over several processes)."""
    has = positive.any(1)
    if not bool(has.any()):  # a zero that keeps the graph (masked -inf logits would make it NaN)
        return logits.masked_fill(~torch.isfinite(logits), 0.0).sum() * 0.0
    log_all = torch.logsumexp(logits, dim=1)
    log_pos = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    per_row = (log_all - log_pos)[has]
    return per_row.sum() if reduction == "sum" else per_row.mean()


__all__ = ["infonce_loss", "marginal_nll", "multi_similarity_loss"]
