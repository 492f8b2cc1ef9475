"""What one server holds, loaded once at start-up: the KB, the linker, the mention detector (if any),
the name search, the micro-batcher and the metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.serve.batching import MicroBatcher
from genbel.serve.concepts import NameSearch
from genbel.serve.config import ServeConfig
from genbel.serve.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass
class Service:
    kb: KnowledgeBase
    linker: Linker
    config: ServeConfig
    detector: Any | None = None  #: a :class:`genbel.ner.Detector` (``detect(text) -> list[Span]``) or None
    metrics: Metrics = field(default_factory=Metrics)
    batcher: MicroBatcher = field(init=False)
    search: NameSearch = field(init=False)
    n_names: int = field(init=False)
    kb_groups: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.search = NameSearch(self.kb)
        self.n_names = self.kb.n_names()
        self.kb_groups = self.kb.semantic_groups
        self.batcher = MicroBatcher(
            lambda queries, k: self.linker.link(queries, k=k),
            max_wait=self.config.batch_wait_ms / 1000.0, max_batch=self.config.max_batch,
            max_queue=self.config.max_queue, on_batch=self.metrics.batch,
        )
        self.metrics.queue_depth = lambda: self.batcher.queued

    @property
    def linker_spec(self) -> str:
        return str(getattr(self.linker, "spec", None) or self.linker.name)

    @property
    def detector_name(self) -> str | None:
        if self.detector is None:
            return None
        return str(getattr(self.detector, "spec", None) or getattr(self.detector, "name", type(self.detector).__name__))


def load_service(config: ServeConfig) -> Service:
    """Open the KB, build the linker and the detector named by ``config`` (models load here, once)."""
    from genbel.kb import open_kb
    from genbel.linkers.default import default_linker

    kb = open_kb(config.kb, config.kb_format)
    linker = default_linker(kb, config.linker)
    det = None
    if config.detector:
        from genbel.ner import create_detector

        det = create_detector(config.detector, kb)
        det.spec = config.detector
    logger.info("serving KB %s (%d concepts) with linker %s", kb.name, len(kb), getattr(linker, "spec", linker.name))
    return Service(kb=kb, linker=linker, config=config, detector=det)
