"""The training examples of a generative-linker run, per source, as its config asks.

Sources: ``human`` (synonym-aware targets from annotated corpora), ``synthetic`` (LLM-written
contexts, :mod:`genbel.training.synth`), ``kb`` (KB-guided pre-training samples,
:mod:`genbel.training.pretrain`), plus the dev examples; with ``memory`` the human and dev examples
carry a corrupted memory of their document's earlier gold names (:mod:`genbel.training.memory`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from genbel.data import load_documents
from genbel.errors import Errors, InputError
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.training.config import TrainConfig
from genbel.training.examples import (
    BuildReport,
    TargetSelector,
    TrainingExample,
    dedupe_examples,
    finetune_examples,
)

logger = logging.getLogger(__name__)

#: the sources of training examples, in the order batches are mixed
SOURCES = ("human", "synthetic", "kb")


@dataclass
class TrainingData:
    """Examples per source (``human``, ``synthetic``, ``kb``) and the dev examples."""

    sources: dict[str, list[TrainingExample]] = field(default_factory=dict)
    dev: list[TrainingExample] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    def total(self) -> int:
        return sum(len(v) for v in self.sources.values())


def load_kb_from_config(cfg: TrainConfig) -> KnowledgeBase:
    if cfg.kb:
        from genbel.kb import load_kb

        return load_kb(cfg.kb, cfg.kb_format, group=cfg.kb_group)
    from genbel.kb import default_kb

    return default_kb()


def build_training_data(
    cfg: TrainConfig,
    kb: KnowledgeBase,
    fmt: PromptFormat,
    documents: dict[str, Sequence] | None = None,
) -> TrainingData:
    """Build every source of examples the config asks for.

    ``documents`` may give the already-loaded documents per source (``human``, ``synthetic``,
    ``dev``); otherwise they are read from the config's paths.
    """
    from genbel.training.pretrain import pretraining_examples

    documents = documents or {}
    selector = TargetSelector(kb) if cfg.target == "tfidf" else None
    data = TrainingData()

    def docs_of(key: str, paths: Sequence[str]) -> list:
        if key in documents:
            return list(documents[key])
        out: list = []
        for p in paths:
            out.extend(load_documents(p))
        return out

    opts = dict(
        selector=selector,
        target=cfg.target,
        composite=cfg.composite,
        abbreviations=cfg.abbreviations,
        entity_types=cfg.entity_types,
        type_map=cfg.type_map or None,
        strict=cfg.strict,
    )
    had_docs = False
    for key, paths, origin in (
        ("human", cfg.train_corpora, "human"),
        ("synthetic", cfg.synthetic_corpora, "synthetic"),
    ):
        docs = docs_of(key, paths)
        if not docs:
            continue
        had_docs = True
        rep = BuildReport()
        # the type filter is for annotated corpora; synthetic documents were made for the KB's concepts
        kw = opts if key == "human" else {**opts, "entity_types": None}
        exs, rep = finetune_examples(docs, kb, origin=origin, report=rep, **kw)
        memory = None
        if cfg.memory and key == "human":
            exs, memory = _with_memory(exs, kb, cfg)
        if cfg.dedupe:  # MemoryExample keys include the rendered memory block
            exs, rep.duplicates = dedupe_examples(exs, fmt)
        data.sources[key] = exs
        data.report[key] = rep.to_dict() | {"documents": len(docs), "kept": len(exs)}
        if memory is not None:
            data.report[key]["memory"] = memory
    if cfg.pretrain_per_concept > 0:
        exs = pretraining_examples(
            kb,
            per_concept=cfg.pretrain_per_concept,
            seed=cfg.seed,
            max_concepts=cfg.pretrain_concepts,
            group=None,
        )
        n0 = len(exs)
        if cfg.dedupe:
            exs, _ = dedupe_examples(exs, fmt)
        data.sources["kb"] = exs
        data.report["kb"] = {"examples": n0, "kept": len(exs), "concepts": len({e.concept_id for e in exs})}
    dev_docs = docs_of("dev", [cfg.dev_corpus] if cfg.dev_corpus else [])
    if dev_docs:
        rep = BuildReport()
        dev, rep = finetune_examples(
            dev_docs,
            kb,
            report=rep,
            **{**opts, "strict": False, "abbreviations": "none", "composite": "first"},
        )
        data.report["dev"] = rep.to_dict() | {"documents": len(dev_docs)}
        if cfg.memory:  # the dev loss is measured on prompts like the training ones
            dev, data.report["dev"]["memory"] = _with_memory(dev, kb, cfg)
        data.dev = dev
    if data.total() == 0:
        reason = "no corpus, synthetic data or KB pre-training samples were given"
        if had_docs:
            reason = (
                "the corpora gave no linkable mention "
                "(all NIL, filtered by type, or gold ids missing from the KB)"
            )
        raise InputError(Errors.E017.format(reason=reason))
    return data


def _with_memory(examples: Sequence[TrainingExample], kb: KnowledgeBase, cfg: TrainConfig):
    """``(memory examples, memory report dict)``: :func:`~genbel.training.memory.add_memory` as configured."""
    from genbel.training.memory import MemoryReport, add_memory

    report = MemoryReport()
    out = add_memory(
        examples,
        kb,
        corruption=cfg.memory_corruption,
        fraction=cfg.memory_fraction,
        seed=cfg.seed,
        report=report,
    )
    return out, report.to_dict()
