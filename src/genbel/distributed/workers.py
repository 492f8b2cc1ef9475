"""What runs inside Ray: the read step (one shard → its documents, one row each) and the worker (an
actor that loads the KB, the detector and the linker once, then detects and links batches of documents).

Rows carry a document as BigBio JSON, its shard's index, its position in the shard and the shard's
number of documents, so that the driver (:mod:`genbel.distributed.runner`) knows when a shard is
complete. A document is one row and a batch is whole rows, so a document is never split across
batches and a document-level linker keeps its memory over the whole document. A genbel error (bad
input, a bad setting) does not kill the run: it travels as an ``error`` row to the driver, which stops
with the error's own message before writing that shard.

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

from genbel.data.bigbio import document_from_dict
from genbel.distributed.shards import Shard, read_shard
from genbel.errors import GenbelError

if TYPE_CHECKING:
    from genbel.kb.base import KnowledgeBase
    from genbel.linkers.base import Linker

logger = logging.getLogger(__name__)

__all__ = ["COMMANDS", "Job", "ShardWorker", "read_shards"]

#: what a distributed run does: ``genbel annotate`` (detect, then link) or ``genbel link`` (given mentions)
COMMANDS: tuple[str, ...] = ("annotate", "link")


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


def _error_rows(shard: int, message: str, kind: str) -> dict[str, list[Any]]:
    return {"shard": [shard], "pos": [-1], "n": [0], "doc": [""], "markup": [False],
            "error": [message], "error_kind": [kind]}


def read_shards(batch: Mapping[str, Any], job: Job) -> dict[str, list[Any]]:
    """Ray Data read step: the shards of ``batch`` (rows of :class:`Shard` fields) → one row per
    document; a shard that cannot be read gives one ``error`` row naming the file and line."""
    out: dict[str, list[Any]] = {k: [] for k in ("shard", "pos", "n", "doc", "markup", "error", "error_kind")}
    for index, path, rel, name in zip(batch["index"], batch["path"], batch["rel"], batch["out"], strict=True):
        shard = Shard(int(index), str(path), str(rel), str(name))
        try:
            docs, markup = read_shard(
                shard, command=job.command, input_format=job.input_format, split=job.split,
                encoding=job.encoding, keep_annotations=job.keep_annotations, folder_input=job.folder_input,
            )
        except GenbelError as e:
            for k, v in _error_rows(shard.index, str(e), "shard").items():
                out[k] += v
            continue
        for pos, d in enumerate(docs):
            out["shard"].append(shard.index)
            out["pos"].append(pos)
            out["n"].append(len(docs))
            out["doc"].append(json.dumps(d.to_dict(), ensure_ascii=False))
            out["markup"].append(markup)
            out["error"].append("")
            out["error_kind"].append("")
    return out


class ShardWorker:
    """A Ray actor (``map_batches`` callable class): loads the KB, detector and linker once, then
    links batches of document rows. ``threads`` caps torch's CPU threads (the actor's CPUs)."""

    def __init__(self, job: Job, threads: int = 1) -> None:
        self.job = job
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

    def _link(self, docs: list, markup: list[bool]) -> list[tuple[dict, int]]:
        from genbel.annotate import add_preferred_names, detect_mentions
        from genbel.pipeline import check_markup_groups, linked_documents

        job = self.job
        if job.command == "annotate":
            if self.detector is not None:
                docs = detect_mentions(docs, self.detector)
            results = self.linker.link_documents(docs, k=job.k, expand_abbreviations=job.expand_abbreviations)
            dicts = list(add_preferred_names(linked_documents(docs, results, self.kb.name), self.kb))
        else:
            marked = [d for d, m in zip(docs, markup, strict=True) if m]
            if marked:
                check_markup_groups(marked, self.kb, "<markup shard>")
            results = self.linker.link_documents(
                docs, k=job.k, expand_abbreviations=job.expand_abbreviations,
                entity_types=list(job.entity_types) if job.entity_types else None,
            )
            dicts = linked_documents(docs, results, self.kb.name)
        return [(d, sum("candidates" in e for e in d["entities"])) for d in dicts]

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        rows = list(zip(batch["shard"], batch["pos"], batch["n"], batch["doc"], batch["markup"],
                        batch["error"], batch["error_kind"], strict=True))
        out: dict[str, list[Any]] = {k: [] for k in ("shard", "pos", "n", "doc", "mentions", "error", "error_kind")}

        def emit(shard: Any, pos: Any, n: Any, doc: str, mentions: int, error: str, kind: str) -> None:
            for k, v in zip(out, (int(shard), int(pos), int(n), doc, mentions, error, kind), strict=True):
                out[k].append(v)

        good = [r for r in rows if not r[5]]
        for r in rows:
            if r[5]:
                emit(r[0], r[1], r[2], "", 0, str(r[5]), str(r[6]))
        if not good:
            return out
        if self.setup_error:
            for r in good:
                emit(r[0], r[1], r[2], "", 0, self.setup_error, "setup")
            return out
        try:
            docs = [document_from_dict(json.loads(r[3]), f"shard {r[0]} document {r[1]}") for r in good]
            linked = self._link(docs, [bool(r[4]) for r in good])
        except GenbelError as e:
            for r in good:
                emit(r[0], r[1], r[2], "", 0, str(e), "shard")
            return out
        for r, (d, mentions) in zip(good, linked, strict=True):
            emit(r[0], r[1], r[2], json.dumps(d, ensure_ascii=False), mentions, "", "")
        return out
