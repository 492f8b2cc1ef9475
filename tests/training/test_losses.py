from __future__ import annotations

import math

import pytest
import torch

from genbel.training.losses import infonce_loss, marginal_nll, multi_similarity_loss


def test_marginal_nll_sums_probability_over_all_positives():
    logits = torch.tensor([[0.0, 0.0, math.log(2.0)], [1.0, 2.0, 3.0]])
    positive = torch.tensor([[True, True, False], [False, False, False]])
    # row 0: p(pos) = (1 + 1) / (1 + 1 + 2) = 0.5; row 1 has no positive and is left out
    assert float(marginal_nll(logits, positive)) == pytest.approx(math.log(2.0))
    assert float(marginal_nll(logits, torch.zeros_like(positive))) == 0.0


def test_infonce_multi_positive_value():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([7, 7, 3])
    t = 0.5
    # anchors 0 and 1: one positive (sim 1) and one negative (sim 0); anchor 2 has no positive
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0)))
    assert float(infonce_loss(emb, labels, t)) == pytest.approx(expected, rel=1e-5)


def test_multi_similarity_loss_mines_hard_pairs():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    # positives at sim 1, negatives at sim 0: no pair passes the mining margin → loss 0
    assert float(multi_similarity_loss(emb, labels)) == pytest.approx(0.0, abs=1e-6)
    swapped = torch.tensor([0, 1, 0, 1])  # now every positive is at sim 0 and every negative at sim 1
    a, b, base = 2.0, 50.0, 0.5
    expected = math.log1p(math.exp(-a * (0 - base))) / a + math.log1p(math.exp(b * (1 - base))) / b
    assert float(multi_similarity_loss(emb, swapped, a, b, base)) == pytest.approx(expected, rel=1e-5)
