"""What runs inside Ray: the worker, an actor that loads the KB, the detector and the linker once, then
reads whole shards and detects and links their documents.

A worker call takes shards (rows of :class:`~genbel.distributed.shards.Shard` fields; the plan gives one
per call) and returns one row per document: the linked document as BigBio JSON, its shard's index, its
position in the shard and the shard's number of documents, so that the driver
(:mod:`genbel.distributed.runner`) knows when a shard is complete. The shard is read inside the actor,
with genbel's readers (:func:`genbel.distributed.shards.read_shard`), and linked in chunks of
``batch_docs`` whole documents: a document is never split across chunks, so a document-level linker
keeps its memory over the whole document. Reading in the actor, rather than in Ray tasks of their own,
spares a worker process per concurrent read and the trip of every document through the object store
(benchmarks.md, "Ray engine"). A genbel error (bad input, a bad setting) does not kill the run: it
travels as one ``error`` row to the driver, which stops with the error's own message before writing
that shard.

The worker calls what the single-process commands call, in the same order, so that their output is
equal: :func:`genbel.annotate.detect_mentions`, :meth:`genbel.linkers.Linker.link_documents`,
:func:`genbel.pipeline.linked_documents` and, for ``annotate``, :func:`genbel.annotate.add_preferred_names`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from genbel.distributed.shards import Shard, read_shard
from genbel.errors import GenbelError

if TYPE_CHECKING:
    from genbel.data.model import Document
    from genbel.kb.base import KnowledgeBase
    from genbel.linkers.base import Linker

logger = logging.getLogger(__name__)

__all__ = ["BATCH_DOCS", "COLUMNS", "COMMANDS", "Job", "ShardWorker"]

#: what a distributed run does: ``genbel annotate`` (detect, then link) or ``genbel link`` (given mentions)
COMMANDS: tuple[str, ...] = ("annotate", "link")
#: documents a worker detects and links per call of the linker (the single-process ``genbel annotate`` chunk size)
BATCH_DOCS = 32
#: the columns of a worker's output rows (one row per document, or one ``error`` row per failed shard)
COLUMNS: tuple[str, ...] = ("shard", "pos", "n", "doc", "mentions", "error", "error_kind")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to rebuild the pipeline by itself (specs, not loaded objects: each
    actor loads its own KB and models once)."""

    command: str
    kb: str | None = "default"
    kb_format: str | None = None
    linker: str | None = None
    linker_options: dict[str, Any] = field(default_factory=dict)
    detector: str | None = "default"
    k: int = 5
    expand_abbreviations: bool = True
    entity_types: tuple[str, ...] | None = None
    input_format: str = "auto"
    split: str = "auto"
    encoding: str = "utf-8"
    keep_annotations: bool = False
    output_format: str = "bigbio-jsonl"
    folder_input: bool = False

    def open_kb(self) -> KnowledgeBase:
        """The KB to link against, as the single-process command opens it."""
        if self.command == "link":
            from genbel.pipeline import linker_kb

            return linker_kb(self.kb, self.kb_format, self.linker)
        from genbel.kb import open_kb

        return open_kb(self.kb or "default", self.kb_format)

    def make_linker(self, kb: KnowledgeBase) -> Linker:
        """The linker, as the single-process command builds it."""
        if self.command == "link":
            from genbel.linkers.default import default_linker

            return default_linker(kb, self.linker, **self.linker_options)
        from genbel.annotate import make_linker

        return make_linker(self.linker or "default", kb, **self.linker_options)

    def settings(self, kb_fingerprint: str) -> dict[str, Any]:
        """What a resumed run must find again (the run record's settings)."""
        d = asdict(self)
        d["entity_types"] = sorted(self.entity_types) if self.entity_types else None
        d["kb_fingerprint"] = kb_fingerprint
        return d


class ShardWorker:
    """A Ray actor (``map_batches`` callable class): loads the KB, detector and linker once, then reads
    and links whole shards, ``batch_docs`` documents per linker call. ``threads`` caps torch's CPU
    threads (the actor's CPUs)."""

    def __init__(self, job: Job, threads: int = 1, batch_docs: int = BATCH_DOCS) -> None:
        self.job = job
        self.batch_docs = max(1, batch_docs)
        self.setup_error = ""
        try:
            self.kb = job.open_kb()
            self.detector = None
            if job.command == "annotate" and job.detector is not None and not job.keep_annotations:
                from genbel.annotate import make_detector

                self.detector = make_detector(job.detector, self.kb)
            self.linker = job.make_linker(self.kb)
        except GenbelError as e:  # reported by the driver with its own code, not as a dead actor
            self.setup_error = str(e)
        if "torch" in sys.modules:
            import torch

            torch.set_num_threads(max(1, threads))

    def _link(self, docs: list[Document], markup: bool) -> list[tuple[dict, int]]:
        from genbel.annotate import add_preferred_names, detect_mentions
        from genbel.pipeline import check_markup_groups, linked_documents

        job = self.job
        if job.command == "annotate":
            if self.detector is not None:
                docs = detect_mentions(docs, self.detector)
            results = self.linker.link_documents(docs, k=job.k, expand_abbreviations=job.expand_abbreviations)
            dicts = list(add_preferred_names(linked_documents(docs, results, self.kb.name), self.kb))
        else:
            if markup:
                check_markup_groups(docs, self.kb, "<markup shard>")
            results = self.linker.link_documents(
                docs, k=job.k, expand_abbreviations=job.expand_abbreviations,
                entity_types=list(job.entity_types) if job.entity_types else None,
            )
            dicts = linked_documents(docs, results, self.kb.name)
        return [(d, sum("candidates" in e for e in d["entities"])) for d in dicts]

    def link_shard(self, shard: Shard) -> list[tuple[Any, ...]]:
        """The output rows of one shard (:data:`COLUMNS`): one per document, in order, or one ``error``
        row (kind ``shard``: unreadable or refused by the linker; ``setup``: the KB or a model did not load)."""
        job = self.job
        try:
            docs, markup = read_shard(
                shard, command=job.command, input_format=job.input_format, split=job.split,
                encoding=job.encoding, keep_annotations=job.keep_annotations, folder_input=job.folder_input,
            )
        except GenbelError as e:
            return [(shard.index, -1, 0, "", 0, str(e), "shard")]
        if self.setup_error:
            return [(shard.index, -1, 0, "", 0, self.setup_error, "setup")]
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(docs), self.batch_docs):
            try:
                linked = self._link(docs[start:start + self.batch_docs], markup)
            except GenbelError as e:
                return [(shard.index, -1, 0, "", 0, str(e), "shard")]
            rows += [(shard.index, start + i, len(docs), json.dumps(d, ensure_ascii=False), mentions, "", "")
                     for i, (d, mentions) in enumerate(linked)]
        return rows

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """Ray Data batch of shard rows (:class:`Shard` fields) → output rows of :data:`COLUMNS`."""
        out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        for index, path, rel, name in zip(batch["index"], batch["path"], batch["rel"], batch["out"], strict=True):
            for row in self.link_shard(Shard(int(index), str(path), str(rel), str(name))):
                for k, v in zip(COLUMNS, row, strict=True):
                    out[k].append(v)
        return out
