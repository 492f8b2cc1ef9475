"""Evaluation: Recall@k with bootstrap confidence intervals, subsets, speed and memory."""

from genbel.eval.harness import EvaluationResult, SubsetScore, evaluate, expand_gold_ids
from genbel.eval.metrics import bootstrap_ci, first_correct_rank, recall_at

__all__ = [
    "EvaluationResult", "SubsetScore", "bootstrap_ci", "evaluate", "expand_gold_ids", "first_correct_rank",
    "recall_at",
]
