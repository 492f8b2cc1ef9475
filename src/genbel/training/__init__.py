"""Training generative linkers and retrievers.

Generative linkers: data builders (synonym-aware fine-tuning, KB-guided pre-training, synthetic
contexts), batch mixing and a resumable trainer (full fine-tuning or LoRA). Retrievers:
SapBERT- and BioSyn-style training (:mod:`genbel.training.retriever`). Both use one run framework
(:mod:`genbel.training.run`).

The names below load on first access, so the parts that need no torch (synthetic sentences from
templates, example builders) work on a base install; the trainers need ``pip install 'genbel[models]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> module that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    "BuildReport": "genbel.training.examples",
    "TargetSelector": "genbel.training.examples",
    "TrainingExample": "genbel.training.examples",
    "dedupe_examples": "genbel.training.examples",
    "finetune_examples": "genbel.training.examples",
    "MixedBatchSampler": "genbel.training.mixing",
    "apportion": "genbel.training.mixing",
    "pretraining_examples": "genbel.training.pretrain",
    "TrainConfig": "genbel.training.config",
    "build_training_data": "genbel.training.data",
    "Trainer": "genbel.training.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genbel.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
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
