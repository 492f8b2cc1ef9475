"""Training generative linkers: data builders (synonym-aware fine-tuning, KB-guided pre-training,
synthetic contexts), batch mixing and a resumable trainer (full fine-tuning or LoRA)."""

from __future__ import annotations

from genbel.deps import require

require("torch", "transformers", extra="models", feature="training")

from genbel.training.config import TrainConfig
from genbel.training.data import build_training_data
from genbel.training.examples import (
    BuildReport,
    TargetSelector,
    TrainingExample,
    dedupe_examples,
    finetune_examples,
)
from genbel.training.mixing import MixedBatchSampler, apportion
from genbel.training.pretrain import pretraining_examples
from genbel.training.trainer import Trainer

__all__ = [
    "BuildReport",
    "MixedBatchSampler",
    "TargetSelector",
    "TrainConfig",
    "Trainer",
    "TrainingExample",
    "apportion",
    "build_training_data",
    "dedupe_examples",
    "finetune_examples",
    "pretraining_examples",
]
