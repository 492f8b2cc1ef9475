"""A linear-chain CRF over BIO labels: the training loss (torch) and the label-transition scores that
:func:`genbel.ner.tagger.decode` adds in its Viterbi search.

The CRF scores a label sequence ``y`` for emissions ``E[T, L]`` (the token classifier's logits) as
``start[y0] + sum_t E[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_T]``; training minimises the
negative log-likelihood of the gold sequence (forward algorithm). BIO constraints (no ``I-X`` after
``O`` or another type) are hard in both training and decoding: disallowed transitions get
:data:`FORBIDDEN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["FORBIDDEN", "allowed_transitions", "crf_module", "crf_nll"]

#: the score of a transition the BIO scheme forbids
FORBIDDEN = -1e4


def allowed_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(start_ok[L], trans_ok[L, L])``: BIO constraints (``I-X`` only after ``B-X`` or ``I-X``)."""
    n = len(labels)
    start_ok = np.array([not lab.startswith("I-") for lab in labels])
    trans_ok = np.ones((n, n), dtype=bool)
    for j, lab in enumerate(labels):
        if lab.startswith("I-"):
            t = lab[2:]
            for i, prev in enumerate(labels):
                trans_ok[i, j] = prev in (f"B-{t}", f"I-{t}")
    return start_ok, trans_ok


def crf_module(labels: Sequence[str]) -> Any:
    """A ``torch.nn.Module`` with learnable ``start[L]``, ``trans[L, L]``, ``end[L]`` (zeros) whose
    ``scores()`` adds the BIO constraints and whose ``forward(emissions, tags, mask)`` is :func:`crf_nll`."""
    import torch

    start_ok, trans_ok = allowed_transitions(labels)
    n = len(labels)

    class CRF(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.start = torch.nn.Parameter(torch.zeros(n))
            self.trans = torch.nn.Parameter(torch.zeros(n, n))
            self.end = torch.nn.Parameter(torch.zeros(n))
            self.register_buffer("start_mask", torch.tensor(np.where(start_ok, 0.0, FORBIDDEN), dtype=torch.float32))
            self.register_buffer("trans_mask", torch.tensor(np.where(trans_ok, 0.0, FORBIDDEN), dtype=torch.float32))

        def scores(self) -> tuple[Any, Any, Any]:
            return self.start + self.start_mask, self.trans + self.trans_mask, self.end

        def forward(self, emissions: Any, tags: Any, mask: Any) -> Any:
            return crf_nll(emissions, tags, mask, *self.scores())

    return CRF()


def crf_nll(emissions: Any, tags: Any, mask: Any, start: Any, trans: Any, end: Any) -> Any:
    """Mean negative log-likelihood of ``tags[B, T]`` under a CRF; ``mask[B, T]`` is left-aligned
    (each row's positions ``0 .. n-1`` are real, ``n >= 1``)."""
    import torch

    b, t, _ = emissions.shape
    mask = mask.bool()
    rows = torch.arange(b)
    # score of the gold path
    gold = start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
    for i in range(1, t):
        step = trans[tags[:, i - 1], tags[:, i]] + emissions[rows, i, tags[:, i]]
        gold = gold + step * mask[:, i]
    last = mask.long().sum(1) - 1
    gold = gold + end[tags[rows, last]]
    # log partition function (forward algorithm)
    alpha = start[None, :] + emissions[:, 0]
    for i in range(1, t):
        nxt = torch.logsumexp(alpha[:, :, None] + trans[None] + emissions[:, i, None, :], dim=1)
        alpha = torch.where(mask[:, i, None], nxt, alpha)
    log_z = torch.logsumexp(alpha + end[None, :], dim=1)
    return (log_z - gold).mean()
